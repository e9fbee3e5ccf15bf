// Persistence of the response cache in --data-dir: across a clean restart,
// across kill -9 under load, and through `agentnet cache stats|purge`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertHeader } from './lib/checks.mjs';
import { startFakeUpstream } from './lib/fake-upstream.mjs';
import { makeTempDir, postJson, request, runAgentnet, startGateway } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';

function chatBody(content) {
  return { model: 'fake-chat', messages: [{ role: 'user', content }] };
}

// Starts a fake upstream whose shutdown is registered with `t`, and returns
// a function that starts gateways on one shared data directory.
async function startPersistentSetup(t, gatewayArgs = []) {
  const fake = await startFakeUpstream();
  t.after(() => fake.close());
  const dataDir = makeTempDir();
  const launch = async () => {
    const gateway = await startGateway({ upstream: fake.url, dataDir, args: gatewayArgs });
    t.after(() => gateway.kill9());
    return gateway;
  };
  return { fake, dataDir, launch };
}

// Returns the records of `gateway`'s stderr whose level is error or fatal.
function errorRecords(gateway) {
  return gateway.logRecords().filter((record) => ['error', 'fatal'].includes(record.level));
}

// Returns the first number on the first stdout line that names the
// responses cache, or undefined.
function responsesCountIn(output) {
  const line = output.split('\n').find((candidate) => /responses/.test(candidate));
  const match = line ? /(\d+)/.exec(line.replace(/responses/, '')) : null;
  return match ? Number(match[1]) : undefined;
}

test('entries survive a SIGTERM restart', async (t) => {
  const { fake, launch } = await startPersistentSetup(t);
  const body = chatBody('remember me');

  const before = await launch();
  const miss = await postJson(before, CHAT, body);
  assertHeader(miss.headers, 'x-agentnet-cache', 'miss');
  const exit = await before.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM ends the gateway with status 0');

  const after = await launch();
  const hit = await postJson(after, CHAT, body);
  assertHeader(hit.headers, 'x-agentnet-cache', 'hit', 'after restart');
  assert.ok(hit.bytes.equals(miss.bytes));
  assert.equal(fake.count(CHAT), 1, 'no upstream call after restart');
});

test('completed responses survive kill -9 under load', async (t) => {
  const { fake, launch } = await startPersistentSetup(t);
  fake.behavior.delayMs = 5;
  const total = 200;
  const workers = 8;
  const killAfter = 100;
  const deadline = Date.now() + 30000;

  const gateway = await launch();
  const completed = [];
  let next = 0;
  let killed = false;

  const worker = async () => {
    while (next < total && !killed && Date.now() < deadline) {
      const index = next++;
      try {
        const response = await postJson(gateway, CHAT, chatBody(`load ${index}`));
        if (!killed && response.status >= 200 && response.status < 300) {
          completed.push(index);
        }
      } catch {
        // Requests cut off by the kill fail here; they are not checked.
      }
      if (!killed && completed.length >= killAfter) {
        killed = true;
        gateway.process.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  await gateway.kill9();
  assert.ok(killed, `the load loop ended before ${killAfter} requests completed (${completed.length} did)`);
  assert.ok(next < total, 'requests were still being sent when the gateway was killed');

  const restarted = await launch();
  const ready = await request(restarted, 'GET', '/readyz');
  assert.equal(ready.status, 200, `/readyz after restart: ${ready.text}`);
  assert.deepEqual(errorRecords(restarted), [], 'error lines in the restarted gateway stderr');

  const upstreamCalls = fake.count(CHAT);
  const notHits = [];
  for (const index of completed) {
    const response = await postJson(restarted, CHAT, chatBody(`load ${index}`));
    const cache = response.headers.get('x-agentnet-cache');
    if (response.status !== 200 || cache !== 'hit') {
      notHits.push(`load ${index}: status ${response.status}, X-AgentNet-Cache ${cache}`);
    }
  }
  assert.deepEqual(notHits, [], `${notHits.length} of ${completed.length} completed responses were lost`);
  assert.equal(fake.count(CHAT), upstreamCalls);
});

test('cache stats counts stored responses', async (t) => {
  const { dataDir, launch } = await startPersistentSetup(t);
  const gateway = await launch();
  await postJson(gateway, CHAT, chatBody('one'));
  await postJson(gateway, CHAT, chatBody('two'));
  await gateway.stop();

  const stats = runAgentnet(['cache', 'stats', '--data-dir', dataDir]);
  assert.equal(stats.status, 0, `agentnet cache stats failed: ${stats.stderr}`);
  assert.match(stats.stdout, /responses/, `stats output names no responses cache:\n${stats.stdout}`);
  const count = responsesCountIn(stats.stdout);
  assert.ok(count >= 1, `responses entry count in stats output is ${count}:\n${stats.stdout}`);
});

test('cache stats --json reports responses entries', async (t) => {
  const { dataDir, launch } = await startPersistentSetup(t);
  const gateway = await launch();
  await postJson(gateway, CHAT, chatBody('as json'));
  await gateway.stop();

  const stats = runAgentnet(['cache', 'stats', '--json', '--data-dir', dataDir]);
  assert.equal(stats.status, 0, `agentnet cache stats --json failed: ${stats.stderr}`);
  const report = JSON.parse(stats.stdout);
  assert.equal(typeof report.responses, 'object', `no responses object in ${stats.stdout}`);
  assert.equal(report.responses.entries, 1, `responses.entries in ${stats.stdout}`);
  assert.equal(typeof report.embeddings, 'object', `no embeddings object in ${stats.stdout}`);
  assert.equal(report.embeddings.entries, 0, `embeddings.entries in ${stats.stdout}`);
});

// Runs `agentnet cache stats --json` on dataDir, with --namespace when
// `namespace` is given, and returns the parsed report.
function cacheStatsJson(dataDir, namespace) {
  const args = ['cache', 'stats', '--data-dir', dataDir, '--json'];
  if (namespace !== undefined) {
    args.push('--namespace', namespace);
  }
  const result = runAgentnet(args);
  assert.equal(result.status, 0, `agentnet ${args.join(' ')} failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

test('cache stats --namespace counts only that namespace', async (t) => {
  const { dataDir, launch } = await startPersistentSetup(t);
  const gateway = await launch();
  const requests = [
    ['first in a', 'a'],
    ['second in a', 'a'],
    ['only in b', 'b'],
  ];
  for (const [content, namespace] of requests) {
    const headers = { 'X-AgentNet-Cache-Namespace': namespace };
    const response = await postJson(gateway, CHAT, chatBody(content), headers);
    assertHeader(response.headers, 'x-agentnet-cache', 'miss', content);
  }
  await gateway.stop();

  const a = cacheStatsJson(dataDir, 'a');
  const text = JSON.stringify(a);
  assert.deepEqual(Object.keys(a.responses), ['namespace', 'entries', 'bytes'], `keys in ${text}`);
  assert.equal(a.responses.namespace, 'a', `responses.namespace in ${text}`);
  assert.equal(a.responses.entries, 2, `responses.entries for namespace a in ${text}`);
  assert.equal(a.embeddings.entries, 0, `embeddings.entries for namespace a in ${text}`);

  const b = cacheStatsJson(dataDir, 'b');
  assert.equal(b.responses.entries, 1, `responses.entries for namespace b in ${JSON.stringify(b)}`);
  const unnamed = cacheStatsJson(dataDir, '');
  assert.equal(unnamed.responses.entries, 0, `responses.entries for "" in ${JSON.stringify(unnamed)}`);

  // Every entry is in a or b, so their bytes add up to the cache's total.
  const total = cacheStatsJson(dataDir);
  assert.equal(
    a.responses.bytes + b.responses.bytes,
    total.responses.bytes,
    `bytes of a (${a.responses.bytes}) plus b (${b.responses.bytes}) against the total`,
  );
});

test('cache purge empties the response cache', async (t) => {
  const { fake, dataDir, launch } = await startPersistentSetup(t);
  const body = chatBody('purge me');
  const first = await launch();
  assertHeader((await postJson(first, CHAT, body)).headers, 'x-agentnet-cache', 'miss');
  await first.stop();

  const purge = runAgentnet(['cache', 'purge', '--data-dir', dataDir]);
  assert.equal(purge.status, 0, `agentnet cache purge failed: ${purge.stderr}`);

  const stats = runAgentnet(['cache', 'stats', '--data-dir', dataDir]);
  assert.equal(stats.status, 0, `agentnet cache stats failed: ${stats.stderr}`);
  assert.equal(responsesCountIn(stats.stdout), 0, `stats after purge:\n${stats.stdout}`);

  const second = await launch();
  const after = await postJson(second, CHAT, body);
  assertHeader(after.headers, 'x-agentnet-cache', 'miss', 'after purge');
  assert.equal(fake.count(CHAT), 2);
});
