// How the gateway responds when the upstream fails, is unreachable, hangs or
// is not configured.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertHeader, assertOpenAIError } from './lib/checks.mjs';
import { freePort, postJson, request, startGateway, startStack } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';
const BODY = { model: 'fake-chat', messages: [{ role: 'user', content: 'are you there' }] };

test('upstream 500 passes through uncached', async (t) => {
  const { fake, gateway } = await startStack(t);
  fake.behavior.fail = { status: 500, message: 'fake upstream exploded', type: 'server_error', code: 'boom' };

  const first = await postJson(gateway, CHAT, BODY);
  assert.equal(first.status, 500);
  assertOpenAIError(first.json, 'upstream 500');
  assert.equal(first.json.error.message, 'fake upstream exploded');
  assert.equal(first.json.error.code, 'boom');
  assertHeader(first.headers, 'x-agentnet-cache', 'miss', 'first failed request');

  const second = await postJson(gateway, CHAT, BODY);
  assert.equal(second.status, 500);
  assertHeader(second.headers, 'x-agentnet-cache', 'miss', 'repeated failed request');
  assert.equal(fake.count(CHAT), 2, 'the repeat called upstream again');

  fake.resetBehavior();
  const recovered = await postJson(gateway, CHAT, BODY);
  assert.equal(recovered.status, 200);
  assertHeader(recovered.headers, 'x-agentnet-cache', 'miss', 'first request after recovery');
  assert.equal(fake.count(CHAT), 3);
});

test('refused upstream connection is 502', async (t) => {
  const closedPort = await freePort();
  const gateway = await startGateway({ upstream: `http://127.0.0.1:${closedPort}/v1` });
  t.after(() => gateway.kill9());

  const response = await postJson(gateway, CHAT, BODY);
  assert.equal(response.status, 502);
  assertOpenAIError(response.json, 'refused connection');
  assert.ok(response.headers.get('x-request-id'), 'X-Request-Id on a 502');
});

test('hanging upstream times out with 504', async (t) => {
  const { fake, gateway } = await startStack(t, { args: ['--upstream-timeout', '1'] });
  fake.behavior.hang = true;

  const started = Date.now();
  const response = await postJson(gateway, CHAT, BODY);
  const elapsedMs = Date.now() - started;
  assert.equal(response.status, 504);
  assertOpenAIError(response.json, 'upstream timeout');
  assert.ok(elapsedMs >= 900, `504 came after ${elapsedMs} ms, before the 1 s timeout`);
  assert.ok(elapsedMs < 3000, `504 came after ${elapsedMs} ms`);
  assert.equal(fake.count(CHAT), 1);
});

test('missing upstream is named in 503s', async (t) => {
  const gateway = await startGateway({ upstream: null });
  t.after(() => gateway.kill9());

  const health = await request(gateway, 'GET', '/healthz');
  assert.equal(health.status, 200);

  const ready = await request(gateway, 'GET', '/readyz');
  assert.equal(ready.status, 503);
  assert.match(ready.text, /AGENTNET_UPSTREAM_URL/, `/readyz body: ${ready.text}`);

  const response = await postJson(gateway, CHAT, BODY);
  assert.equal(response.status, 503);
  assertOpenAIError(response.json, 'no upstream');
  assert.match(response.json.error.message, /AGENTNET_UPSTREAM_URL/);
  assert.match(response.json.error.message, /--upstream/);
});
