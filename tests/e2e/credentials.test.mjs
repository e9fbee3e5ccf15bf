// Upstream credentials. Without a configured key, each caller's
// Authorization goes upstream and callers do not share entries. With a
// configured key, the upstream receives only that key and the gateway never
// logs it.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertHeader, openaiClient } from './lib/checks.mjs';
import { startStack } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';
const PARAMS = { model: 'fake-chat', messages: [{ role: 'user', content: 'whose key' }] };

test('pass-through callers do not share entries', async (t) => {
  const { fake, gateway } = await startStack(t);
  const alice = openaiClient(gateway, 'sk-alice');
  const bob = openaiClient(gateway, 'sk-bob');

  const fromAlice = await alice.chat.completions.create(PARAMS).withResponse();
  assertHeader(fromAlice.response.headers, 'x-agentnet-cache', 'miss', 'alice');
  assert.equal(fake.last(CHAT).headers.authorization, 'Bearer sk-alice');

  const fromBob = await bob.chat.completions.create(PARAMS).withResponse();
  assertHeader(fromBob.response.headers, 'x-agentnet-cache', 'miss', 'bob after alice');
  assert.equal(fake.last(CHAT).headers.authorization, 'Bearer sk-bob');
  assert.equal(fake.count(CHAT), 2);

  const aliceAgain = await alice.chat.completions.create(PARAMS).withResponse();
  assertHeader(aliceAgain.response.headers, 'x-agentnet-cache', 'hit', 'alice again');
  assert.equal(aliceAgain.data.id, fromAlice.data.id);
  assert.equal(fake.count(CHAT), 2);
});

test('configured key replaces client key upstream', async (t) => {
  const { fake, gateway } = await startStack(t, { env: { AGENTNET_UPSTREAM_API_KEY: 'sk-upstream' } });
  const client = openaiClient(gateway, 'sk-client-secret');

  const first = await client.chat.completions.create(PARAMS).withResponse();
  assertHeader(first.response.headers, 'x-agentnet-cache', 'miss');
  const seen = fake.last(CHAT).headers;
  assert.equal(seen.authorization, 'Bearer sk-upstream');
  assert.ok(
    !JSON.stringify(seen).includes('sk-client-secret'),
    `the client key reached upstream in ${JSON.stringify(seen)}`,
  );

  await client.chat.completions.create(PARAMS);
  const exit = await gateway.stop();
  assert.equal(exit.code, 0);
  assert.ok(!gateway.stderr.includes('sk-upstream'), 'the upstream key appears in the gateway stderr');
  assert.ok(!gateway.stderr.includes('sk-client-secret'), 'the client key appears in the gateway stderr');
});
