// `agentnet sandbox levels` and `agentnet sandbox check`: the printed level
// defaults, the verdict for a loadable and a rejected manifest, and the exit
// codes 0 (loadable), 1 (rejected) and 2 (usage or file errors).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { makeTempDir, runAgentnet } from './lib/gateway.mjs';

const ENTRY = 'print("hello")\n';

// Writes main.py, a manifest for it (plus `extra` YAML lines) and a policy;
// returns their paths.
function setUpPlugin({ policy = '', extra = '', sha256 } = {}) {
  const dir = makeTempDir('agentnet-sandbox-');
  writeFileSync(path.join(dir, 'main.py'), ENTRY);
  const digest = sha256 ?? createHash('sha256').update(ENTRY).digest('hex');
  const manifest = path.join(dir, 'plugin.yaml');
  writeFileSync(
    manifest,
    `name: hello\nversion: "0.1.0"\nentry: python3 main.py\nentry_file: main.py\nsha256: ${digest}\n${extra}`,
  );
  const policyPath = path.join(dir, 'policy.yaml');
  writeFileSync(policyPath, policy);
  return { manifest, policy: policyPath };
}

test('levels prints every level with its defaults', () => {
  const result = runAgentnet(['sandbox', 'levels']);
  assert.equal(result.status, 0, result.stderr);
  const rows = result.stdout.split('\n').filter((line) => /^(unrestricted|sandboxed|restricted|minimal) /.test(line));
  assert.equal(rows.length, 4);
  assert.match(rows[1], /^sandboxed\s+none\s+512 MB\s+60 s\s+300 s\s+64\s+1 MiB\s+64 MB\s+256\s/);
  assert.match(rows[3], /^minimal\s+none\s+128 MB\s+10 s\s+60 s\s+1\s+64 KiB\s+8 MB\s+32\s/);
});

test('levels --json lists the sandboxed defaults', () => {
  const result = runAgentnet(['sandbox', 'levels', '--json']);
  assert.equal(result.status, 0, result.stderr);
  const levels = JSON.parse(result.stdout);
  assert.deepEqual(levels.map((level) => level.level), ['unrestricted', 'sandboxed', 'restricted', 'minimal']);
  const sandboxed = levels[1];
  assert.equal(sandboxed.network, 'none');
  assert.equal(sandboxed.max_memory_mb, 512);
  assert.equal(sandboxed.max_cpu_time_seconds, 60);
  assert.equal(sandboxed.max_wall_time_seconds, 300);
  assert.equal(sandboxed.max_processes, 64);
  assert.equal(sandboxed.max_output_bytes, 1048576);
  assert.equal(sandboxed.max_file_size_mb, 64);
  assert.equal(sandboxed.max_open_files, 256);
  assert.equal(levels[0].max_memory_mb, null);
});

test('check accepts a manifest within the policy', () => {
  const files = setUpPlugin({ extra: 'permissions:\n  limits: {max_memory_mb: 100}\n' });
  const result = runAgentnet(['sandbox', 'check', '--policy', files.policy, files.manifest]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^loadable: hello 0\.1\.0\n/);
  assert.match(result.stdout, /max_memory_mb +100\n/);
  assert.match(result.stdout, /max_cpu_time_seconds +60\n/);
});

test('check --json prints the narrowed restrictions', () => {
  const files = setUpPlugin({
    policy: 'network: loopback\n',
    extra: 'level: restricted\npermissions:\n  limits: {max_processes: 4}\n',
  });
  const result = runAgentnet(['sandbox', 'check', '--json', '--policy', files.policy, files.manifest]);
  assert.equal(result.status, 0, result.stderr);
  const verdict = JSON.parse(result.stdout);
  assert.equal(verdict.loadable, true);
  assert.deepEqual(verdict.reasons, []);
  assert.equal(verdict.effective.level, 'restricted');
  assert.equal(verdict.effective.network, 'none');
  assert.equal(verdict.effective.max_processes, 4);
  assert.equal(verdict.effective.max_memory_mb, 512);
});

test('check rejects network and a changed entry file', () => {
  const files = setUpPlugin({
    extra: 'permissions:\n  network: loopback\n',
    sha256: '0'.repeat(64),
  });
  const result = runAgentnet(['sandbox', 'check', '--policy', files.policy, files.manifest]);
  assert.equal(result.status, 1, result.stderr);
  const lines = result.stdout.trimEnd().split('\n');
  assert.equal(lines[0], 'rejected: hello 0.1.0');
  assert.equal(lines.length, 3);
  assert.match(lines[1], /^ {2}network: the manifest requests loopback, but the policy allows none/);
  assert.match(lines[2], /^ {2}sha256: .*main\.py" hashes to [0-9a-f]{64}, but the manifest says 0{64}/);
});

test('check --json lists the reasons of a rejection', () => {
  const files = setUpPlugin({ policy: 'level: restricted\n', extra: 'level: sandboxed\n' });
  const result = runAgentnet(['sandbox', 'check', '--json', '--policy', files.policy, files.manifest]);
  assert.equal(result.status, 1, result.stderr);
  const verdict = JSON.parse(result.stdout);
  assert.equal(verdict.loadable, false);
  assert.equal(verdict.reasons.length, 1);
  assert.match(verdict.reasons[0], /below the policy's floor restricted/);
  assert.equal(verdict.effective, null);
});

test('check exits 2 on usage and file errors', () => {
  const files = setUpPlugin({ policy: 'max_memory_mb: -1\n' });
  const badPolicy = runAgentnet(['sandbox', 'check', '--policy', files.policy, files.manifest]);
  assert.equal(badPolicy.status, 2);
  assert.match(badPolicy.stderr, /max_memory_mb -1 is out of range/);

  const noPolicy = runAgentnet(['sandbox', 'check', files.manifest]);
  assert.equal(noPolicy.status, 2);
  assert.match(noPolicy.stderr, /--policy FILE is missing/);

  const noManifest = runAgentnet(['sandbox', 'check', '--policy', files.policy]);
  assert.equal(noManifest.status, 2);
  assert.match(noManifest.stderr, /MANIFEST is missing/);

  const unknown = runAgentnet(['sandbox', 'inspect']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown action "inspect"/);
});
