// Response cache basics: a repeated request gets the stored bytes from the
// cache, and any change to what the model would see is a miss.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertHeader, openaiClient } from './lib/checks.mjs';
import { fetchMetrics, metricValue, postJson, sleep, startStack } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';

test('chat repeat is a hit with one upstream call', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway);
  const params = { model: 'fake-chat', messages: [{ role: 'user', content: 'hello cache' }] };

  const first = await client.chat.completions.create(params).withResponse();
  assertHeader(first.response.headers, 'x-agentnet-cache', 'miss', 'first request');
  assert.equal(first.data.choices[0].message.content, 'echo:hello cache');

  const second = await client.chat.completions.create(params).withResponse();
  assertHeader(second.response.headers, 'x-agentnet-cache', 'hit', 'second request');
  assert.equal(second.data.id, first.data.id, 'a hit returns the id of the stored response');
  assert.deepEqual(second.data, first.data);
  assert.equal(fake.count(CHAT), 1);
});

test('chat hit returns stored bytes and content type', async (t) => {
  const { fake, gateway } = await startStack(t);
  const body = { model: 'fake-chat', messages: [{ role: 'user', content: 'bytes please' }] };

  const miss = await postJson(gateway, CHAT, body);
  assert.equal(miss.status, 200);
  assertHeader(miss.headers, 'x-agentnet-cache', 'miss');
  const upstreamBytes = fake.last(CHAT).responseBody;
  assert.ok(miss.bytes.equals(upstreamBytes), `miss body ${miss.text} differs from upstream body ${upstreamBytes}`);
  assert.equal(miss.headers.get('content-type'), 'application/json; charset=utf-8');

  const hit = await postJson(gateway, CHAT, body);
  assert.equal(hit.status, 200);
  assertHeader(hit.headers, 'x-agentnet-cache', 'hit');
  assert.ok(hit.bytes.equals(miss.bytes), `hit body ${hit.text} differs from miss body ${miss.text}`);
  assert.equal(hit.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(fake.count(CHAT), 1);
});

test('Age header is sent on hits only', async (t) => {
  const { gateway } = await startStack(t);
  const body = { model: 'fake-chat', messages: [{ role: 'user', content: 'how old' }] };

  const miss = await postJson(gateway, CHAT, body);
  assertHeader(miss.headers, 'x-agentnet-cache', 'miss');
  assert.equal(miss.headers.get('age'), null, 'a miss carries no Age header');

  const freshHit = await postJson(gateway, CHAT, body);
  assertHeader(freshHit.headers, 'x-agentnet-cache', 'hit');
  const freshAge = freshHit.headers.get('age');
  assert.match(freshAge ?? '', /^\d+$/, `Age of a hit must be integer seconds, got ${freshAge}`);
  assert.ok(Number(freshAge) <= 1, `Age right after storing is ${freshAge}`);

  await sleep(1100);
  const laterHit = await postJson(gateway, CHAT, body);
  assertHeader(laterHit.headers, 'x-agentnet-cache', 'hit');
  const laterAge = laterHit.headers.get('age');
  assert.match(laterAge ?? '', /^\d+$/, `Age of a hit must be integer seconds, got ${laterAge}`);
  assert.ok(Number(laterAge) >= 1, `Age 1.1 s after storing is ${laterAge}`);
});

test('metrics count one miss and one hit', async (t) => {
  const { gateway } = await startStack(t);
  const client = openaiClient(gateway);
  const params = { model: 'fake-chat', messages: [{ role: 'user', content: 'count me' }] };
  await client.chat.completions.create(params);
  await client.chat.completions.create(params);

  const { samples, text } = await fetchMetrics(gateway);
  assert.equal(
    metricValue(samples, 'agentnet_cache_requests_total', { cache: 'responses', result: 'hit' }),
    1,
    `responses hits in:\n${text}`,
  );
  assert.equal(
    metricValue(samples, 'agentnet_cache_requests_total', { cache: 'responses', result: 'miss' }),
    1,
    `responses misses in:\n${text}`,
  );
});

test('completions repeat is a hit', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway);
  const params = { model: 'fake-instruct', prompt: 'complete this', max_tokens: 8 };

  const first = await client.completions.create(params).withResponse();
  assertHeader(first.response.headers, 'x-agentnet-cache', 'miss');
  assert.equal(first.data.choices[0].text, 'echo:complete this');

  const second = await client.completions.create(params).withResponse();
  assertHeader(second.response.headers, 'x-agentnet-cache', 'hit');
  assert.equal(second.data.id, first.data.id);
  assert.deepEqual(second.data, first.data);
  assert.equal(fake.count('/v1/completions'), 1);
});

test('changed temperature, model or messages miss', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway);
  const base = { model: 'fake-chat', temperature: 0.2, messages: [{ role: 'user', content: 'vary me' }] };
  const variants = [
    ['base request', base],
    ['other temperature', { ...base, temperature: 0.7 }],
    ['other model', { ...base, model: 'fake-chat-2' }],
    ['other message', { ...base, messages: [{ role: 'user', content: 'vary me!' }] }],
    ['extra message', { ...base, messages: [{ role: 'system', content: 'be brief' }, ...base.messages] }],
  ];

  for (const [name, params] of variants) {
    const { response } = await client.chat.completions.create(params).withResponse();
    assertHeader(response.headers, 'x-agentnet-cache', 'miss', name);
  }
  assert.equal(fake.count(CHAT), variants.length);

  const { response } = await client.chat.completions.create(base).withResponse();
  assertHeader(response.headers, 'x-agentnet-cache', 'hit', 'base request repeated');
  assert.equal(fake.count(CHAT), variants.length);
});

test('reordered keys and whitespace still hit', async (t) => {
  const { fake, gateway } = await startStack(t);
  const compact = '{"model":"fake-chat","temperature":0.5,"messages":[{"role":"user","content":"same thing"}]}';
  const reordered =
    '{\n  "messages" : [ { "content" : "same thing", "role" : "user" } ],\n' +
    '  "temperature" : 0.5,\n\t"model" : "fake-chat"\n}\n';

  const first = await postJson(gateway, CHAT, compact);
  assert.equal(first.status, 200);
  assertHeader(first.headers, 'x-agentnet-cache', 'miss');

  const second = await postJson(gateway, CHAT, reordered);
  assert.equal(second.status, 200);
  assertHeader(second.headers, 'x-agentnet-cache', 'hit');
  assert.ok(second.bytes.equals(first.bytes));
  assert.equal(fake.count(CHAT), 1);
});
