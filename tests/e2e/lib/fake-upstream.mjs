// A fake OpenAI-compatible model API for the end-to-end tests.
//
// It listens on 127.0.0.1 with a port chosen by the kernel and serves
// POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings and
// GET /v1/models. Every response is computed from the request, except for a
// sequence number that grows with each call and appears in the `id` field of
// chat and completion responses. A cache hit therefore shows the id of the call
// that filled the cache, and a fresh upstream call shows a new one.
//
// Tests steer one fake through `fake.behavior` (see DEFAULT_BEHAVIOR) and read
// what it received through `fake.requests`, `fake.count()` and
// `fake.embeddingInputs`.

import { createHash } from 'node:crypto';
import http from 'node:http';

export const EMBEDDING_DIMENSIONS = 8;

// Fixed `created` timestamp so that two responses to the same request differ
// only in their sequence number.
const CREATED = 1700000000;

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

const DEFAULT_BEHAVIOR = {
  // Milliseconds to wait after reading a request and before responding.
  delayMs: 0,
  // When set to { status, message, type, code }, every request gets a response
  // with that HTTP status and an OpenAI-shaped error body.
  fail: null,
  // When true, requests are read and no response is ever sent.
  hang: false,
  // Milliseconds between two SSE events of a streamed response.
  streamEventDelayMs: 20,
  // When set to a number N, a streamed response sends N events and then the
  // socket is destroyed, without a final chunk or `data: [DONE]`.
  breakStreamAfter: null,
  // When set to a promise, a streamed response waits for it to settle before it
  // sends its last content event.
  streamGate: null,
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Counts the tokens of one prompt the way this fake bills them: the number of
// whitespace-separated words of a string, or the length of a token array,
// with a minimum of 1.
export function countTokens(item) {
  if (Array.isArray(item)) {
    return Math.max(1, item.length);
  }
  const words = String(item).trim().split(/\s+/).filter((word) => word.length > 0);
  return Math.max(1, words.length);
}

// Computes the embedding vector of one input item: EMBEDDING_DIMENSIONS
// numbers in [-1, 1) derived from the SHA-256 of the item. Each number is a
// multiple of 2^-15, so it survives a float32 round trip exactly and the
// `float` and `base64` encodings decode to the same values.
export function embeddingFor(item) {
  const text = typeof item === 'string' ? item : JSON.stringify(item);
  const digest = createHash('sha256').update(text, 'utf8').digest();
  const vector = [];
  for (let i = 0; i < EMBEDDING_DIMENSIONS; i++) {
    vector.push((digest.readUInt16LE(2 * i) - 32768) / 32768);
  }
  return vector;
}

// Encodes a vector as the OpenAI API does for `encoding_format: "base64"`:
// little-endian float32 values, base64-encoded.
export function encodeBase64Embedding(vector) {
  const bytes = Buffer.alloc(4 * vector.length);
  vector.forEach((value, i) => bytes.writeFloatLE(value, 4 * i));
  return bytes.toString('base64');
}

// Splits an embeddings `input` into its items: a string is one item, an array
// of strings or of token arrays is one item per element, and a flat array of
// numbers is one token-array item.
export function embeddingItems(input) {
  if (typeof input === 'string') {
    return [input];
  }
  if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'number')) {
    return [input];
  }
  if (Array.isArray(input)) {
    return input;
  }
  return null;
}

function textOfMessage(message) {
  if (!message) {
    return '';
  }
  if (typeof message.content === 'string') {
    return message.content;
  }
  if (Array.isArray(message.content)) {
    return message.content.map((part) => part.text ?? '').join('');
  }
  return '';
}

function errorBody(status, message, type = 'invalid_request_error', code = null) {
  return { error: { message, type, param: null, code } };
}

// Starts a fake upstream and resolves to its handle once it listens.
export async function startFakeUpstream() {
  const fake = {
    url: null,
    port: null,
    behavior: { ...DEFAULT_BEHAVIOR },
    // One record per request, in arrival order: { method, path, headers,
    // rawBody, body, seq, responseStatus, responseBody, eventsSent }.
    requests: [],
    // The `input` items of each embeddings call, one array per call.
    embeddingInputs: [],
    // Set by a streamed response once it has sent its last content event.
    lastStreamEventSent: false,
    sequence: 0,

    // Returns how many requests reached `path` (for example
    // '/v1/chat/completions'), optionally only those with `method`.
    count(path, method) {
      return this.requests.filter((r) => r.path === path && (!method || r.method === method)).length;
    },

    // Returns the record of the latest request to `path`, or undefined.
    last(path) {
      return this.requests.filter((r) => r.path === path).at(-1);
    },

    // Restores the default behavior without clearing what was recorded.
    resetBehavior() {
      this.behavior = { ...DEFAULT_BEHAVIOR };
    },

    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };

  const server = http.createServer((req, res) => {
    handleRequest(fake, req, res).catch((err) => {
      // A failure here is a bug in the fake, so it is printed for the test run.
      console.error('fake upstream: request handler failed:', err);
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': JSON_CONTENT_TYPE });
      }
      res.end();
    });
  });
  server.keepAliveTimeout = 5000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  fake.port = server.address().port;
  fake.url = `http://127.0.0.1:${fake.port}/v1`;
  return fake;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function handleRequest(fake, req, res) {
  const rawBody = await readBody(req);
  const path = new URL(req.url, 'http://placeholder').pathname;
  let body = null;
  if (rawBody.length > 0) {
    try {
      body = JSON.parse(rawBody.toString('utf8'));
    } catch {
      body = null;
    }
  }

  fake.sequence += 1;
  const record = {
    method: req.method,
    path,
    headers: { ...req.headers },
    rawBody,
    body,
    seq: fake.sequence,
    responseStatus: null,
    responseBody: null,
    eventsSent: [],
  };
  fake.requests.push(record);

  const behavior = fake.behavior;
  if (behavior.hang) {
    return;
  }
  if (behavior.delayMs > 0) {
    await sleep(behavior.delayMs);
  }
  if (res.destroyed) {
    return;
  }

  if (behavior.fail) {
    const { status, message = 'fake upstream failure', type = 'server_error', code = null } = behavior.fail;
    sendJson(record, res, status, errorBody(status, message, type, code));
    return;
  }

  const route = `${req.method} ${path}`;
  switch (route) {
    case 'POST /v1/chat/completions':
      return sendChatCompletion(fake, record, res);
    case 'POST /v1/completions':
      return sendCompletion(fake, record, res);
    case 'POST /v1/embeddings':
      return sendEmbeddings(fake, record, res);
    case 'GET /v1/models':
      return sendJson(record, res, 200, {
        object: 'list',
        data: [
          { id: 'fake-chat', object: 'model', created: CREATED, owned_by: 'agentnet-e2e' },
          { id: 'fake-embed', object: 'model', created: CREATED, owned_by: 'agentnet-e2e' },
        ],
      });
    default:
      return sendJson(record, res, 404, errorBody(404, `fake upstream has no route ${route}`));
  }
}

function sendJson(record, res, status, payload) {
  const bytes = Buffer.from(JSON.stringify(payload), 'utf8');
  record.responseStatus = status;
  record.responseBody = bytes;
  res.writeHead(status, {
    'Content-Type': JSON_CONTENT_TYPE,
    'Content-Length': String(bytes.length),
  });
  res.end(bytes);
}

function invalidBody(record, res, what) {
  sendJson(record, res, 400, errorBody(400, `fake upstream: ${what}`));
}

async function sendChatCompletion(fake, record, res) {
  const body = record.body;
  if (!body || typeof body.model !== 'string' || !Array.isArray(body.messages)) {
    return invalidBody(record, res, 'chat request needs a string model and a messages array');
  }
  const id = `chatcmpl-fake-${record.seq}`;
  const prompt = textOfMessage(body.messages.at(-1));
  const content = `echo:${prompt}`;
  const promptTokens = body.messages.reduce((sum, m) => sum + countTokens(textOfMessage(m)), 0);
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: countTokens(content),
    total_tokens: promptTokens + countTokens(content),
  };

  if (body.stream === true) {
    const chunk = (delta, finishReason) => ({
      id,
      object: 'chat.completion.chunk',
      created: CREATED,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finishReason }],
    });
    const events = [
      chunk({ role: 'assistant', content: '' }, null),
      chunk({ content: 'echo:' }, null),
      chunk({ content: prompt }, null),
      chunk({}, 'stop'),
    ];
    // The gate, when set, delays the event that completes the content.
    return streamEvents(fake, record, res, events, 2);
  }

  return sendJson(record, res, 200, {
    id,
    object: 'chat.completion',
    created: CREATED,
    model: body.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content },
        finish_reason: 'stop',
      },
    ],
    usage,
  });
}

async function sendCompletion(fake, record, res) {
  const body = record.body;
  if (!body || typeof body.model !== 'string' || body.prompt === undefined) {
    return invalidBody(record, res, 'completion request needs a string model and a prompt');
  }
  const id = `cmpl-fake-${record.seq}`;
  const prompt = Array.isArray(body.prompt) ? body.prompt.join(' ') : String(body.prompt);
  const text = `echo:${prompt}`;

  if (body.stream === true) {
    const chunk = (piece, finishReason) => ({
      id,
      object: 'text_completion',
      created: CREATED,
      model: body.model,
      choices: [{ index: 0, text: piece, logprobs: null, finish_reason: finishReason }],
    });
    const events = [chunk('echo:', null), chunk(prompt, null), chunk('', 'stop')];
    return streamEvents(fake, record, res, events, 1);
  }

  return sendJson(record, res, 200, {
    id,
    object: 'text_completion',
    created: CREATED,
    model: body.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: 'stop' }],
    usage: {
      prompt_tokens: countTokens(prompt),
      completion_tokens: countTokens(text),
      total_tokens: countTokens(prompt) + countTokens(text),
    },
  });
}

// Sends `events` as SSE followed by `data: [DONE]`. The event at
// `lastContentIndex` waits for `behavior.streamGate` when one is set.
async function streamEvents(fake, record, res, events, lastContentIndex) {
  const behavior = fake.behavior;
  fake.lastStreamEventSent = false;
  record.responseStatus = 200;
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
  });

  const frames = events.map((event) => `data: ${JSON.stringify(event)}\n\n`);
  frames.push('data: [DONE]\n\n');

  for (let i = 0; i < frames.length; i++) {
    if (behavior.breakStreamAfter !== null && i === behavior.breakStreamAfter) {
      res.socket.destroy();
      return;
    }
    if (i === lastContentIndex && behavior.streamGate) {
      await behavior.streamGate;
    }
    if (i > 0 && behavior.streamEventDelayMs > 0) {
      await sleep(behavior.streamEventDelayMs);
    }
    if (res.destroyed) {
      return;
    }
    res.write(frames[i]);
    record.eventsSent.push(frames[i]);
    if (i === lastContentIndex) {
      fake.lastStreamEventSent = true;
    }
  }
  record.responseBody = Buffer.from(record.eventsSent.join(''), 'utf8');
  res.end();
}

function sendEmbeddings(fake, record, res) {
  const body = record.body;
  const items = body ? embeddingItems(body.input) : null;
  if (!body || typeof body.model !== 'string' || !items || items.length === 0) {
    return invalidBody(record, res, 'embeddings request needs a string model and a non-empty input');
  }
  fake.embeddingInputs.push(items);

  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    return invalidBody(record, res, `unknown encoding_format ${JSON.stringify(format)}`);
  }

  const data = items.map((item, index) => {
    const vector = embeddingFor(item);
    return {
      object: 'embedding',
      index,
      embedding: format === 'base64' ? encodeBase64Embedding(vector) : vector,
    };
  });
  const promptTokens = items.reduce((sum, item) => sum + countTokens(item), 0);
  return sendJson(record, res, 200, {
    object: 'list',
    data,
    model: body.model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}
