// Request headers that steer the response cache: Cache-Control no-cache and
// no-store, X-AgentNet-Cache-TTL and X-AgentNet-Cache-Namespace.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertHeader } from './lib/checks.mjs';
import { postJson, sleep, startStack } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';

function chatBody(content) {
  return { model: 'fake-chat', messages: [{ role: 'user', content }] };
}

test('no-cache on a new key bypasses and stores', async (t) => {
  const { fake, gateway } = await startStack(t);
  const body = chatBody('fresh no-cache');

  const bypass = await postJson(gateway, CHAT, body, { 'Cache-Control': 'no-cache' });
  assert.equal(bypass.status, 200);
  assertHeader(bypass.headers, 'x-agentnet-cache', 'bypass');
  assert.equal(fake.count(CHAT), 1);

  const plain = await postJson(gateway, CHAT, body);
  assertHeader(plain.headers, 'x-agentnet-cache', 'hit', 'plain request after no-cache');
  assert.ok(plain.bytes.equals(bypass.bytes), 'the hit returns what the no-cache request stored');
  assert.equal(fake.count(CHAT), 1);
});

test('no-cache skips a stored entry and replaces it', async (t) => {
  const { fake, gateway } = await startStack(t);
  const body = chatBody('refresh me');

  const miss = await postJson(gateway, CHAT, body);
  assertHeader(miss.headers, 'x-agentnet-cache', 'miss');

  const bypass = await postJson(gateway, CHAT, body, { 'Cache-Control': 'no-cache' });
  assertHeader(bypass.headers, 'x-agentnet-cache', 'bypass');
  assert.equal(fake.count(CHAT), 2, 'no-cache calls upstream although an entry exists');
  assert.notEqual(bypass.json.id, miss.json.id, 'no-cache returns a fresh upstream response');

  const plain = await postJson(gateway, CHAT, body);
  assertHeader(plain.headers, 'x-agentnet-cache', 'hit');
  assert.equal(plain.json.id, bypass.json.id, 'the entry now contains the no-cache response');
  assert.equal(fake.count(CHAT), 2);
});

test('no-store bypasses and stores nothing', async (t) => {
  const { fake, gateway } = await startStack(t);
  const body = chatBody('do not keep');

  const bypass = await postJson(gateway, CHAT, body, { 'Cache-Control': 'no-store' });
  assert.equal(bypass.status, 200);
  assertHeader(bypass.headers, 'x-agentnet-cache', 'bypass');
  assert.equal(fake.count(CHAT), 1);

  const plain = await postJson(gateway, CHAT, body);
  assertHeader(plain.headers, 'x-agentnet-cache', 'miss', 'plain request after no-store');
  assert.equal(fake.count(CHAT), 2);

  const again = await postJson(gateway, CHAT, body);
  assertHeader(again.headers, 'x-agentnet-cache', 'hit', 'second plain request');
  assert.equal(fake.count(CHAT), 2);
});

test('no-store skips a stored entry and keeps it', async (t) => {
  const { fake, gateway } = await startStack(t);
  const body = chatBody('keep the old one');

  const miss = await postJson(gateway, CHAT, body);
  assertHeader(miss.headers, 'x-agentnet-cache', 'miss');

  const bypass = await postJson(gateway, CHAT, body, { 'Cache-Control': 'no-store' });
  assertHeader(bypass.headers, 'x-agentnet-cache', 'bypass');
  assert.equal(fake.count(CHAT), 2);

  const plain = await postJson(gateway, CHAT, body);
  assertHeader(plain.headers, 'x-agentnet-cache', 'hit');
  assert.equal(plain.json.id, miss.json.id, 'no-store left the first entry in place');
});

test('TTL header of 1 s expires the entry', async (t) => {
  const { fake, gateway } = await startStack(t);
  const body = chatBody('short lived');

  const stored = await postJson(gateway, CHAT, body, { 'X-AgentNet-Cache-TTL': '1' });
  assertHeader(stored.headers, 'x-agentnet-cache', 'miss');

  const soon = await postJson(gateway, CHAT, body);
  assertHeader(soon.headers, 'x-agentnet-cache', 'hit', 'right after storing');
  assert.equal(fake.count(CHAT), 1);

  await sleep(2200);
  const late = await postJson(gateway, CHAT, body);
  assertHeader(late.headers, 'x-agentnet-cache', 'miss', '2.2 s after storing with TTL 1');
  assert.equal(fake.count(CHAT), 2);
});

test('namespaces do not share entries', async (t) => {
  const { fake, gateway } = await startStack(t);
  const body = chatBody('namespaced');
  const inA = { 'X-AgentNet-Cache-Namespace': 'a' };
  const inB = { 'X-AgentNet-Cache-Namespace': 'b' };

  assertHeader((await postJson(gateway, CHAT, body, inA)).headers, 'x-agentnet-cache', 'miss', 'first in a');
  assertHeader((await postJson(gateway, CHAT, body, inB)).headers, 'x-agentnet-cache', 'miss', 'first in b');
  assertHeader((await postJson(gateway, CHAT, body)).headers, 'x-agentnet-cache', 'miss', 'default namespace');
  assert.equal(fake.count(CHAT), 3);

  const hitA = await postJson(gateway, CHAT, body, inA);
  assertHeader(hitA.headers, 'x-agentnet-cache', 'hit', 'second in a');
  const hitB = await postJson(gateway, CHAT, body, inB);
  assertHeader(hitB.headers, 'x-agentnet-cache', 'hit', 'second in b');
  assert.notEqual(hitA.json.id, hitB.json.id, 'a and b contain different upstream responses');
  assert.equal(fake.count(CHAT), 3);
});
