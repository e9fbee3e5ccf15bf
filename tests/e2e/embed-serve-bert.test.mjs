// /v1/embeddings served by a local BERT model (the committed bert-tiny
// fixture), checked against the PyTorch reference embeddings that
// scripts/embed/make_fixture.py wrote next to it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { assertOpenAIError, openaiClient } from './lib/checks.mjs';
import { postJson, request, startGateway } from './lib/gateway.mjs';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/bert-tiny');
const EXPECTED = JSON.parse(readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8'));
const MODEL_DIR = path.join(FIXTURES, 'f32');
const MODEL = 'f32'; // the default name is the directory's last component
const EMBED = '/v1/embeddings';
const TOLERANCE = 1e-5;

function assertClose(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: dimensions`);
  actual.forEach((x, d) => {
    assert.ok(Math.abs(x - expected[d]) <= TOLERANCE, `${what}: component ${d} is ${x}, PyTorch gave ${expected[d]}`);
  });
}

async function startBert(t, args = []) {
  const gateway = await startGateway({ upstream: null, args: ['--embed-model', MODEL_DIR, ...args] });
  t.after(() => gateway.kill9());
  return gateway;
}

test('openai client gets the PyTorch reference embeddings', async (t) => {
  const gateway = await startBert(t);
  const client = openaiClient(gateway);
  const texts = EXPECTED.inputs.map((input) => input.text);
  const { data, response } = await client.embeddings.create({ model: MODEL, input: texts }).withResponse();

  assert.equal(response.headers.get('x-agentnet-cache'), 'miss');
  assert.equal(data.data.length, texts.length);
  data.data.forEach((item, i) => assertClose(item.embedding, EXPECTED.variants.f32.embeddings[i], `input ${i}`));
  const tokens = EXPECTED.inputs.reduce((sum, input) => sum + input.tokens, 0);
  assert.equal(data.usage.prompt_tokens, tokens);
});

test('partly cached batch keeps order and exact usage', async (t) => {
  const gateway = await startBert(t);
  const [a, b, c] = EXPECTED.inputs.slice(1, 4);
  const first = await postJson(gateway, EMBED, { model: MODEL, input: [a.text, b.text], encoding_format: 'float' });
  const second = await postJson(gateway, EMBED, { model: MODEL, input: [c.text, a.text, b.text], encoding_format: 'float' });

  assert.equal(first.status, 200, first.text);
  assert.equal(second.status, 200, second.text);
  assert.equal(second.headers.get('x-agentnet-cache-items'), '2/3');
  const reference = EXPECTED.variants.f32.embeddings;
  assertClose(second.json.data[0].embedding, reference[3], 'c');
  assertClose(second.json.data[1].embedding, reference[1], 'a');
  assertClose(second.json.data[2].embedding, reference[2], 'b');
  assert.equal(second.json.usage.prompt_tokens, a.tokens + b.tokens + c.tokens);
});

test('long input is truncated and usage says so', async (t) => {
  const gateway = await startBert(t);
  const long = EXPECTED.inputs.find((input) => input.truncated);
  const response = await postJson(gateway, EMBED, { model: MODEL, input: [long.text, 'cat'], encoding_format: 'float' });

  assert.equal(response.status, 200, response.text);
  assert.equal(response.json.usage.truncated_inputs, 1);
  assert.equal(response.json.usage.prompt_tokens, EXPECTED.max_seq_length + 3);
});

test('token id input matches the same text', async (t) => {
  const gateway = await startBert(t);
  const input = EXPECTED.inputs[2];
  const response = await postJson(gateway, EMBED, { model: MODEL, input: [input.ids], encoding_format: 'float' });

  assert.equal(response.status, 200, response.text);
  assertClose(response.json.data[0].embedding, EXPECTED.variants.f32.embeddings[2], 'token ids');
});

test('token id outside the vocabulary is a 400', async (t) => {
  const gateway = await startBert(t);
  const response = await postJson(gateway, EMBED, { model: MODEL, input: [[5, 999999]] });

  assert.equal(response.status, 400, response.text);
  assertOpenAIError(response.json, 'out-of-vocabulary id');
  assert.match(response.json.error.message, /999999/);
  const health = await request(gateway, 'GET', '/healthz');
  assert.equal(health.status, 200);
});

test('model directory with a missing file stops startup', async () => {
  await assert.rejects(
    startGateway({ upstream: null, args: ['--embed-model', path.join(FIXTURES, 'no-such-model')] }),
    /exited[\s\S]*no-such-model/,
  );
});
