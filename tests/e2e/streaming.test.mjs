// Streamed chat completions (`stream: true`): pass-through while upstream
// sends, replay from the cache as SSE, and no caching of broken streams.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertHeader, chatContentOf, openaiClient, parseSseData, withTimeout } from './lib/checks.mjs';
import { postJson, startStack } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';

function streamParams(content) {
  return { model: 'fake-chat', stream: true, messages: [{ role: 'user', content }] };
}

// Reads a stream of the openai client to the end and returns its chunks.
async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  return chunks;
}

test('stream chunks pass through before upstream ends', async (t) => {
  const { fake, gateway } = await startStack(t);
  let openGate;
  fake.behavior.streamGate = new Promise((resolve) => {
    openGate = resolve;
  });
  // The gate must open even when an assertion fails, or the fake never ends.
  t.after(() => openGate());

  const client = openaiClient(gateway);
  const { data: stream, response } = await withTimeout(
    client.chat.completions.create(streamParams('stream me')).withResponse(),
    5000,
    'response headers while upstream delays its last event',
  );
  assertHeader(response.headers, 'x-agentnet-cache', 'miss');
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);

  const iterator = stream[Symbol.asyncIterator]();
  const first = await withTimeout(iterator.next(), 5000, 'first chunk while upstream delays its last event');
  assert.equal(first.done, false);
  assert.equal(fake.lastStreamEventSent, false, 'the first chunk arrived before upstream sent its last event');
  assert.equal(first.value.choices[0].delta.role, 'assistant');

  openGate();
  const rest = [];
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
    rest.push(next.value);
  }
  assert.equal(chatContentOf([first.value, ...rest]), 'echo:stream me');
  assert.equal(rest.at(-1).choices[0].finish_reason, 'stop');
  assert.equal(fake.count(CHAT), 1);
});

test('repeated stream replays from cache', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway);
  const params = streamParams('replay me');

  const first = await client.chat.completions.create(params).withResponse();
  assertHeader(first.response.headers, 'x-agentnet-cache', 'miss');
  const firstChunks = await collect(first.data);
  assert.equal(chatContentOf(firstChunks), 'echo:replay me');

  const second = await client.chat.completions.create(params).withResponse();
  assertHeader(second.response.headers, 'x-agentnet-cache', 'hit');
  assert.match(second.response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const secondChunks = await collect(second.data);
  assert.equal(chatContentOf(secondChunks), 'echo:replay me');
  assert.deepEqual(
    secondChunks.map((chunk) => chunk.id),
    firstChunks.map((chunk) => chunk.id),
    'replayed chunks carry the ids of the stored stream',
  );
  assert.equal(secondChunks.at(-1).choices[0].finish_reason, 'stop');
  assert.equal(fake.count(CHAT), 1, 'the replay made no upstream call');

  // The raw replay ends with the [DONE] event, as the upstream stream did.
  const raw = await postJson(gateway, CHAT, params);
  assert.equal(raw.status, 200);
  assertHeader(raw.headers, 'x-agentnet-cache', 'hit', 'raw replay');
  assert.ok(raw.text.endsWith('data: [DONE]\n\n'), `raw replay does not end with [DONE]: ${JSON.stringify(raw.text)}`);
  const payloads = parseSseData(raw.text);
  assert.equal(payloads.at(-1), '[DONE]');
  assert.equal(chatContentOf(payloads), 'echo:replay me');
  assert.equal(fake.count(CHAT), 1);
});

test('stream and non-stream are separate entries', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway);
  const params = streamParams('two shapes');

  const streamed = await client.chat.completions.create(params).withResponse();
  await collect(streamed.data);
  assertHeader(streamed.response.headers, 'x-agentnet-cache', 'miss', 'streamed');

  const plainParams = { model: params.model, messages: params.messages };
  const plain = await client.chat.completions.create(plainParams).withResponse();
  assertHeader(plain.response.headers, 'x-agentnet-cache', 'miss', 'non-streamed with the same messages');
  assert.equal(plain.data.object, 'chat.completion');
  assert.equal(plain.data.choices[0].message.content, 'echo:two shapes');
  assert.equal(fake.count(CHAT), 2);
});

test('broken stream is not stored', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway);
  const params = streamParams('break me');

  fake.behavior.breakStreamAfter = 2;
  // The client may see an error or a truncated stream; both are acceptable
  // here, because this test is about what the gateway stores.
  try {
    const broken = await client.chat.completions.create(params);
    await withTimeout(collect(broken), 10000, 'reading the broken stream');
  } catch (err) {
    if (/did not finish within/.test(err.message)) {
      throw err;
    }
  }
  assert.equal(fake.count(CHAT), 1);

  fake.resetBehavior();
  const retry = await client.chat.completions.create(params).withResponse();
  assertHeader(retry.response.headers, 'x-agentnet-cache', 'miss', 'request after the broken stream');
  const chunks = await collect(retry.data);
  assert.equal(chatContentOf(chunks), 'echo:break me');
  assert.equal(fake.count(CHAT), 2, 'the retry called upstream');
});
