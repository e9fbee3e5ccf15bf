// `agentnet sandbox run`: a real plugin script run isolated with its report,
// pass-through exit statuses, the command's environment, workdir and
// identity, the output cap, the wall-clock limit, plugin manifests
// accepted and rejected, audit events, and stopping a run with SIGTERM.
// The escape attempts live in sandbox-escape.test.mjs.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { AGENTNET_BIN, makeTempDir, runAgentnet, scrubbedEnv } from './lib/gateway.mjs';

const dataDir = makeTempDir('agentnet-sandbox-run-data-');

// Runs `agentnet sandbox run` with this file's data dir and `args`.
function sandboxRun(args, options = {}) {
  return runAgentnet(['sandbox', 'run', '--data-dir', dataDir, ...args], options);
}

// Runs with --json and returns the parsed report; the exit status must be 0.
function sandboxReport(args, options = {}) {
  const result = sandboxRun(['--json', ...args], options);
  assert.equal(result.status, 0, `agentnet exited ${result.status}: ${result.stderr}`);
  const lines = result.stdout.split('\n').filter((line) => line.length > 0);
  assert.equal(lines.length, 1, `expected one report line, got: ${result.stdout}`);
  return JSON.parse(lines[0]);
}

// Writes a policy file with `text` and returns its path.
function writePolicy(text) {
  const dir = makeTempDir('agentnet-sandbox-policy-');
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

const PLUGIN = `import json, os
with open("data/input.txt") as f:
    words = f.read().split()
with open("result.json", "w") as f:
    json.dump({"count": len(words)}, f)
with open("result.json") as f:
    stored = json.load(f)
print(json.dumps({"words": len(words), "stored": stored["count"], "cwd": os.getcwd(),
                  "home": os.environ["HOME"], "uid": os.getuid()}))
`;

// A plugin directory: plugin.py, an input file only its owner may read,
// and a manifest (plus `extra` YAML lines) naming the script's SHA-256.
function setUpPlugin(extra = '') {
  const dir = makeTempDir('agentnet-sandbox-plugin-');
  writeFileSync(path.join(dir, 'plugin.py'), PLUGIN);
  mkdirSync(path.join(dir, 'data'));
  writeFileSync(path.join(dir, 'data', 'input.txt'), 'one two three four\n');
  chmodSync(path.join(dir, 'data', 'input.txt'), 0o600);
  const digest = createHash('sha256').update(PLUGIN).digest('hex');
  const manifest = path.join(dir, 'plugin.yaml');
  writeFileSync(
    manifest,
    `name: counter\nversion: "1.2.0"\nentry: python3 plugin.py\nentry_file: plugin.py\nsha256: ${digest}\n${extra}`,
  );
  return { dir, manifest };
}

function readEvents() {
  const file = path.join(dataDir, 'events.jsonl');
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line));
}

test('json run of a python plugin script', () => {
  const plugin = setUpPlugin();
  const report = sandboxReport(['--workdir-from', plugin.dir, '--', 'python3', 'plugin.py']);
  assert.equal(report.exit_code, 0, report.stderr);
  assert.equal(report.signal, null);
  assert.equal(report.killed_reason, null);
  assert.equal(report.stderr, '');
  const printed = JSON.parse(report.stdout);
  assert.equal(printed.words, 4);
  assert.equal(printed.stored, 4);
  assert.equal(printed.cwd, '/work');
  assert.equal(printed.home, '/work');
  assert.equal(printed.uid, 1000);
  assert.equal(report.level, 'sandboxed');
  assert.equal(report.network, 'none');
  assert.equal(report.workdir, '/work');
  assert.equal(report.workdir_removed, true);
  // The script wrote into its copy of the directory, not into the host's.
  assert.equal(existsSync(path.join(plugin.dir, 'result.json')), false);
});

test('report fields have the documented types', () => {
  const report = sandboxReport(['--', '/bin/true']);
  assert.equal(report.exit_code, 0);
  assert.equal(report.signal, null);
  assert.equal(report.killed_reason, null);
  for (const field of ['wall_ms', 'cpu_ms', 'peak_rss_kb']) {
    assert.ok(Number.isInteger(report[field]), `${field} is ${report[field]}`);
    assert.ok(report[field] >= 0, `${field} is ${report[field]}`);
  }

  assert.equal(report.stdout, '');
  assert.equal(report.stderr, '');
  assert.equal(report.stdout_truncated, false);
  assert.equal(report.stderr_truncated, false);
  assert.deepEqual(report.violations, []);
  assert.match(report.run_id, /^[0-9a-f]{32}$/);

  assert.deepEqual(Object.keys(report.limits), [
    'max_memory_mb',
    'max_cpu_time_seconds',
    'max_wall_time_seconds',
    'max_processes',
    'max_output_bytes',
    'max_file_size_mb',
    'max_open_files',
  ]);
  assert.equal(report.limits.max_memory_mb.value, 512);
  assert.equal(report.limits.max_wall_time_seconds.value, 300);
  assert.equal(report.limits.max_output_bytes.value, 1048576);
  for (const [key, limit] of Object.entries(report.limits)) {
    assert.equal(typeof limit.mechanism, 'string', `${key} has no mechanism`);
    assert.ok(limit.mechanism.length > 0, `${key} has an empty mechanism`);
  }
  assert.match(report.limits.max_file_size_mb.mechanism, /RLIMIT_FSIZE/);
  assert.match(report.limits.max_memory_mb.mechanism, /cgroup|RLIMIT_AS/);

  assert.equal(typeof report.measured_by.cpu, 'string');
  assert.equal(typeof report.measured_by.memory, 'string');
  assert.notEqual(report.host_uid, 0);
});

test('pass-through output and exit statuses', () => {
  const out = sandboxRun(['--', 'sh', '-c', 'echo hello; echo oops >&2; exit 3']);
  assert.equal(out.status, 3, out.stderr);
  assert.equal(out.stdout, 'hello\n');
  assert.equal(out.stderr, 'oops\n');

  const killed = sandboxRun(['--', 'sh', '-c', 'kill -KILL $$']);
  assert.equal(killed.status, 137, killed.stderr);

  const terminated = sandboxRun(['--', 'sh', '-c', 'kill -TERM $$']);
  assert.equal(terminated.status, 143, terminated.stderr);
});

test('closed stdin and stdout stay out of the event log', () => {
  const events = path.join(dataDir, 'events.jsonl');
  const before = existsSync(events) ? readFileSync(events, 'utf8') : '';
  const script = 'exec "$0" sandbox run --data-dir "$1" -- sh -c "cat; echo leaked" <&- >&-';
  const result = spawnSync('sh', ['-c', script, AGENTNET_BIN, dataDir], {
    env: scrubbedEnv(),
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(result.status, 0, result.stderr);
  const added = readFileSync(events, 'utf8').slice(before.length);
  assert.doesNotMatch(added, /leaked/);
  for (const line of added.trim().split('\n')) {
    assert.doesNotThrow(() => JSON.parse(line), `not a JSON line in events.jsonl: ${line}`);
  }
});

test('json report of a killed command', () => {
  const report = sandboxReport(['--', 'sh', '-c', 'echo partial; kill -KILL $$']);
  assert.equal(report.exit_code, null);
  assert.equal(report.signal, 9);
  assert.equal(report.killed_reason, null);
  assert.equal(report.stdout, 'partial\n');
});

test('environment holds only PATH, HOME, TMPDIR and allowed names', () => {
  const env = { FOO: 'bar', SECRET_TOKEN: 'do-not-pass' };
  const plain = sandboxRun(['--', 'env'], { env });
  assert.equal(plain.status, 0, plain.stderr);
  const names = plain.stdout.trim().split('\n').map((line) => line.split('=')[0]).sort();
  assert.deepEqual(names, ['HOME', 'PATH', 'TMPDIR']);

  const policy = writePolicy('env: [FOO, MISSING]\n');
  const allowed = sandboxRun(['--policy', policy, '--', 'env'], { env });
  assert.equal(allowed.status, 0, allowed.stderr);
  const lines = allowed.stdout.trim().split('\n').sort();
  assert.deepEqual(lines, [
    'FOO=bar',
    'HOME=/work',
    'PATH=/usr/local/bin:/usr/bin:/bin',
    'TMPDIR=/work/tmp',
  ]);
});

test('workdir, HOME, TMPDIR, PATH and identity', () => {
  const script = [
    'echo "$HOME"',
    'echo "$TMPDIR"',
    'echo "$PATH"',
    'pwd',
    'id -u',
    'id -g',
    'touch "$TMPDIR/a" /tmp/b /work/c && echo writable',
    'ls /work/tmp',
    'touch /usr/x 2>/dev/null || echo usr-read-only',
    'touch /x 2>/dev/null || echo root-read-only',
    'hostname',
  ].join('; ');
  const result = sandboxRun(['--', 'sh', '-c', script]);
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(result.stdout.trim().split('\n'), [
    '/work',
    '/work/tmp',
    '/usr/local/bin:/usr/bin:/bin',
    '/work',
    '1000',
    '1000',
    'writable',
    'a',
    'b',
    'usr-read-only',
    'root-read-only',
    'sandbox',
  ]);
});

test('output cap truncates the stream and stops the command', () => {
  const policy = writePolicy('max_output_bytes: 1000\n');
  const report = sandboxReport(['--policy', policy, '--', 'sh', '-c', 'while :; do echo 0123456789; done']);
  assert.equal(report.stdout.length, 1000);
  assert.equal(report.stdout_truncated, true);
  assert.equal(report.stderr_truncated, false);
  assert.equal(report.killed_reason, 'output');
  assert.equal(report.exit_code, null);
  assert.equal(report.signal, 9);
});

test('invalid UTF-8 output becomes U+FFFD', () => {
  const report = sandboxReport(['--', 'printf', 'a\\377b\\342\\202']);
  assert.equal(report.stdout, 'a\uFFFDb\uFFFD\uFFFD');
});

test('wall-time limit sends SIGTERM, then SIGKILL', () => {
  const stubborn = sandboxReport(['--wall-time', '1', '--', 'sh', '-c', 'trap "" TERM; sleep 30']);
  assert.equal(stubborn.killed_reason, 'timeout');
  assert.equal(stubborn.signal, 9);
  assert.equal(stubborn.exit_code, null);
  assert.ok(stubborn.wall_ms >= 1900, `wall_ms ${stubborn.wall_ms}: SIGKILL came before the 1 s grace`);
  assert.ok(stubborn.wall_ms < 6000, `wall_ms ${stubborn.wall_ms}: the run outlived its limit`);
  assert.equal(stubborn.limits.max_wall_time_seconds.value, 1);

  const polite = sandboxReport(['--wall-time', '1', '--', 'sleep', '30']);
  assert.equal(polite.killed_reason, 'timeout');
  assert.equal(polite.signal, 15);
  assert.ok(polite.wall_ms >= 900, `wall_ms ${polite.wall_ms}: stopped before the limit`);
  assert.ok(polite.wall_ms < 4000, `wall_ms ${polite.wall_ms}: SIGTERM did not end sleep`);
});

test('flags override the policy limits', () => {
  const report = sandboxReport(['--memory', '200', '--cpu-time', '7', '--wall-time', '9', '--', '/bin/true']);
  assert.equal(report.limits.max_memory_mb.value, 200);
  assert.equal(report.limits.max_cpu_time_seconds.value, 7);
  assert.equal(report.limits.max_wall_time_seconds.value, 9);

  const restricted = sandboxReport(['--level', 'restricted', '--', '/bin/true']);
  assert.equal(restricted.level, 'restricted');
  assert.equal(restricted.exit_code, 0);
  assert.equal(restricted.limits.max_processes.value, 16);

  const bad = sandboxRun(['--memory', '0', '--', '/bin/true']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--memory "0" is invalid/);

  const floor = writePolicy('level: restricted\nmin_level: restricted\n');
  const below = sandboxRun(['--policy', floor, '--level', 'sandboxed', '--', '/bin/true']);
  assert.equal(below.status, 2);
  assert.match(below.stderr, /--level sandboxed is below the policy's min_level restricted/);

  const loopback = writePolicy('network: loopback\n');
  const minimal = sandboxRun(['--policy', loopback, '--level', 'minimal', '--', '/bin/true']);
  assert.equal(minimal.status, 2);
  assert.match(minimal.stderr, /--level minimal allows no network/);
});

test('loopback network reaches itself, none has no interface up', () => {
  const script =
    'import socket\n' +
    'try:\n' +
    '    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)\n' +
    '    c = socket.create_connection(s.getsockname(), timeout=2); print("connected")\n' +
    'except OSError as e:\n' +
    '    print("failed", e.errno)\n';
  const loopback = sandboxReport(['--network', 'loopback', '--', 'python3', '-c', script]);
  assert.equal(loopback.stdout, 'connected\n', loopback.stderr);
  assert.equal(loopback.network, 'loopback');

  const none = sandboxReport(['--', 'python3', '-c', script]);
  assert.match(none.stdout, /^failed \d+\n$/, none.stderr);
});

// A directory under /var/tmp, removed when the tests end. Policy paths
// cannot lie under /tmp, which inside the sandbox links into the workdir.
function makeHostDir(prefix) {
  const dir = mkdtempSync(path.join('/var/tmp', prefix));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('policy paths are bound read-only and read-write', () => {
  const readOnly = makeHostDir('agentnet-sandbox-ro-');
  writeFileSync(path.join(readOnly, 'input.txt'), 'from the host\n');
  chmodSync(readOnly, 0o755);
  const readWrite = makeHostDir('agentnet-sandbox-rw-');
  // Writable for the sandbox's host uid, whichever it is.
  chmodSync(readWrite, 0o777);
  const policy = writePolicy(`filesystem:\n  read_only: [${readOnly}]\n  read_write: [${readWrite}]\n`);
  const script = [
    `cat ${readOnly}/input.txt`,
    `touch ${readOnly}/new 2>/dev/null || echo read-only`,
    `echo written > ${readWrite}/out.txt && echo read-write`,
  ].join('; ');
  const result = sandboxRun(['--policy', policy, '--', 'sh', '-c', script]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, 'from the host\nread-only\nread-write\n');
  assert.equal(existsSync(path.join(readOnly, 'new')), false);
  assert.equal(readFileSync(path.join(readWrite, 'out.txt'), 'utf8'), 'written\n');

  const missing = writePolicy(`filesystem:\n  read_only: [${readOnly}/absent]\n`);
  const refused = sandboxRun(['--policy', missing, '--', '/bin/true']);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /policy path ".*absent" cannot be bound \(No such file or directory\)/);

  const underTmp = writePolicy('filesystem:\n  read_only: [/tmp/agentnet-sandbox-data]\n');
  const reserved = sandboxRun(['--policy', underTmp, '--', '/bin/true']);
  assert.equal(reserved.status, 2);
  assert.match(reserved.stderr, /is \/ or lies in \/work, \/proc, \/dev or \/tmp/);
});

test('workdir copy keeps symlinks as links', () => {
  const outside = makeTempDir('agentnet-sandbox-outside-');
  writeFileSync(path.join(outside, 'secret.txt'), 'host secret\n');
  const dir = makeTempDir('agentnet-sandbox-copy-');
  writeFileSync(path.join(dir, 'kept.txt'), 'kept\n');
  symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'link'));
  const result = sandboxRun(['--workdir-from', dir, '--', 'sh', '-c',
    'cat kept.txt; readlink link; cat link 2>/dev/null || echo unreadable']);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, `kept\n${path.join(outside, 'secret.txt')}\nunreadable\n`);
});

test('plugin manifest accepted runs its entry', () => {
  const plugin = setUpPlugin();
  const report = sandboxReport(['--plugin', plugin.manifest]);
  assert.equal(report.exit_code, 0, report.stderr);
  assert.deepEqual(report.plugin, { name: 'counter', version: '1.2.0' });
  assert.equal(JSON.parse(report.stdout).words, 4);
  const runs = readEvents().filter((e) => e.action === 'run' && e.detail.run_id === report.run_id);
  assert.equal(runs.length, 1);
  assert.equal(runs[0].detail.plugin, 'counter');
});

test('plugin manifest rejected exits 2 with the reasons', () => {
  const plugin = setUpPlugin('permissions:\n  network: loopback\n');
  const result = sandboxRun(['--json', '--plugin', plugin.manifest]);
  assert.equal(result.status, 2);
  const line = JSON.parse(result.stdout);
  assert.equal(line.exit_status, 2);
  assert.match(line.error, /^plugin counter 1\.2\.0 rejected: network: the manifest requests loopback/);
  assert.match(result.stderr, /plugin counter 1\.2\.0 rejected:/);
  assert.match(result.stderr, /network: the manifest requests loopback, but the policy allows none/);
  const denied = readEvents().filter((e) => e.action === 'load' && e.outcome === 'denied');
  assert.ok(denied.length >= 1, 'no load event was recorded');
  assert.equal(denied.at(-1).module, 'sandbox');
  assert.equal(denied.at(-1).detail.plugin, 'counter');

  const both = sandboxRun(['--plugin', plugin.manifest, '--', '/bin/true']);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /drop the command after --/);
});

test('every run is an audit event', () => {
  const report = sandboxReport(['--', 'sh', '-c', 'exit 5']);
  const events = readEvents().filter((e) => e.detail?.run_id === report.run_id);
  assert.equal(events.length, 1);
  assert.equal(events[0].module, 'sandbox');
  assert.equal(events[0].action, 'run');
  assert.equal(events[0].outcome, 'ok');
  assert.equal(events[0].detail.exit_code, 5);
  assert.equal(events[0].detail.command, 'sh');
  assert.equal(events[0].detail.level, 'sandboxed');
});

test('missing command exits 127', () => {
  const result = sandboxRun(['--', 'no-such-command-here']);
  assert.equal(result.status, 127);
  assert.match(result.stderr, /cannot execute "no-such-command-here" \(No such file or directory\)/);

  const json = sandboxRun(['--json', '--', 'no-such-command-here']);
  assert.equal(json.status, 127);
  const line = JSON.parse(json.stdout);
  assert.equal(line.exit_status, 127);
  assert.match(line.error, /cannot execute "no-such-command-here"/);

  const none = sandboxRun([]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /missing command/);

  const unseparated = sandboxRun(['echo', 'hi']);
  assert.equal(unseparated.status, 2);
  assert.match(unseparated.stderr, /unexpected argument "echo".*goes after --/);
});

test('missing user namespaces reject the run', () => {
  // A throwaway user namespace whose own limit allows no nested one; the host's sysctl is untouched.
  const script =
    'echo 0 > /proc/sys/user/max_user_namespaces || exit 99; exec "$0" sandbox run --data-dir "$1" -- /bin/true';
  const result = spawnSync('unshare', ['--user', '--map-root-user', 'sh', '-c', script, AGENTNET_BIN, dataDir], {
    env: scrubbedEnv(),
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.notEqual(result.status, 99, 'cannot lower user.max_user_namespaces inside a new user namespace');
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /user namespaces are disabled \(user\.max_user_namespaces = 0\)/);
  assert.match(result.stderr, /--level unrestricted/);
});

test('unrestricted level runs on the host in a removed workdir', () => {
  const report = sandboxReport(['--level', 'unrestricted', '--', 'sh', '-c', 'pwd; echo "$HOME"']);
  assert.equal(report.exit_code, 0, report.stderr);
  const [cwd, home] = report.stdout.trim().split('\n');
  assert.equal(cwd, report.workdir);
  assert.equal(home, report.workdir);
  assert.match(report.workdir, /agentnet-run-/);
  assert.equal(report.workdir_removed, true);
  assert.equal(existsSync(report.workdir), false);
  assert.equal(report.network, 'host');
  assert.equal(report.limits.max_memory_mb.value, null);
});

test('SIGTERM to agentnet stops the run and still reports', async () => {
  const child = spawn(AGENTNET_BIN, ['sandbox', 'run', '--data-dir', dataDir, '--json', '--', 'sleep', '30'], {
    env: scrubbedEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 500));
  child.kill('SIGTERM');
  const status = await new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  assert.equal(status, 0);
  assert.ok(Date.now() - started < 5000, 'the run did not stop within 5 s');
  const report = JSON.parse(stdout);
  assert.equal(report.killed_reason, 'cancelled');
  assert.equal(report.signal, 15);
});

test('unprivileged caller maps its own uid', (t) => {
  if (process.getuid() !== 0) {
    // The whole file already runs unprivileged; this case needs root to drop to another user.
    const report = sandboxReport(['--', 'id', '-u']);
    assert.equal(report.stdout, '1000\n');
    assert.equal(report.host_uid, process.getuid());
    return;
  }
  const setpriv = spawnSync('setpriv', ['--version']);
  assert.equal(setpriv.status, 0, 'setpriv (util-linux) is needed to run the sandbox as an unprivileged user');
  // A copy the user can reach, whatever the permissions above the build directory.
  const dir = makeTempDir('agentnet-sandbox-nobody-');
  chmodSync(dir, 0o777);
  const binary = path.join(dir, 'agentnet');
  copyFileSync(AGENTNET_BIN, binary);
  chmodSync(binary, 0o755);
  const result = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', binary, 'sandbox', 'run', '--json',
      '--data-dir', path.join(dir, 'data'), '--', 'sh', '-c', 'id -u; touch /work/x && echo ok'],
    { env: scrubbedEnv(), encoding: 'utf8', timeout: 20000, cwd: dir },
  );
  t.diagnostic(result.stderr);
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.stdout, '1000\nok\n');
  assert.equal(report.host_uid, 65534);
});
