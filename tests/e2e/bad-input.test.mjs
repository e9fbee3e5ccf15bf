// Requests the gateway must reject: each gets the right status and an
// OpenAI-shaped error, stores nothing, reaches no upstream, and the server
// keeps serving requests.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import { assertOpenAIError, withTimeout } from './lib/checks.mjs';
import { postJson, request, scrapeMetric, sleep, startStack } from './lib/gateway.mjs';
import { buildRequest, exchange, parseResponse } from './lib/raw-http.mjs';

const CHAT = '/v1/chat/completions';
const MIB = 1024 * 1024;
const VALID_BODY = { model: 'fake-chat', messages: [{ role: 'user', content: 'valid' }] };

// Returns a chat request body of exactly `size` bytes of valid JSON.
function chatBodyOfSize(size) {
  const prefix = '{"model":"fake-chat","messages":[{"role":"user","content":"';
  const suffix = '"}]}';
  return prefix + 'x'.repeat(size - prefix.length - suffix.length) + suffix;
}

function invalidUtf8Body() {
  return Buffer.concat([
    Buffer.from('{"model":"fake-chat","messages":[{"role":"user","content":"bad '),
    Buffer.from([0xff, 0xfe, 0xc3]),
    Buffer.from('"}]}'),
  ]);
}

const JSON_HEADERS = { 'Content-Type': 'application/json', Authorization: 'Bearer sk-test' };

const CASES = [
  {
    name: 'body that is not JSON is 400',
    status: 400,
    request: () => buildRequest('POST', CHAT, { headers: JSON_HEADERS, body: '{"model": "fake-chat", "messages": [' }),
  },
  {
    name: 'JSON array body is 400',
    status: 400,
    request: () => buildRequest('POST', CHAT, { headers: JSON_HEADERS, body: '[{"model": "fake-chat"}]' }),
  },
  {
    name: 'missing model is 400',
    status: 400,
    messagePattern: /model/,
    request: () =>
      buildRequest('POST', CHAT, {
        headers: JSON_HEADERS,
        body: JSON.stringify({ messages: [{ role: 'user', content: 'no model' }] }),
      }),
  },
  {
    name: 'numeric model is 400',
    status: 400,
    messagePattern: /model/,
    request: () =>
      buildRequest('POST', CHAT, {
        headers: JSON_HEADERS,
        body: JSON.stringify({ model: 42, messages: [{ role: 'user', content: 'number model' }] }),
      }),
  },
  {
    name: 'invalid UTF-8 string is 400',
    status: 400,
    request: () => buildRequest('POST', CHAT, { headers: JSON_HEADERS, body: invalidUtf8Body() }),
  },
  {
    name: 'text/plain content type is 415',
    status: 415,
    request: () =>
      buildRequest('POST', CHAT, {
        headers: { 'Content-Type': 'text/plain', Authorization: 'Bearer sk-test' },
        body: JSON.stringify(VALID_BODY),
      }),
  },
  {
    // Like curl, the client announces the size and waits for 100 Continue,
    // so the server can reject the body before it is sent.
    name: 'announced 4 MiB body is 413',
    status: 413,
    request: () =>
      buildRequest('POST', CHAT, {
        headers: { ...JSON_HEADERS, Expect: '100-continue', 'Content-Length': String(4 * MIB + 1) },
      }),
  },
  {
    name: 'unknown route is 404',
    status: 404,
    request: () => buildRequest('POST', '/v1/no-such-route', { headers: JSON_HEADERS, body: JSON.stringify(VALID_BODY) }),
  },
  {
    name: 'GET on chat completions is 405',
    status: 405,
    allow: /POST/,
    request: () => buildRequest('GET', CHAT, { headers: { Authorization: 'Bearer sk-test' } }),
  },
  {
    name: '24 KiB header is 431',
    status: 431,
    request: () =>
      buildRequest('POST', CHAT, {
        headers: { ...JSON_HEADERS, 'X-Padding': 'p'.repeat(24 * 1024) },
        body: JSON.stringify(VALID_BODY),
      }),
  },
  {
    name: '12 KiB URL is 414',
    status: 414,
    request: () =>
      buildRequest('POST', `${CHAT}?pad=${'u'.repeat(12 * 1024)}`, {
        headers: JSON_HEADERS,
        body: JSON.stringify(VALID_BODY),
      }),
  },
  {
    name: '256 KiB header is still 431',
    status: 431,
    htmlBody: true,
    request: () =>
      buildRequest('POST', CHAT, {
        headers: { ...JSON_HEADERS, 'X-Padding': 'p'.repeat(256 * 1024) },
        body: JSON.stringify(VALID_BODY),
      }),
  },
  {
    name: '256 KiB URL is still 414',
    status: 414,
    htmlBody: true,
    request: () =>
      buildRequest('POST', `${CHAT}?pad=${'u'.repeat(256 * 1024)}`, {
        headers: JSON_HEADERS,
        body: JSON.stringify(VALID_BODY),
      }),
  },
];

// Stores one valid response so that the responses entry gauge exists, and
// returns its value.
async function primeCache(gateway) {
  const response = await postJson(gateway, CHAT, VALID_BODY);
  assert.equal(response.status, 200, 'priming request');
  return scrapeMetric(gateway, 'agentnet_cache_entries', { cache: 'responses' });
}

// Asserts that nothing was stored or sent upstream since priming and that
// /healthz still returns 200.
async function assertNothingChanged(gateway, fake, entriesBefore) {
  const entriesAfter = await scrapeMetric(gateway, 'agentnet_cache_entries', { cache: 'responses' });
  assert.equal(entriesAfter, entriesBefore, 'agentnet_cache_entries{cache="responses"} changed');
  assert.equal(fake.count(CHAT), 1, 'the rejected request reached upstream');
  const health = await request(gateway, 'GET', '/healthz');
  assert.equal(health.status, 200, '/healthz after the rejected request');
}

for (const testCase of CASES) {
  test(testCase.name, async (t) => {
    const { fake, gateway } = await startStack(t);
    const entriesBefore = await primeCache(gateway);
    assert.equal(entriesBefore, 1, 'one entry after priming');

    const result = await exchange(gateway.port, testCase.request());
    assert.ok(result.response, `no HTTP response (error ${result.error?.code}); bytes: ${result.bytes.subarray(0, 200)}`);
    const { status, headers, body } = result.response;
    assert.equal(status, testCase.status, `status; body: ${body.subarray(0, 300)}`);

    if (testCase.htmlBody) {
      // Past the connection's memory, libmicrohttpd answers before the gateway sees the request.
      await assertNothingChanged(gateway, fake, entriesBefore);
      return;
    }
    let payload;
    assert.doesNotThrow(() => {
      payload = JSON.parse(body.toString('utf8'));
    }, `error body is not JSON: ${body.subarray(0, 300)}`);
    assertOpenAIError(payload, testCase.name);
    if (testCase.status === 400) {
      assert.equal(payload.error.type, 'invalid_request_error');
    }
    if (testCase.messagePattern) {
      assert.match(payload.error.message, testCase.messagePattern);
    }
    if (testCase.allow) {
      assert.match(headers.allow ?? '', testCase.allow, 'Allow header of a 405');
    }

    await assertNothingChanged(gateway, fake, entriesBefore);
  });
}

test('uploaded 4 MiB body is 413 via fetch', async (t) => {
  const { fake, gateway } = await startStack(t);
  const entriesBefore = await primeCache(gateway);

  // fetch sends the whole body without waiting for 100 Continue, as the
  // openai client does. The 413 must reach it although the server rejects
  // the request before reading the body.
  let response;
  try {
    response = await postJson(gateway, CHAT, chatBodyOfSize(4 * MIB + 1));
  } catch (err) {
    assert.fail(`POST of 4 MiB + 1 byte failed without an HTTP response: ${err.message} (${err.cause?.code})`);
  }
  assert.equal(response.status, 413);
  assertOpenAIError(response.json, 'body over 4 MiB');

  await assertNothingChanged(gateway, fake, entriesBefore);
});

test('--max-body-bytes 1000 rejects 2000 bytes', async (t) => {
  const { fake, gateway } = await startStack(t, { args: ['--max-body-bytes', '1000'] });
  const entriesBefore = await primeCache(gateway);

  const small = await postJson(gateway, CHAT, chatBodyOfSize(900));
  assert.equal(small.status, 200, 'a 900-byte body is within the limit');
  const entriesWithSmall = entriesBefore + 1;

  const result = await exchange(
    gateway.port,
    buildRequest('POST', CHAT, { headers: JSON_HEADERS, body: chatBodyOfSize(2000) }),
  );
  assert.ok(result.response, `no HTTP response (error ${result.error?.code})`);
  assert.equal(result.response.status, 413);
  assertOpenAIError(JSON.parse(result.response.body.toString('utf8')), 'body over --max-body-bytes');

  const entriesAfter = await scrapeMetric(gateway, 'agentnet_cache_entries', { cache: 'responses' });
  assert.equal(entriesAfter, entriesWithSmall, 'agentnet_cache_entries{cache="responses"} changed');
  assert.equal(fake.count(CHAT), 2, 'the rejected request reached upstream');
  assert.equal((await request(gateway, 'GET', '/healthz')).status, 200);
});

test('slow sender is cut off by client timeout', async (t) => {
  const { fake, gateway } = await startStack(t, { args: ['--client-timeout', '2'] });
  const payload = buildRequest('POST', CHAT, { headers: JSON_HEADERS, body: JSON.stringify(VALID_BODY) });
  const maxMs = 10000;

  const socket = net.connect({ host: '127.0.0.1', port: gateway.port });
  t.after(() => socket.destroy());
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const started = Date.now();
  let closedAt = null;
  socket.on('error', () => {});
  socket.on('close', () => {
    closedAt = Date.now();
  });

  // One byte a second, until the server closes or maxMs passes.
  for (let i = 0; i < payload.length && closedAt === null && Date.now() - started < maxMs; i++) {
    socket.write(payload.subarray(i, i + 1));
    await sleep(1000);
  }
  assert.notEqual(closedAt, null, `the server kept a 1 byte/s connection open for ${maxMs} ms`);
  const elapsedMs = closedAt - started;
  assert.ok(elapsedMs <= 5500, `the server closed the connection after ${elapsedMs} ms, expected about 2 s`);
  assert.equal(fake.count(CHAT), 0);
  assert.equal((await request(gateway, 'GET', '/healthz')).status, 200);
});

test('1000 concurrent connections all get 200', async (t) => {
  const { fake, gateway } = await startStack(t);
  const connections = 1000;
  const primed = await postJson(gateway, CHAT, VALID_BODY);
  assert.equal(primed.status, 200);

  const sockets = [];
  t.after(() => sockets.forEach((socket) => socket.destroy()));
  const connect = () =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: gateway.port });
      sockets.push(socket);
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
  const opened = await withTimeout(
    Promise.all(Array.from({ length: connections }, connect)),
    15000,
    `opening ${connections} connections`,
  );

  const healthRequest = buildRequest('GET', '/healthz');
  const cachedRequest = buildRequest('POST', CHAT, { headers: JSON_HEADERS, body: JSON.stringify(VALID_BODY) });
  const pending = opened.map(
    (socket, i) =>
      new Promise((resolve) => {
        const chunks = [];
        socket.on('data', (chunk) => chunks.push(chunk));
        socket.on('error', () => {});
        socket.on('close', () => resolve({ index: i, response: parseResponse(Buffer.concat(chunks)) }));
        socket.write(i % 2 === 0 ? healthRequest : cachedRequest);
      }),
  );
  const results = await withTimeout(Promise.all(pending), 30000, `responses on ${connections} connections`);

  const failures = results
    .filter(({ index, response }) => {
      if (!response || response.status !== 200) {
        return true;
      }
      return index % 2 === 1 && response.headers['x-agentnet-cache'] !== 'hit';
    })
    .map(({ index, response }) => `#${index}: ${response ? `${response.status} ${response.headers['x-agentnet-cache']}` : 'no response'}`);
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} of ${connections} connections failed`);
  assert.equal(fake.count(CHAT), 1, 'cached POSTs reached upstream');
  assert.equal((await request(gateway, 'GET', '/healthz')).status, 200);
});
