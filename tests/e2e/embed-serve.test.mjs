// /v1/embeddings served by a local model (--embed-model), here the
// weight-free hash:64 model, through the official openai client and fetch.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openaiClient, assertOpenAIError } from './lib/checks.mjs';
import { postJson, request, startGateway, startStack } from './lib/gateway.mjs';

const EMBED = '/v1/embeddings';
const MODEL = 'hash:64';
const DIMS = 64;

function norm(vector) {
  return Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
}

function decodeBase64(text) {
  const bytes = Buffer.from(text, 'base64');
  return Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
}

async function startLocal(t, args = []) {
  const gateway = await startGateway({ upstream: null, args: ['--embed-model', MODEL, ...args] });
  t.after(() => gateway.kill9());
  return gateway;
}

test('openai client embeds with the local model', async (t) => {
  const gateway = await startLocal(t);
  const client = openaiClient(gateway);
  const { data, response } = await client.embeddings
    .create({ model: MODEL, input: ['the quick brown fox', 'jumps over the lazy dog'] })
    .withResponse();

  assert.equal(response.headers.get('x-agentnet-cache'), 'miss');
  assert.equal(data.model, MODEL);
  assert.equal(data.data.length, 2);
  data.data.forEach((item, i) => {
    assert.equal(item.index, i, `index of item ${i}`);
    assert.equal(item.embedding.length, DIMS, `dimensions of item ${i}`);
    assert.ok(Math.abs(norm(item.embedding) - 1) < 1e-5, `item ${i} is not unit length`);
  });
  assert.notDeepEqual(data.data[0].embedding, data.data[1].embedding);
  assert.ok(data.usage.prompt_tokens > 0, 'usage.prompt_tokens');
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens);
});

test('repeat local request is a cache hit', async (t) => {
  const gateway = await startLocal(t);
  const body = { model: MODEL, input: ['cache me', 'and me'], encoding_format: 'float' };
  const first = await postJson(gateway, EMBED, body);
  const second = await postJson(gateway, EMBED, body);

  assert.equal(first.status, 200, first.text);
  assert.equal(first.headers.get('x-agentnet-cache'), 'miss');
  assert.equal(second.headers.get('x-agentnet-cache'), 'hit');
  assert.equal(second.headers.get('x-agentnet-cache-items'), '2/2');
  assert.deepEqual(second.json.data, first.json.data);
  assert.equal(second.json.usage.prompt_tokens, first.json.usage.prompt_tokens);
});

test('float and base64 formats carry the same vector', async (t) => {
  const gateway = await startLocal(t);
  const input = 'format check';
  const asFloat = await postJson(gateway, EMBED, { model: MODEL, input, encoding_format: 'float' });
  const asBase64 = await postJson(gateway, EMBED, { model: MODEL, input, encoding_format: 'base64' });

  assert.equal(asFloat.status, 200, asFloat.text);
  assert.equal(asBase64.status, 200, asBase64.text);
  const floats = asFloat.json.data[0].embedding;
  const decoded = decodeBase64(asBase64.json.data[0].embedding);
  assert.equal(decoded.length, DIMS);
  decoded.forEach((x, d) => assert.ok(Math.abs(x - floats[d]) < 1e-7, `component ${d}: ${x} vs ${floats[d]}`));
});

test('empty and whitespace texts get defined vectors', async (t) => {
  const gateway = await startLocal(t);
  const response = await postJson(gateway, EMBED, { model: MODEL, input: ['', '   \t'], encoding_format: 'float' });

  assert.equal(response.status, 200, response.text);
  for (const item of response.json.data) {
    assert.equal(item.embedding.length, DIMS);
    assert.ok(item.embedding.every(Number.isFinite), 'non-finite component');
  }
});

test('one megabyte text is embedded', async (t) => {
  const gateway = await startLocal(t);
  const text = 'lorem ipsum dolor sit amet '.repeat(40000);
  const response = await postJson(gateway, EMBED, { model: MODEL, input: text, encoding_format: 'float' });

  assert.equal(response.status, 200, response.text.slice(0, 300));
  assert.equal(response.json.data[0].embedding.length, DIMS);
  assert.equal(typeof response.json.usage.truncated_inputs, 'number');
});

const BAD_REQUESTS = [
  {
    name: 'dimensions the model cannot give',
    body: { model: MODEL, input: 'x', dimensions: 32 },
    param: 'dimensions',
    message: /gives \d+ dimensions, not 32; leave out "dimensions" or set it to \d+/,
  },
  { name: 'unknown encoding format', body: { model: MODEL, input: 'x', encoding_format: 'int8' }, param: 'encoding_format' },
  { name: 'ten thousand inputs', body: { model: MODEL, input: Array.from({ length: 10000 }, (_, i) => `t${i}`) }, param: 'input', message: /2048/ },
  { name: 'empty input array', body: { model: MODEL, input: [] }, param: 'input' },
  {
    name: 'token ids for a model without vocabulary',
    body: { model: MODEL, input: [[1, 2, 3]] },
    param: 'input',
    message: /token/,
  },
];

for (const bad of BAD_REQUESTS) {
  test(`local embeddings reject ${bad.name}`, async (t) => {
    const gateway = await startLocal(t);
    const response = await postJson(gateway, EMBED, bad.body);

    assert.equal(response.status, 400, response.text.slice(0, 300));
    assertOpenAIError(response.json, bad.name);
    assert.equal(response.json.error.param, bad.param);
    if (bad.message) {
      assert.match(response.json.error.message, bad.message);
    }
    const health = await request(gateway, 'GET', '/healthz');
    assert.equal(health.status, 200, 'gateway stopped serving after a bad request');
  });
}

test('dimensions equal to the model are accepted', async (t) => {
  const gateway = await startLocal(t);
  const response = await postJson(gateway, EMBED, { model: MODEL, input: 'x', dimensions: DIMS, encoding_format: 'float' });
  assert.equal(response.status, 200, response.text);
});

test('model alias names the local model', async (t) => {
  const gateway = await startLocal(t, ['--embed-model-name', 'team-embedder']);
  const served = await postJson(gateway, EMBED, { model: 'team-embedder', input: 'alias', encoding_format: 'float' });
  const unknown = await postJson(gateway, EMBED, { model: 'text-embedding-3-small', input: 'alias' });

  assert.equal(served.status, 200, served.text);
  assert.equal(served.json.model, 'team-embedder');
  assert.equal(unknown.status, 404, unknown.text);
  assertOpenAIError(unknown.json, 'unknown model');
  assert.equal(unknown.json.error.code, 'model_not_found');
  assert.match(unknown.json.error.message, /team-embedder/);
});

test('other models still go upstream', async (t) => {
  const { fake, gateway } = await startStack(t, { args: ['--embed-model', MODEL] });
  const local = await postJson(gateway, EMBED, { model: MODEL, input: 'local', encoding_format: 'float' });
  const remote = await postJson(gateway, EMBED, { model: 'fake-embed', input: 'remote', encoding_format: 'float' });

  assert.equal(local.status, 200, local.text);
  assert.equal(remote.status, 200, remote.text);
  assert.equal(fake.count(EMBED), 1, 'exactly the remote request reached the upstream');
  assert.equal(local.json.data[0].embedding.length, DIMS);
});

test('concurrent requests match sequential ones', async (t) => {
  const gateway = await startLocal(t);
  const inputs = Array.from({ length: 16 }, (_, i) => [`sentence number ${i}`, `another ${i * 7}`]);
  const together = await Promise.all(
    inputs.map((input) => postJson(gateway, EMBED, { model: MODEL, input, encoding_format: 'float' }, { 'Cache-Control': 'no-store' })),
  );
  for (let i = 0; i < inputs.length; i++) {
    assert.equal(together[i].status, 200, together[i].text);
    const alone = await postJson(gateway, EMBED, { model: MODEL, input: inputs[i], encoding_format: 'float' }, { 'Cache-Control': 'no-store' });
    assert.deepEqual(together[i].json.data, alone.json.data, `request ${i} differs when batched`);
  }
});

test('models and readyz without an upstream', async (t) => {
  const gateway = await startLocal(t);
  const models = await request(gateway, 'GET', '/v1/models');
  const ready = await request(gateway, 'GET', '/readyz');

  assert.equal(models.status, 200, models.text);
  assert.deepEqual(models.json.data.map((m) => m.id), [MODEL]);
  assert.equal(ready.status, 200, ready.text);
});

test('invalid embed model stops startup', async () => {
  await assert.rejects(
    startGateway({ upstream: null, args: ['--embed-model', 'hash:abc'] }),
    /exited[\s\S]*hash:abc/,
  );
});
