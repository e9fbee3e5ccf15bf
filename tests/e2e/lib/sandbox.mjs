// Helpers for the sandbox escape suite: where escape_probe lives, running it
// under `agentnet sandbox run --json`, and looking at the host afterwards.
//
// The probe is AGENTNET_ESCAPE_PROBE, or escape_probe next to the agentnet
// binary (both are built into the build directory's top level).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { AGENTNET_BIN, makeTempDir, requireBinary, scrubbedEnv } from './gateway.mjs';

export const ESCAPE_PROBE = process.env.AGENTNET_ESCAPE_PROBE
  ? path.resolve(process.env.AGENTNET_ESCAPE_PROBE)
  : path.join(path.dirname(AGENTNET_BIN), 'escape_probe');

// The uid and gid of the unprivileged runs (the user nobody on Debian).
export const NOBODY = 65534;

// Signal numbers on x86-64 Linux, as the report gives them.
export const SIGNALS = { SIGKILL: 9, SIGTERM: 15, SIGXCPU: 24, SIGSYS: 31 };

// Longer than any run's wall limit in the suite plus the 1 s SIGKILL grace.
const RUN_TIMEOUT_MS = 12000;

// Where directories that a policy binds are made. The sandbox provides /tmp
// (and /work, /proc, /dev) itself and rejects policy paths below them, so
// /tmp cannot hold them. Host files that the probe must not reach live here
// too, so that their paths are not redirected by the sandbox's own /tmp.
export const HOST_DIR_BASE = process.env.AGENTNET_E2E_HOST_DIR ?? '/var/tmp';

const hostDirs = new Set();
process.on('exit', () => {
  for (const dir of hostDirs) {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A directory readable by everyone (mkdtemp makes 0700 ones), owned by
// `owner` when given, under os.tmpdir().
export function makeOpenDir(prefix, owner) {
  const dir = makeTempDir(prefix);
  chmodSync(dir, 0o755);
  if (owner !== undefined) {
    chownSync(dir, owner, owner);
  }
  return dir;
}

// A directory under HOST_DIR_BASE with the given mode, removed when the
// test process exits.
export function makeHostDir(prefix, mode = 0o755) {
  const dir = mkdtempSync(path.join(HOST_DIR_BASE, prefix));
  hostDirs.add(dir);
  chmodSync(dir, mode);
  return dir;
}

// Copies the probe into a fresh world-readable directory, which the runs
// bind read-only, so the build directory is never bound into the sandbox.
export function stageProbe() {
  if (!existsSync(ESCAPE_PROBE)) {
    throw new Error(
      `escape_probe not found at ${ESCAPE_PROBE}; build it with \`make\` (target escape_probe) ` +
        'or set AGENTNET_ESCAPE_PROBE to its path',
    );
  }
  const dir = makeHostDir('agentnet-probe-');
  const probe = path.join(dir, 'escape_probe');
  copyFileSync(ESCAPE_PROBE, probe);
  chmodSync(probe, 0o755);
  return { dir, probe };
}

// A random token that marks one run's command line and files.
export function newTag() {
  return `escape-${randomBytes(6).toString('hex')}`;
}

// Writes a policy file from YAML lines into a world-readable directory.
export function writePolicy(lines) {
  const dir = makeOpenDir('agentnet-policy-');
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o644 });
  return file;
}

export function sha256File(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

// Returns the last line of `text` that parses as a JSON object with an "op"
// field (the probe's result), or null.
export function probeResult(text) {
  const lines = (text ?? '').split('\n').reverse();
  for (const line of lines) {
    if (!line.startsWith('{')) {
      continue;
    }
    try {
      const value = JSON.parse(line);
      if (value && typeof value.op === 'string' && !value.ready) {
        return value;
      }
    } catch {
      // Truncated or foreign output: keep looking.
    }
  }
  return null;
}

// Runs `agentnet sandbox run --json RUNNER_ARGS -- PROBE --tag TAG PROBE_ARGS`
// and resolves with { status, stdout, stderr, report, probe, ms }. `report`
// is the parsed JSON line (null when stdout contains none) and `probe` the
// probe's own result line from the report's stdout (stderr for flood).
// `asUser` runs agentnet through setpriv as that uid and gid. `onSpawn` is
// called with the child process while the run is in flight.
export function runProbe({ probe, tag, runnerArgs = [], probeArgs, asUser, dataDir, timeoutMs = RUN_TIMEOUT_MS, onSpawn }) {
  requireBinary();
  const data = dataDir ?? makeOpenDir('agentnet-data-', asUser);
  const args = ['sandbox', 'run', '--json', '--data-dir', data, ...runnerArgs, '--', probe, '--tag', tag, ...probeArgs];
  let command = AGENTNET_BIN;
  let argv = args;
  if (asUser !== undefined) {
    command = 'setpriv';
    argv = [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', '--', AGENTNET_BIN, ...args];
  }

  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { env: scrubbedEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      const left = killTagged(tag);
      reject(
        new Error(
          `agentnet sandbox run ${probeArgs.join(' ')} did not finish within ${timeoutMs} ms; ` +
            `killed it and ${left.length} process(es) of the run: ${JSON.stringify(left)}; stderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      let report = null;
      const lines = stdout.split('\n').filter((line) => line.length > 0);
      if (lines.length === 1) {
        try {
          report = JSON.parse(lines[0]);
        } catch {
          report = null;
        }
      }
      const probeStream = probeArgs[0] === 'flood' ? report?.stderr : report?.stdout;
      resolve({ status, signal, stdout, stderr, report, probe: probeResult(probeStream), ms, dataDir: data });
    });
    onSpawn?.(child);
  });
}

// Fails unless the run produced one JSON report with every field the
// runner documents, with the right types. A run the runner refused (for
// example for a missing kernel feature) fails here with its message.
export function assertReport(run, context) {
  assert.ok(
    run.report,
    `${context}: agentnet sandbox run exited ${run.status} without one JSON report line on stdout.\n` +
      `stdout: ${run.stdout.slice(0, 2000)}\nstderr: ${run.stderr.slice(0, 2000)}`,
  );
  const report = run.report;
  const nullableInt = (value) => value === null || Number.isInteger(value);
  assert.ok(nullableInt(report.exit_code), `${context}: exit_code ${report.exit_code}`);
  assert.ok(nullableInt(report.signal), `${context}: signal ${report.signal}`);
  assert.ok(
    [null, 'timeout', 'memory', 'cpu', 'output', 'processes'].includes(report.killed_reason),
    `${context}: killed_reason ${report.killed_reason}`,
  );
  for (const field of ['wall_ms', 'cpu_ms', 'peak_rss_kb']) {
    assert.ok(Number.isFinite(report[field]), `${context}: ${field} is ${report[field]}`);
    assert.ok(report[field] >= 0, `${context}: ${field} is ${report[field]}`);
  }
  assert.equal(typeof report.stdout, 'string', `${context}: stdout`);
  assert.equal(typeof report.stderr, 'string', `${context}: stderr`);
  assert.equal(typeof report.stdout_truncated, 'boolean', `${context}: stdout_truncated`);
  assert.equal(typeof report.stderr_truncated, 'boolean', `${context}: stderr_truncated`);
  assert.ok(Array.isArray(report.violations), `${context}: violations is not an array`);
  for (const violation of report.violations) {
    assert.equal(typeof violation.kind, 'string', `${context}: violation without kind: ${JSON.stringify(violation)}`);
    assert.equal(typeof violation.detail, 'string', `${context}: violation without detail: ${JSON.stringify(violation)}`);
  }
  assert.equal(typeof report.level, 'string', `${context}: level`);
  assert.equal(typeof report.limits, 'object', `${context}: limits`);
  assert.notEqual(report.limits, null, `${context}: limits is null`);
  return report;
}

// Returns the probe's result line, failing with the report when it is missing.
export function probeOf(run, context) {
  assert.ok(
    run.probe,
    `${context}: the probe printed no result line; report: ${JSON.stringify(run.report).slice(0, 2000)}`,
  );
  return run.probe;
}

// Fails unless a violation whose detail (or kind) mentions `word` is listed.
export function assertViolation(report, word, context) {
  const pattern = new RegExp(`\\b${word}\\b`, 'i');
  const found = report.violations.some((violation) => pattern.test(violation.detail) || pattern.test(violation.kind));
  assert.ok(found, `${context}: no violation mentions ${word}; violations: ${JSON.stringify(report.violations)}`);
}

// Host processes whose command line contains `tag`, as [{ pid, cmdline }].
// After a run every such process is a leftover; during one, `probeOnly`
// skips agentnet itself, whose arguments contain the tag too.
export function processesTagged(tag, { probeOnly = false } = {}) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) {
      continue;
    }
    let cmdline;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue; // exited meanwhile
    }
    if (cmdline.includes(tag) && !(probeOnly && cmdline.includes('sandbox run'))) {
      found.push({ pid: Number(entry), cmdline: cmdline.trim() });
    }
  }
  return found;
}

// Sends SIGKILL to every host process whose command line contains `tag`
// and returns them.
export function killTagged(tag) {
  const found = processesTagged(tag);
  for (const entry of found) {
    try {
      process.kill(entry.pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

// The real, effective, saved and file-system uids of a host process.
export function hostUids(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = status.split('\n').find((entry) => entry.startsWith('Uid:'));
  return line.split(/\s+/).slice(1, 5).map(Number);
}

// Whether setpriv, used for the unprivileged runs, is installed.
export function haveSetpriv() {
  return spawnSync('setpriv', ['--version']).status === 0;
}

// Runs the probe directly on the host, only for subcommands that change
// nothing (x32 and i386 call getpid), to learn what the kernel itself returns.
export function runProbeOnHost(probe, args) {
  const result = spawnSync(probe, args, { encoding: 'utf8', timeout: 5000 });
  return probeResult(result.stdout);
}
