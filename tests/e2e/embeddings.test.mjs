// Embeddings cache: vectors are cached per input item, so a request sends
// upstream only the items that are not cached yet, and the response keeps the
// request's order, indexes and token usage.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertHeader, openaiClient } from './lib/checks.mjs';
import { countTokens, embeddingFor, encodeBase64Embedding } from './lib/fake-upstream.mjs';
import { postJson, startStack } from './lib/gateway.mjs';

const EMBEDDINGS = '/v1/embeddings';
const A = 'alpha';
const B = 'beta gamma';
const C = 'delta epsilon zeta eta';

// Asserts that `data` contains one embedding per item of `items`, in order,
// with index fields 0..n-1 and the vectors the fake computes.
function assertEmbeddings(data, items, context) {
  assert.equal(data.length, items.length, `${context}: number of embeddings`);
  items.forEach((item, i) => {
    assert.equal(data[i].index, i, `${context}: index of item ${i}`);
    assert.equal(data[i].object, 'embedding', `${context}: object of item ${i}`);
    assert.deepEqual(Array.from(data[i].embedding), embeddingFor(item), `${context}: vector of ${JSON.stringify(item)}`);
  });
}

test('openai client gets only uncached items sent', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway);

  const first = await client.embeddings.create({ model: 'fake-embed', input: [A, B] }).withResponse();
  assertHeader(first.response.headers, 'x-agentnet-cache', 'miss');
  assert.deepEqual(fake.embeddingInputs, [[A, B]]);
  assertEmbeddings(first.data.data, [A, B], 'first request');
  assert.equal(first.data.usage.prompt_tokens, countTokens(A) + countTokens(B));

  const second = await client.embeddings.create({ model: 'fake-embed', input: [B, C, A] });
  assert.deepEqual(fake.embeddingInputs[1], [C], 'upstream received only the uncached item');
  assertEmbeddings(second.data, [B, C, A], 'second request');
  assert.equal(second.usage.prompt_tokens, first.data.usage.prompt_tokens + countTokens(C));

  const cached = await client.embeddings.create({ model: 'fake-embed', input: [C, A] }).withResponse();
  assertHeader(cached.response.headers, 'x-agentnet-cache', 'hit', 'all items cached');
  assertEmbeddings(cached.data.data, [C, A], 'all-cached request');
  assert.equal(cached.data.usage.prompt_tokens, countTokens(C) + countTokens(A));
  assert.equal(fake.count(EMBEDDINGS), 2, 'the all-cached request made no upstream call');

  // The client decoded base64 above; this checks the encoding on the wire.
  const raw = await postJson(gateway, EMBEDDINGS, { model: 'fake-embed', input: [A], encoding_format: 'base64' });
  assert.equal(raw.status, 200);
  assert.equal(raw.json.data[0].embedding, encodeBase64Embedding(embeddingFor(A)));
  assert.equal(fake.count(EMBEDDINGS), 2);
});

test('float format gets only uncached items sent', async (t) => {
  const { fake, gateway } = await startStack(t);
  const request = (input) => postJson(gateway, EMBEDDINGS, { model: 'fake-embed', input, encoding_format: 'float' });

  const first = await request([A, B]);
  assert.equal(first.status, 200);
  assertHeader(first.headers, 'x-agentnet-cache', 'miss');
  assert.equal(first.json.object, 'list');
  assert.equal(first.json.model, 'fake-embed');
  assertEmbeddings(first.json.data, [A, B], 'first request');
  assert.equal(first.json.usage.prompt_tokens, countTokens(A) + countTokens(B));

  const second = await request([B, C, A]);
  assert.equal(second.status, 200);
  assert.deepEqual(fake.embeddingInputs, [[A, B], [C]]);
  assert.equal(fake.last(EMBEDDINGS).body.encoding_format, 'float');
  assertEmbeddings(second.json.data, [B, C, A], 'second request');
  assert.equal(second.json.usage.prompt_tokens, first.json.usage.prompt_tokens + countTokens(C));

  const cached = await request([C, A]);
  assert.equal(cached.status, 200);
  assertHeader(cached.headers, 'x-agentnet-cache', 'hit', 'all items cached');
  assertEmbeddings(cached.json.data, [C, A], 'all-cached request');
  assert.equal(cached.json.usage.prompt_tokens, countTokens(C) + countTokens(A));

  const single = await request(B);
  assert.equal(single.status, 200);
  assertHeader(single.headers, 'x-agentnet-cache', 'hit', 'single string input');
  assertEmbeddings(single.json.data, [B], 'single string input');
  assert.equal(fake.count(EMBEDDINGS), 2);
});

test('token array inputs are cached per item', async (t) => {
  const { fake, gateway } = await startStack(t);
  const request = (input) => postJson(gateway, EMBEDDINGS, { model: 'fake-embed', input, encoding_format: 'float' });
  const x = [101, 202, 303];
  const y = [404, 505];
  const z = [606];

  const first = await request([x, y]);
  assert.equal(first.status, 200);
  assertEmbeddings(first.json.data, [x, y], 'first request');

  const second = await request([y, z, x]);
  assert.equal(second.status, 200);
  assert.deepEqual(fake.embeddingInputs, [[x, y], [z]]);
  assertEmbeddings(second.json.data, [y, z, x], 'second request');
  assert.equal(second.json.usage.prompt_tokens, countTokens(x) + countTokens(y) + countTokens(z));
});
