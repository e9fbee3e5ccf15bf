// The sandbox escape suite: escape_probe tries one way out per test under
// `agentnet sandbox run --json`. Each test asserts the probe's own view (the
// call failed, with which errno) and the runner's report (killed_reason,
// violations, truncation, exit status). It also checks the host afterwards:
// the listener got nothing, the file is unchanged, the process outside is
// alive, and nothing of the run is left.
//
// Everything the probe aims at is started here: listeners on 127.0.0.1,
// files in temporary directories, a `sleep` process. The probe refuses its
// writing and signalling subcommands outside a seccomp filter, so a run
// that was not isolated fails without touching the host.
//
// A machine may lack user namespaces, seccomp user notification or setpriv
// (for the unprivileged runs). The affected tests then fail with the
// runner's or the test's message naming the feature. No test is skipped.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';

import { AGENTNET_BIN, sleep } from './lib/gateway.mjs';
import {
  NOBODY,
  SIGNALS,
  assertReport,
  assertViolation,
  haveSetpriv,
  hostUids,
  killTagged,
  makeHostDir,
  makeOpenDir,
  newTag,
  probeOf,
  processesTagged,
  runProbe,
  runProbeOnHost,
  sha256File,
  stageProbe,
  writePolicy,
} from './lib/sandbox.mjs';

// Tight limits for every run, so that a failed containment ends quickly.
const MAX_PROCESSES = 16;
const MAX_OUTPUT_BYTES = 65536;
const WALL_SECONDS = 5;
const TEST_TIMEOUT_MS = 30000;
// How long a run's processes may take to disappear after agentnet exits.
const LEFTOVER_GRACE_MS = 1000;

let staged;

before(() => {
  staged = stageProbe();
});

// Writes a policy that binds the probe's directory read-only, with the
// suite's limits and `extra` YAML lines.
function policyFile({ level = 'sandboxed', extra = [], readOnly = [] } = {}) {
  // minimal allows no process creation, so its policy keeps max_processes 1.
  const processes = level === 'minimal' ? 1 : MAX_PROCESSES;
  const lines = [`level: ${level}`, `max_processes: ${processes}`, `max_output_bytes: ${MAX_OUTPUT_BYTES}`];
  lines.push('filesystem:', '  read_only:');
  for (const dir of [staged.dir, ...readOnly]) {
    lines.push(`    - ${dir}`);
  }
  return writePolicy([...lines, ...extra]);
}

// Fails (after killing them) when processes of the run are still alive.
async function assertNothingLeft(tag, context) {
  const deadline = Date.now() + LEFTOVER_GRACE_MS;
  let left = processesTagged(tag);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = processesTagged(tag);
  }
  killTagged(tag);
  assert.deepEqual(left, [], `${context}: processes of the run outlived it by ${LEFTOVER_GRACE_MS} ms`);
}

// Runs the probe under the sandbox and checks the report's shape and that
// nothing of the run is left; returns { run, report }.
async function sandboxRun(context, probeArgs, options = {}) {
  const { level, extra, readOnly, runnerArgs = [], ...rest } = options;
  const tag = newTag();
  const policy = policyFile({ level, extra, readOnly });
  const run = await runProbe({
    probe: staged.probe,
    tag,
    runnerArgs: ['--policy', policy, '--wall-time', String(WALL_SECONDS), ...runnerArgs],
    probeArgs,
    ...rest,
  });
  const report = assertReport(run, context);
  await assertNothingLeft(tag, context);
  return { run, report, tag };
}

// Asserts that a run ended normally with the probe's "contained" verdict.
function assertContainedExit(run, report, context) {
  const result = probeOf(run, context);
  assert.equal(result.contained, true, `${context}: the probe escaped: ${JSON.stringify(result)}`);
  assert.equal(report.exit_code, 0, `${context}: exit_code; stderr: ${report.stderr}`);
  assert.equal(report.signal, null, `${context}: signal`);
  assert.equal(report.killed_reason, null, `${context}: killed_reason`);
  return result;
}

function listenTcp() {
  const server = net.createServer();
  const accepted = [];
  server.on('connection', (socket) => {
    accepted.push(socket.remoteAddress);
    socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, accepted }));
  });
}

test('tcp connect to a host loopback listener fails', { timeout: TEST_TIMEOUT_MS }, async () => {
  const listener = await listenTcp();
  try {
    for (const network of ['none', 'loopback']) {
      const context = `tcp-connect, network ${network}`;
      const { run, report } = await sandboxRun(context, ['tcp-connect', String(listener.port)], {
        runnerArgs: ['--network', network],
      });
      const result = assertContainedExit(run, report, context);
      // No interface is up without loopback; with it, 127.0.0.1 is the sandbox's own.
      const expected = network === 'none' ? ['ENETUNREACH'] : ['ECONNREFUSED'];
      assert.ok(expected.includes(result.errno), `${context}: errno ${result.errno}, expected ${expected}`);
      await sleep(100);
      assert.deepEqual(listener.accepted, [], `${context}: the host listener accepted a connection`);
    }
  } finally {
    listener.server.close();
  }
});

test('dns lookup reaches no resolver', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = dgram.createSocket('udp4');
  const datagrams = [];
  server.on('message', (message) => datagrams.push(message.length));
  await new Promise((resolve) => server.bind(0, '127.0.0.1', resolve));
  try {
    const context = 'dns';
    const { run, report } = await sandboxRun(context, ['dns', String(server.address().port)]);
    const result = assertContainedExit(run, report, context);
    assert.deepEqual(
      result.interfaces.filter((name) => name !== 'lo'),
      [],
      `${context}: interfaces besides lo are visible: ${result.interfaces}`,
    );
    for (const resolver of result.resolvers) {
      assert.equal(resolver.ok, false, `${context}: a route to resolver ${resolver.address} exists`);
      assert.equal(resolver.errno, 'ENETUNREACH', `${context}: resolver ${resolver.address}`);
    }
    assert.equal(result.query.send.ok, false, `${context}: the query to 127.0.0.1 was sent`);
    assert.equal(result.query.send.errno, 'ENETUNREACH', `${context}: query send errno`);
    await sleep(100);
    assert.deepEqual(datagrams, [], `${context}: the host's DNS listener received a query`);
  } finally {
    server.close();
  }
});

// /etc is bound read-only at sandboxed, so /etc/shadow is there: only the
// unprivileged host uid behind the sandbox's root makes it EACCES. minimal
// binds no /etc, so the file does not exist there (ENOENT).
test('/etc/shadow is unreadable', { timeout: TEST_TIMEOUT_MS }, async () => {
  for (const [level, errno] of [['sandboxed', 'EACCES'], ['minimal', 'ENOENT']]) {
    const context = `read /etc/shadow at ${level}`;
    const { run, report } = await sandboxRun(context, ['read', '/etc/shadow'], { level });
    const result = assertContainedExit(run, report, context);
    assert.equal(result.attempts[0].errno, errno, `${context}: errno`);
    assert.doesNotMatch(report.stdout, /root:/, `${context}: shadow content in the output`);
  }
});

test('host files outside the binds are unreadable', { timeout: TEST_TIMEOUT_MS }, async () => {
  const hidden = makeHostDir('agentnet-hidden-', 0o700);
  const hiddenFile = path.join(hidden, 'secret.txt');
  const secret = `hidden-${newTag()}`;
  writeFileSync(hiddenFile, secret, { mode: 0o644 });
  // A root-only file in a directory that is bound: only host root could read it.
  const bound = makeHostDir('agentnet-bound-');
  const rootOnly = path.join(bound, 'root-only.txt');
  writeFileSync(rootOnly, secret, { mode: 0o600 });

  const context = 'read host files';
  const { run, report } = await sandboxRun(context, ['read', hiddenFile, rootOnly], { readOnly: [bound] });
  const result = assertContainedExit(run, report, context);
  assert.equal(result.attempts[0].errno, 'ENOENT', `${context}: ${hiddenFile} (not bound)`);
  assert.equal(result.attempts[1].errno, 'EACCES', `${context}: ${rootOnly} (bound, mode 0600, owner root)`);
  assert.ok(!report.stdout.includes(secret), `${context}: the secret is in the output`);
});

test('writes outside the workdir fail', { timeout: TEST_TIMEOUT_MS }, async () => {
  const hidden = makeHostDir('agentnet-hidden-', 0o700);
  const bound = makeHostDir('agentnet-bound-');
  const existing = path.join(bound, 'existing.txt');
  writeFileSync(existing, 'original\n', { mode: 0o666 });
  chmodSync(bound, 0o777);
  const tag = newTag();
  const targets = [
    [path.join(hidden, 'new.txt'), ['ENOENT']],
    [path.join(bound, 'new.txt'), ['EROFS']],
    // The kernel rejects writes to a file whose owner (host root) has no
    // uid in the sandbox's user namespace with EACCES, before it checks EROFS.
    [existing, ['EROFS', 'EACCES']],
    [`/etc/${tag}`, ['EROFS']],
    [`/usr/${tag}`, ['EROFS']],
  ];

  for (const level of ['sandboxed', 'restricted']) {
    const context = `write outside the workdir at ${level}`;
    let run;
    try {
      run = await sandboxRun(context, ['write', ...targets.map(([target]) => target)], { level, readOnly: [bound] });
    } finally {
      // A file the probe managed to create in a system directory is removed at once.
      const created = targets.slice(3).map(([target]) => target).filter((target) => existsSync(target));
      created.forEach((target) => rmSync(target, { force: true }));
      assert.deepEqual(created, [], `${context}: files were created in host system directories`);
    }
    const result = assertContainedExit(run.run, run.report, context);
    targets.forEach(([target, errnos], i) => {
      assert.ok(
        errnos.includes(result.attempts[i].errno),
        `${context}: ${target} gave ${result.attempts[i].errno}, expected ${errnos}`,
      );
    });
    assert.ok(!existsSync(targets[0][0]), `${context}: a file appeared in the unbound host dir`);
    assert.ok(!existsSync(targets[1][0]), `${context}: a file appeared in the read-only bound dir`);
    assert.equal(readFileSync(existing, 'utf8'), 'original\n', `${context}: the bound file changed`);
  }
});

test('symlinks in the workdir do not reach the host', { timeout: TEST_TIMEOUT_MS }, async () => {
  const hidden = makeHostDir('agentnet-hidden-', 0o700);
  const hostFile = path.join(hidden, 'target.txt');
  const secret = `linked-${newTag()}`;
  writeFileSync(hostFile, `${secret}\n`, { mode: 0o666 });
  const source = makeOpenDir('agentnet-workdir-');
  symlinkSync(hostFile, path.join(source, 'planted'));

  for (const link of ['planted', 'made-inside']) {
    const context = `symlink ${link} -> ${hostFile}`;
    const { run, report } = await sandboxRun(context, ['symlink', link, hostFile], {
      runnerArgs: ['--workdir-from', source],
    });
    const result = assertContainedExit(run, report, context);
    assert.equal(result.plant.ok, true, `${context}: the link is missing in the workdir: ${JSON.stringify(result.plant)}`);
    assert.equal(result.link_target, hostFile, `${context}: --workdir-from did not copy the link as a link`);
    assert.equal(result.read.errno, 'ENOENT', `${context}: read through the link`);
    assert.equal(result.write.errno, 'ENOENT', `${context}: write through the link`);
    assert.ok(!report.stdout.includes(secret), `${context}: the host file's content is in the output`);
    assert.equal(readFileSync(hostFile, 'utf8'), `${secret}\n`, `${context}: the host file changed`);
  }
});

// Searches the usual temporary locations (a few levels deep) for a file named `name`.
function findOnHost(name) {
  const roots = [...new Set([os.tmpdir(), '/tmp', '/var/tmp', '/dev/shm', '/run'])];
  const found = [];
  const walk = (dir, depth) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.name === name) {
        found.push(full);
      } else if (entry.isDirectory() && depth < 4) {
        walk(full, depth + 1);
      }
    }
  };
  for (const root of roots) {
    walk(root, 0);
  }
  return found;
}

test('workdir is private and removed after the run', { timeout: TEST_TIMEOUT_MS }, async () => {
  const hostDir = makeHostDir('agentnet-keep-');
  writeFileSync(path.join(hostDir, 'keep.txt'), 'keep\n');
  const source = makeOpenDir('agentnet-workdir-');
  writeFileSync(path.join(source, 'input.txt'), 'input\n');
  const marker = `marker-${newTag()}`;

  const context = 'workdir';
  const { run, report } = await sandboxRun(context, ['workdir', marker, hostDir], {
    runnerArgs: ['--workdir-from', source],
  });
  const result = assertContainedExit(run, report, context);
  assert.equal(result.ok, true, `${context}: the workdir was not writable: ${JSON.stringify(result)}`);
  assert.equal(result.tmpfs, true, `${context}: the workdir ${result.cwd} is not a tmpfs`);
  assert.equal(result.home_inside, true, `${context}: HOME is outside the workdir`);
  assert.equal(result.tmpdir_inside, true, `${context}: TMPDIR is outside the workdir`);
  assert.equal(result.path, '/usr/local/bin:/usr/bin:/bin', `${context}: PATH`);

  assert.deepEqual(readdirSync(source).sort(), ['input.txt'], `${context}: --workdir-from changed its source`);
  assert.equal(readFileSync(path.join(hostDir, 'keep.txt'), 'utf8'), 'keep\n', `${context}: the cleanup followed a link`);
  assert.ok(!existsSync(path.join(result.cwd, marker)), `${context}: ${result.cwd}/${marker} exists on the host`);
  assert.deepEqual(findOnHost(marker), [], `${context}: the workdir's marker survived on the host`);
  if ('workdir_removed' in report) {
    assert.equal(report.workdir_removed, true, `${context}: the report says the workdir was not removed`);
  }
});

// The report must show that the fork limit was hit: killed_reason "processes" or
// a violation that names processes, pids or fork. Where only RLIMIT_NPROC
// enforces the limit (no usable pids cgroup, as for an unprivileged user),
// the supervisor cannot see a refused fork, so the report must name that
// mechanism instead.
function assertForkLimitReported(report, context) {
  const mechanism = report.limits.max_processes?.mechanism ?? '';
  if (!/pids/.test(mechanism)) {
    assert.match(mechanism, /RLIMIT_NPROC/, `${context}: max_processes mechanism`);
    return;
  }
  const reported =
    report.killed_reason === 'processes' ||
    report.violations.some((violation) => /process|pids|fork/i.test(`${violation.kind} ${violation.detail}`));
  assert.ok(reported, `${context}: the fork limit is not in the report: ${JSON.stringify(report)}`);
}

async function forkBomb(context, asUser) {
  const { run, report } = await sandboxRun(context, ['fork-bomb', '200'], { asUser });
  assertForkLimitReported(report, context);
  if (report.killed_reason === 'processes') {
    return;
  }
  const result = assertContainedExit(run, report, context);
  assert.ok(result.forked < MAX_PROCESSES, `${context}: ${result.forked} forks with max_processes ${MAX_PROCESSES}`);
  assert.equal(result.errno, 'EAGAIN', `${context}: errno of the failed fork`);
}

test('fork bomb stops at max_processes', { timeout: TEST_TIMEOUT_MS }, async () => {
  await forkBomb('fork-bomb as root');
});

test('memory bomb stops at the memory limit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'mem-bomb with --memory 64';
  const { run, report } = await sandboxRun(context, ['mem-bomb', '512'], { runnerArgs: ['--memory', '64'] });
  assert.ok(report.peak_rss_kb <= 80 * 1024, `${context}: peak_rss_kb ${report.peak_rss_kb}`);
  if (report.killed_reason === 'memory') {
    assert.equal(report.exit_code, null, `${context}: exit_code`);
    assert.equal(report.signal, SIGNALS.SIGKILL, `${context}: signal`);
    return;
  }
  // Without a memory cgroup, RLIMIT_AS makes the mapping fail instead.
  const result = probeOf(run, context);
  assert.equal(result.errno, 'ENOMEM', `${context}: not killed for memory (${report.killed_reason}) and ${JSON.stringify(result)}`);
  assert.ok(result.touched_mb < 64, `${context}: touched ${result.touched_mb} MB`);
  assert.match(JSON.stringify(report.limits), /rlimit/i, `${context}: limits do not name the rlimit that stopped it`);
});

// The wall limit is far above the CPU limit, so that a busy machine cannot
// end the run by time first.
test('cpu spin is killed at the cpu limit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'cpu-spin with --cpu-time 1';
  const { report } = await sandboxRun(context, ['cpu-spin', '20'], { runnerArgs: ['--cpu-time', '1', '--wall-time', '10'] });
  const summary = JSON.stringify({ ...report, stdout: undefined, limits: undefined });
  assert.equal(report.killed_reason, 'cpu', `${context}: killed_reason; report: ${summary}`);
  assert.equal(report.exit_code, null, `${context}: exit_code; report: ${summary}`);
  assert.ok([SIGNALS.SIGXCPU, SIGNALS.SIGKILL].includes(report.signal), `${context}: signal; report: ${summary}`);
  assert.ok(report.cpu_ms >= 900, `${context}: cpu_ms is below the 1 s limit; report: ${summary}`);
  assert.ok(report.cpu_ms < 3000, `${context}: cpu_ms is far past the 1 s limit; report: ${summary}`);
});

test('unbounded output is truncated and stopped', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'flood';
  const { report } = await sandboxRun(context, ['flood', '64']);
  assert.equal(report.stdout_truncated, true, `${context}: stdout_truncated`);
  assert.equal(report.stderr_truncated, false, `${context}: stderr_truncated`);
  const bytes = Buffer.byteLength(report.stdout);
  assert.ok(bytes > 0, `${context}: no stdout kept`);
  assert.ok(bytes <= MAX_OUTPUT_BYTES, `${context}: ${bytes} bytes of stdout kept`);
  assert.match(report.stdout, /^A+$/, `${context}: stdout content`);
  assert.equal(report.killed_reason, 'output', `${context}: killed_reason`);
  assert.equal(report.exit_code, null, `${context}: exit_code`);
  assert.ok(report.wall_ms < 3000, `${context}: wall_ms ${report.wall_ms}`);
});

// SIGTERM at the wall limit, SIGKILL one second later: about 2 s for --wall-time 1.
test('tree ignoring SIGTERM is killed after the wall limit', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'ignore-term with --wall-time 1';
  const { run, report } = await sandboxRun(context, ['ignore-term', '15'], { runnerArgs: ['--wall-time', '1'] });
  assert.match(report.stdout, /"ready":true/, `${context}: the probe never started`);
  assert.equal(run.probe, null, `${context}: the probe slept to its end: ${JSON.stringify(run.probe)}`);
  assert.equal(report.killed_reason, 'timeout', `${context}: killed_reason`);
  assert.equal(report.exit_code, null, `${context}: exit_code`);
  assert.equal(report.signal, SIGNALS.SIGKILL, `${context}: signal`);
  assert.ok(report.wall_ms >= 1000, `${context}: wall_ms ${report.wall_ms} is below the 1 s limit`);
  assert.ok(report.wall_ms < 3500, `${context}: wall_ms ${report.wall_ms}; SIGKILL should follow SIGTERM after 1 s`);
  assert.ok(run.ms < 5000, `${context}: agentnet took ${run.ms} ms`);
});

test('ptrace of a sibling is denied', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'ptrace-sibling';
  const { run, report } = await sandboxRun(context, ['ptrace-sibling']);
  const result = assertContainedExit(run, report, context);
  for (const call of ['ptrace_attach', 'ptrace_seize', 'process_vm_readv']) {
    assert.equal(result[call].errno, 'EPERM', `${context}: ${call}`);
  }
  assertViolation(report, 'ptrace', context);
  assertViolation(report, 'process_vm_readv', context);
});

test('mount is denied', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'mount';
  const { run, report } = await sandboxRun(context, ['mount']);
  const result = assertContainedExit(run, report, context);
  // With every capability dropped the kernel alone would also return EPERM,
  // so the violations are what show that the filter denied the calls.
  for (const call of ['mount', 'umount2', 'pivot_root']) {
    assert.equal(result[call].errno, 'EPERM', `${context}: ${call}`);
  }
  assertViolation(report, 'mount', context);
  assertViolation(report, 'umount2', context);
  assertViolation(report, 'pivot_root', context);
});

test('unshare, setns and clone with namespace flags are denied', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'unshare';
  const { run, report } = await sandboxRun(context, ['unshare']);
  const result = assertContainedExit(run, report, context);
  for (const call of ['unshare_user', 'unshare_mount', 'setns', 'clone_newuser']) {
    assert.equal(result[call].errno, 'EPERM', `${context}: ${call}`);
  }
  assertViolation(report, 'unshare', context);
  assertViolation(report, 'setns', context);
  assertViolation(report, 'clone', context);
});

test('TIOCSTI is denied by the filter', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'tiocsti';
  const { run, report } = await sandboxRun(context, ['tiocsti']);
  const result = assertContainedExit(run, report, context);
  // The kernel alone returns ENOTTY on /dev/null, so EPERM is the filter's.
  for (const call of ['tiocsti_dev_null', 'tioclinux_dev_null', 'tiocsti_fd0', 'tiocsti_fd1', 'tiocsti_fd2']) {
    assert.equal(result[call].errno, 'EPERM', `${context}: ${call}`);
  }
  assert.ok(['ENXIO', 'ENOENT'].includes(result.open_dev_tty.errno), `${context}: /dev/tty opened: ${JSON.stringify(result.open_dev_tty)}`);
  assertViolation(report, 'TIOCSTI', context);
  assertViolation(report, 'TIOCLINUX', context);
});

test('/proc/self/exe is not writable', { timeout: TEST_TIMEOUT_MS }, async () => {
  const before = { agentnet: sha256File(AGENTNET_BIN), probe: sha256File(staged.probe) };
  const context = 'write-proc-exe';
  const { run, report } = await sandboxRun(context, ['write-proc-exe']);
  const result = assertContainedExit(run, report, context);
  for (const attempt of result.attempts) {
    assert.equal(attempt.ok, false, `${context}: ${attempt.path} (${attempt.target}) opened for writing`);
  }
  assert.equal(sha256File(AGENTNET_BIN), before.agentnet, `${context}: the agentnet binary changed`);
  assert.equal(sha256File(staged.probe), before.probe, `${context}: the probe binary changed`);
});

test('signals to a host process fail', { timeout: TEST_TIMEOUT_MS }, async () => {
  const outside = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const context = `kill ${outside.pid}`;
    const { run, report } = await sandboxRun(context, ['kill', String(outside.pid)]);
    const result = assertContainedExit(run, report, context);
    assert.equal(result.signal_0.errno, 'ESRCH', `${context}: kill(pid, 0)`);
    assert.equal(result.sigkill.errno, 'ESRCH', `${context}: kill(pid, SIGKILL)`);
    await sleep(100);
    assert.equal(outside.exitCode, null, `${context}: the outside process exited`);
    assert.equal(outside.signalCode, null, `${context}: the outside process got ${outside.signalCode}`);
  } finally {
    outside.kill('SIGKILL');
  }
});

test('keyctl is denied and reported', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'keyctl at sandboxed';
  const { run, report } = await sandboxRun(context, ['keyctl']);
  const result = assertContainedExit(run, report, context);
  for (const call of ['keyctl', 'add_key', 'request_key']) {
    assert.equal(result[call].errno, 'EPERM', `${context}: ${call}`);
    assertViolation(report, call, context);
  }
  assert.equal(report.level, 'sandboxed', `${context}: level`);
});

test('minimal kills a denied syscall with SIGSYS', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'keyctl at minimal';
  const { run, report } = await sandboxRun(context, ['keyctl'], { level: 'minimal' });
  assert.equal(run.probe, null, `${context}: the probe survived the call: ${JSON.stringify(run.probe)}`);
  assert.equal(report.level, 'minimal', `${context}: level`);
  assert.equal(report.signal, SIGNALS.SIGSYS, `${context}: signal`);
  assert.equal(report.exit_code, null, `${context}: exit_code`);
  // The filter kills at once, so the report names the SIGSYS, not the call.
  assertViolation(report, 'SIGSYS', context);
});

// A kernel built without x32 returns ENOSYS by itself, and one without IA32
// emulation faults, so only EPERM (or SIGSYS at minimal) shows the filter.
test('x32 and i386 calls are denied by the filter', { timeout: TEST_TIMEOUT_MS }, async () => {
  const onHost = {
    x32: runProbeOnHost(staged.probe, ['x32']),
    i386: runProbeOnHost(staged.probe, ['i386']),
  };
  for (const abi of ['x32', 'i386']) {
    const kernel = onHost[abi]?.ok ? 'present' : `absent (${onHost[abi]?.errno} outside the sandbox)`;
    const context = `${abi} getpid at sandboxed, ${abi} ABI in this kernel: ${kernel}`;
    const { run, report } = await sandboxRun(context, [abi]);
    const result = probeOf(run, context);
    assert.equal(
      result.errno,
      'EPERM',
      `${context}: got ${result.errno} (errno source: ${result.errno_source}); the seccomp filter did not deny the call`,
    );
    assert.equal(report.exit_code, 0, `${context}: exit_code`);
    assertViolation(report, abi, context);

    const minimal = `${abi} getpid at minimal`;
    const killed = await sandboxRun(minimal, [abi], { level: 'minimal' });
    assert.equal(killed.report.signal, SIGNALS.SIGSYS, `${minimal}: signal; probe: ${JSON.stringify(killed.run.probe)}`);
    assertViolation(killed.report, 'SIGSYS', minimal);
  }
});

// Polls the host's /proc for the probe of the run tagged `tag` and returns
// its pid and host uids, or null when it does not show within 1.5 s.
async function watchProbe(tag) {
  for (let i = 0; i < 30; i++) {
    await sleep(50);
    const [entry] = processesTagged(tag, { probeOnly: true }).filter((found) => found.cmdline.includes('escape_probe'));
    if (entry) {
      return { ...entry, uids: hostUids(entry.pid) };
    }
  }
  return null;
}

test('sandboxed tree never runs as host root', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'ids';
  const tag = newTag();
  let watching = null;
  const run = await runProbe({
    probe: staged.probe,
    tag,
    runnerArgs: ['--policy', policyFile(), '--wall-time', String(WALL_SECONDS)],
    probeArgs: ['ids', '2'],
    onSpawn: () => {
      watching = watchProbe(tag);
    },
  });
  const hostView = await watching;
  const report = assertReport(run, context);
  await assertNothingLeft(tag, context);
  const result = assertContainedExit(run, report, context);

  assert.ok(hostView, `${context}: the probe was not found in the host's /proc while it ran`);
  for (const uid of hostView.uids) {
    assert.notEqual(uid, 0, `${context}: pid ${hostView.pid} runs as host uid 0: ${hostView.uids}`);
  }

  assert.equal(result.cap_eff, '0000000000000000', `${context}: effective capabilities`);
  assert.equal(result.cap_bnd, '0000000000000000', `${context}: bounding set`);
  assert.equal(result.no_new_privs, '1', `${context}: no_new_privs`);
  assert.equal(result.seccomp, '2', `${context}: seccomp mode`);
  // getsid returns 0 when the session's leader is outside the sandbox's pid namespace.
  assert.ok(result.sid > 0, `${context}: the probe shares a session with a process outside the sandbox`);
});

test('run and violations reach the event log', { timeout: TEST_TIMEOUT_MS }, async () => {
  const context = 'events.jsonl';
  const { run } = await sandboxRun(context, ['keyctl']);
  const file = path.join(run.dataDir, 'events.jsonl');
  assert.ok(existsSync(file), `${context}: ${file} is missing`);
  const events = readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  assert.ok(events.length >= 2, `${context}: ${events.length} events: ${JSON.stringify(events)}`);
  assert.ok(events.some((event) => /keyctl/.test(JSON.stringify(event))), `${context}: no event names keyctl`);
});

// The unprivileged runs: agentnet itself started as uid 65534 through setpriv.
test('unprivileged runs are contained', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(haveSetpriv(), 'setpriv (util-linux) is missing: the unprivileged runs need it');

  await forkBomb('fork-bomb as nobody', NOBODY);

  const shadow = 'read /etc/shadow as nobody';
  const read = await sandboxRun(shadow, ['read', '/etc/shadow'], { asUser: NOBODY });
  const readResult = assertContainedExit(read.run, read.report, shadow);
  assert.equal(readResult.attempts[0].errno, 'EACCES', `${shadow}: errno`);

  const keys = 'keyctl as nobody';
  const keyctl = await sandboxRun(keys, ['keyctl'], { asUser: NOBODY });
  const keyResult = assertContainedExit(keyctl.run, keyctl.report, keys);
  assert.equal(keyResult.keyctl.errno, 'EPERM', `${keys}: keyctl`);
  assertViolation(keyctl.report, 'keyctl', keys);
});
