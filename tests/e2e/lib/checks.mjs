// Assertions and clients shared by the test files.

import assert from 'node:assert/strict';

import OpenAI from 'openai';

// Returns an official openai client for the gateway. Retries are off so that
// every call reaches the gateway exactly once and upstream counts stay exact.
export function openaiClient(gateway, apiKey = 'sk-test') {
  return new OpenAI({ baseURL: gateway.baseURL, apiKey, maxRetries: 0, timeout: 15000 });
}

// Asserts that `payload` has the OpenAI error shape
// {"error": {"message", "type", "param", "code"}}: message and type are
// non-empty strings, param and code are strings or null.
export function assertOpenAIError(payload, context = '') {
  const where = context ? ` (${context})` : '';
  assert.equal(typeof payload, 'object', `error body is not a JSON object${where}`);
  assert.notEqual(payload, null, `error body is null${where}`);
  assert.equal(typeof payload.error, 'object', `error body has no "error" object${where}: ${JSON.stringify(payload)}`);
  const error = payload.error;
  assert.equal(typeof error.message, 'string', `error.message is not a string${where}`);
  assert.ok(error.message.length > 0, `error.message is empty${where}`);
  assert.equal(typeof error.type, 'string', `error.type is not a string${where}`);
  assert.ok(error.type.length > 0, `error.type is empty${where}`);
  assert.ok('param' in error, `error.param is missing${where}`);
  assert.ok(error.param === null || typeof error.param === 'string', `error.param is ${typeof error.param}${where}`);
  assert.ok('code' in error, `error.code is missing${where}`);
  assert.ok(error.code === null || typeof error.code === 'string', `error.code is ${typeof error.code}${where}`);
}

// Asserts that a response header has exactly `expected` as its value.
export function assertHeader(headers, name, expected, context = '') {
  const value = typeof headers.get === 'function' ? headers.get(name) : headers[name.toLowerCase()];
  assert.equal(value, expected, `${name} header${context ? ` (${context})` : ''}`);
}

// Parses an SSE body into its data payloads, in order. `[DONE]` is kept as
// the string '[DONE]', and every other payload is parsed as JSON.
export function parseSseData(text) {
  const payloads = [];
  for (const block of text.split('\n\n')) {
    const dataLines = block
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''));
    if (dataLines.length === 0) {
      continue;
    }
    const data = dataLines.join('\n');
    payloads.push(data === '[DONE]' ? data : JSON.parse(data));
  }
  return payloads;
}

// Joins the `delta.content` pieces of chat completion chunks.
export function chatContentOf(chunks) {
  return chunks
    .filter((chunk) => chunk !== '[DONE]')
    .map((chunk) => chunk.choices?.[0]?.delta?.content ?? '')
    .join('');
}

// Waits for `promise`, or rejects with a message naming `what` when it has
// not settled after `ms` milliseconds.
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
