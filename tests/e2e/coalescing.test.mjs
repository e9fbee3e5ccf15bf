// Request coalescing: concurrent identical misses share one upstream call.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { postJson, startStack } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';

test('ten concurrent misses make one upstream call', async (t) => {
  const { fake, gateway } = await startStack(t);
  fake.behavior.delayMs = 500;
  const body = { model: 'fake-chat', messages: [{ role: 'user', content: 'all at once' }] };

  const responses = await Promise.all(Array.from({ length: 10 }, () => postJson(gateway, CHAT, body)));

  assert.equal(fake.count(CHAT), 1);
  const upstreamBytes = fake.last(CHAT).responseBody;
  responses.forEach((response, i) => {
    assert.equal(response.status, 200, `request ${i} status`);
    assert.ok(response.bytes.equals(upstreamBytes), `request ${i} body ${response.text} differs from ${upstreamBytes}`);
  });
});
