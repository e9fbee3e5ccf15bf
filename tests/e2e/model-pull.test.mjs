// `agentnet model pull` against a fake Hugging Face hub on 127.0.0.1.
//
// The fake speaks the part of the hub protocol that the command uses. Its
// tree listing at /api/models/REPO/tree/REV is paginated and recursive, with
// git blob SHA-1 oids and LFS SHA-256 oids. Its downloads at
// /REPO/resolve/REV/PATH honour Range requests and redirect LFS files to a
// second server, the "CDN". Tests switch on faults per file.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AGENTNET_BIN, makeTempDir, requireBinary, scrubbedEnv } from './lib/gateway.mjs';

const REPO = 'fake-org/mini-model';
const TOKEN = 'hf_e2eSecretToken0123456789';
// The listing is served in pages of this many entries, linked by rel="next".
const LISTING_PAGE_SIZE = 3;

// Deterministic bytes that are not all alike, so that a shifted or
// restarted range cannot hash the same by accident.
function patternBytes(length, seed) {
  const bytes = Buffer.alloc(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

// The files of the fake model. `lfs` files are listed with an lfs object
// and served through the CDN redirect.
function modelFiles() {
  const text = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return new Map([
    ['.gitattributes', { content: text('*.safetensors filter=lfs diff=lfs merge=lfs -text\n') }],
    ['config.json', { content: text({ architectures: ['BertModel'], hidden_size: 32, num_hidden_layers: 1 }) }],
    ['modules.json', { content: text([{ idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' }]) }],
    ['sentence_bert_config.json', { content: text({ max_seq_length: 128, do_lower_case: false }) }],
    ['1_Pooling/config.json', { content: text({ word_embedding_dimension: 32, pooling_mode_mean_tokens: true }) }],
    ['vocab.txt', { content: text('[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n') }],
    ['tokenizer_config.json', { content: text({ do_lower_case: true }) }],
    ['model.safetensors', { content: patternBytes(200003, 7), lfs: true }],
    ['pytorch_model.bin', { content: patternBytes(5000, 11), lfs: true }],
    ['onnx/model.onnx', { content: patternBytes(3000, 13), lfs: true }],
  ]);
}

const EXCLUDED = ['pytorch_model.bin', 'onnx/model.onnx'];

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

function gitBlobSha1(bytes) {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

// Starts the fake hub and its CDN. Faults, keyed by file path:
//   drop:        Set of paths whose next download sends half the bytes, then closes the socket
//   corrupt:     Set of paths served with one byte changed
//   failTimes:   Map path -> number of 503 responses before the file is served
//   ignoreRange: when true, Range headers are ignored (200 with the whole file)
//   private:     when true, every request without `Bearer TOKEN` gets 401
//   hold:        Set of paths whose downloads wait until hub.release() is called
async function startFakeHub(t, files = modelFiles()) {
  const hub = {
    files,
    requests: [],
    cdnRequests: [],
    faults: { drop: new Set(), corrupt: new Set(), failTimes: new Map(), ignoreRange: false, private: false, hold: new Set() },
  };
  let releaseHeld;
  const holdReleased = new Promise((resolve) => (releaseHeld = resolve));
  hub.release = () => releaseHeld();

  const treeEntries = () => {
    const entries = [{ type: 'directory', path: '1_Pooling', oid: '0'.repeat(40), size: 0 }];
    for (const [filePath, file] of files) {
      const entry = { type: 'file', path: filePath, size: file.content.length, oid: gitBlobSha1(file.content) };
      if (file.lfs) {
        const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(file.content)}\nsize ${file.content.length}\n`;
        entry.oid = gitBlobSha1(Buffer.from(pointer));
        entry.size = file.content.length;
        entry.lfs = { oid: sha256(file.content), size: file.content.length, pointerSize: pointer.length };
      }
      entries.push(entry);
    }
    return entries;
  };

  // Sends content, honouring a Range header and the per-file faults.
  const sendFile = (req, res, filePath) => {
    const file = files.get(filePath);
    let content = file.content;
    if (hub.faults.corrupt.has(filePath)) {
      content = Buffer.from(content);
      content[content.length - 1] ^= 0xff;
    }

    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !hub.faults.ignoreRange) {
      start = Number(range[1]);
      if (start >= content.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${content.length}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        'Content-Length': content.length - start,
        'Content-Range': `bytes ${start}-${content.length - 1}/${content.length}`,
      });
    } else {
      res.writeHead(200, { 'Content-Length': content.length });
    }

    const body = content.subarray(start);
    if (hub.faults.drop.has(filePath)) {
      hub.faults.drop.delete(filePath);
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => {
        setTimeout(() => res.socket.destroy(), 50);
      });
      return;
    }
    res.end(body);
  };

  const cdn = http.createServer((req, res) => {
    hub.cdnRequests.push({ url: req.url, headers: req.headers });
    const filePath = decodeURIComponent(req.url.replace(/^\/cdn\//, ''));
    if (!files.has(filePath)) {
      res.writeHead(404).end();
      return;
    }
    sendFile(req, res, filePath);
  });
  const cdnPort = await listen(cdn);

  const server = http.createServer((req, res) => {
    hub.requests.push({ method: req.method, url: req.url, headers: req.headers });
    const url = new URL(req.url, 'http://hub.invalid');
    if (hub.faults.private && req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'Invalid credentials in Authorization header' }));
      return;
    }

    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    if (tree) {
      if (tree[1] !== REPO || decodeURIComponent(tree[2]) !== 'main' || url.searchParams.get('recursive') !== 'true') {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: 'Repository not found' }));
        return;
      }
      const entries = treeEntries();
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const headers = { 'Content-Type': 'application/json' };
      if (cursor + LISTING_PAGE_SIZE < entries.length) {
        const next = `http://127.0.0.1:${hub.port}${url.pathname}?recursive=true&cursor=${cursor + LISTING_PAGE_SIZE}`;
        headers.Link = `<${next}>; rel="next"`;
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify(entries.slice(cursor, cursor + LISTING_PAGE_SIZE)));
      return;
    }

    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const filePath = resolve ? decodeURIComponent(resolve[3]) : null;
    if (!resolve || resolve[1] !== REPO || !files.has(filePath)) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'Entry not found' }));
      return;
    }
    const failures = hub.faults.failTimes.get(filePath) ?? 0;
    if (failures > 0) {
      hub.faults.failTimes.set(filePath, failures - 1);
      res.writeHead(503, { 'Content-Type': 'text/plain' });
      res.end('try again');
      return;
    }
    if (hub.faults.hold.has(filePath)) {
      hub.faults.hold.delete(filePath);
      hub.heldRequest = true;
      holdReleased.then(() => sendFile(req, res, filePath));
      return;
    }
    if (files.get(filePath).lfs) {
      res.writeHead(302, { Location: `http://127.0.0.1:${cdnPort}/cdn/${encodeURIComponent(filePath)}` });
      res.end();
      return;
    }
    sendFile(req, res, filePath);
  });
  hub.port = await listen(server);
  hub.url = `http://127.0.0.1:${hub.port}`;

  // Download requests for one file, on the hub and on the CDN.
  hub.downloads = (filePath) => [
    ...hub.requests.filter((r) => r.url.endsWith(`/resolve/main/${filePath}`)),
    ...hub.cdnRequests.filter((r) => decodeURIComponent(r.url) === `/cdn/${filePath}`),
  ];

  t.after(() => {
    server.closeAllConnections();
    cdn.closeAllConnections();
    server.close();
    cdn.close();
  });
  return hub;
}

// Runs `agentnet model pull ARGS` without blocking the event loop, which the
// fake hub in this process needs, and resolves to { status, stdout, stderr }.
function pull(hub, args, { env = {} } = {}) {
  requireBinary();
  const base = scrubbedEnv();
  for (const name of Object.keys(base)) {
    if (name.startsWith('HF_')) {
      delete base[name];
    }
  }
  const child = spawn(AGENTNET_BIN, ['model', 'pull', ...args], {
    env: { ...base, HF_ENDPOINT: hub ? hub.url : 'http://127.0.0.1:9', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

function assertModelFiles(hub, dir) {
  for (const [filePath, file] of hub.files) {
    const target = path.join(dir, filePath);
    if (EXCLUDED.includes(filePath)) {
      assert.equal(existsSync(target), false, `${filePath} is excluded by default but was written`);
      continue;
    }
    assert.ok(existsSync(target), `${filePath} is missing from ${dir}`);
    assert.ok(readFileSync(target).equals(file.content), `${filePath} differs from the hub's bytes`);
  }
}

function partialPath(dir, filePath) {
  return path.join(dir, '.partial', filePath);
}

test('pull writes every file and excludes other formats', async (t) => {
  const hub = await startFakeHub(t);
  const dir = path.join(makeTempDir(), 'mini');

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  assertModelFiles(hub, dir);
  assert.equal(existsSync(path.join(dir, '.partial')), false, 'empty .partial folder left behind');

  const lines = result.stdout.trim().split('\n');
  assert.ok(lines.includes('downloaded config.json (' + hub.files.get('config.json').content.length + ' bytes)'));
  assert.ok(lines.includes('downloaded 1_Pooling/config.json (' + hub.files.get('1_Pooling/config.json').content.length + ' bytes)'));
  assert.ok(lines.includes('downloaded model.safetensors (200003 bytes)'));
  assert.ok(lines.includes('excluded pytorch_model.bin (weight format other than safetensors; --all downloads it)'));
  assert.ok(lines.includes('excluded onnx/model.onnx (exported runtime folder; --all downloads it)'));
  assert.equal(lines.at(-1), `${REPO} (revision main) in ${dir}: 8 downloaded, 0 resumed, 0 skipped, 2 excluded, 0 failed`);

  const listingPages = hub.requests.filter((r) => r.url.startsWith(`/api/models/${REPO}/tree/main`));
  assert.equal(listingPages.length, 4, 'listing pages fetched by following rel="next"');
  assert.equal(hub.downloads('pytorch_model.bin').length, 0, 'an excluded file was requested');
});

test('pull follows the LFS redirect to the CDN', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  const hubHits = hub.requests.filter((r) => r.url === `/${REPO}/resolve/main/model.safetensors`);
  const cdnHits = hub.cdnRequests.filter((r) => r.url === '/cdn/model.safetensors');
  assert.equal(hubHits.length, 1, 'resolve requests for the LFS file');
  assert.equal(cdnHits.length, 1, 'CDN requests for the LFS file');
  assert.ok(readFileSync(path.join(dir, 'model.safetensors')).equals(hub.files.get('model.safetensors').content));
});

test('pull with --all takes excluded formats too', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();

  const result = await pull(hub, [REPO, '--dir', dir, '--all']);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  for (const filePath of EXCLUDED) {
    assert.ok(readFileSync(path.join(dir, filePath)).equals(hub.files.get(filePath).content), filePath);
  }
});

test('rerun skips verified files', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  const first = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(first.status, 0, `first run; stderr:\n${first.stderr}`);
  const downloadsBefore = hub.requests.length - hub.requests.filter((r) => r.url.startsWith('/api/')).length;

  const second = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(second.status, 0, `second run; stderr:\n${second.stderr}`);
  const downloadsAfter = hub.requests.length - hub.requests.filter((r) => r.url.startsWith('/api/')).length;
  assert.equal(downloadsAfter, downloadsBefore, 'the second run downloaded files again');
  assert.ok(second.stdout.includes('skipped model.safetensors (200003 bytes, already present and verified)\n'));
  assert.ok(second.stdout.includes('skipped vocab.txt ('));
  assert.ok(second.stdout.includes(': 0 downloaded, 0 resumed, 8 skipped, 2 excluded, 0 failed\n'));
});

test('changed local file is downloaded again', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  assert.equal((await pull(hub, [REPO, '--dir', dir])).status, 0);
  writeFileSync(path.join(dir, 'vocab.txt'), 'edited by hand\n');

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  assert.ok(result.stdout.includes('downloaded vocab.txt ('), result.stdout);
  assert.ok(readFileSync(path.join(dir, 'vocab.txt')).equals(hub.files.get('vocab.txt').content));
});

test('dropped download resumes with a Range request', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  const size = hub.files.get('model.safetensors').content.length;
  const half = Math.floor(size / 2);
  hub.faults.drop.add('model.safetensors');

  const first = await pull(hub, [REPO, '--dir', dir, '--retries', '0']);
  assert.equal(first.status, 1, `first run exit status; stderr:\n${first.stderr}`);
  assert.match(first.stderr, /GET http:\/\/127\.0\.0\.1:\d+\/fake-org\/mini-model\/resolve\/main\/model\.safetensors failed: /);
  assert.ok(first.stderr.includes('agentnet model pull: 1 of 8 files failed; run the same command again to resume\n'), first.stderr);
  assert.equal(existsSync(path.join(dir, 'model.safetensors')), false, 'an incomplete file took the final name');
  assert.equal(statSync(partialPath(dir, 'model.safetensors')).size, half, 'bytes kept in the partial file');

  const second = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(second.status, 0, `second run exit status; stderr:\n${second.stderr}`);
  const ranged = hub.cdnRequests.filter((r) => r.headers.range !== undefined);
  assert.deepEqual(ranged.map((r) => r.headers.range), [`bytes=${half}-`]);
  assert.ok(second.stdout.includes(`resumed model.safetensors (${size} bytes, ${half} of them from an earlier run)\n`), second.stdout);
  assert.ok(readFileSync(path.join(dir, 'model.safetensors')).equals(hub.files.get('model.safetensors').content));
  assert.equal(existsSync(path.join(dir, '.partial')), false, '.partial left behind after a complete pull');
});

test('dropped download is retried within one run', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  const half = Math.floor(hub.files.get('model.safetensors').content.length / 2);
  hub.faults.drop.add('model.safetensors');

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  const retries = result.stderr.split('\n').filter((line) => line.includes('retrying')).map((line) => JSON.parse(line));
  assert.equal(retries.length, 1, `retry log lines in:\n${result.stderr}`);
  assert.equal(retries[0].retry, '1/3');
  assert.match(retries[0].url, /\/resolve\/main\/model\.safetensors$/);
  assert.deepEqual(hub.cdnRequests.filter((r) => r.headers.range).map((r) => r.headers.range), [`bytes=${half}-`]);
  assert.ok(readFileSync(path.join(dir, 'model.safetensors')).equals(hub.files.get('model.safetensors').content));
});

test('503 is retried and logged', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  hub.faults.failTimes.set('config.json', 1);

  const result = await pull(hub, [REPO, '--dir', dir, '--log-format', 'json']);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  const retries = result.stderr.split('\n').filter((line) => line.includes('retrying')).map((line) => JSON.parse(line));
  assert.equal(retries.length, 1, `retry log lines in:\n${result.stderr}`);
  assert.equal(retries[0].level, 'warn');
  assert.equal(retries[0].error, 'HTTP 503');
  assert.equal(retries[0].delay_s, '1');
  assert.equal(hub.downloads('config.json').length, 2);
  assertModelFiles(hub, dir);
});

test('persistent 503 fails after the retries', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  hub.faults.failTimes.set('config.json', 10);

  const result = await pull(hub, [REPO, '--dir', dir, '--retries', '1']);
  assert.equal(result.status, 1, `exit status; stderr:\n${result.stderr}`);
  assert.match(result.stderr, /GET http:\/\/127\.0\.0\.1:\d+\/fake-org\/mini-model\/resolve\/main\/config\.json returned 503 after 2 attempts; the hub failed, try again later/);
  assert.equal(existsSync(path.join(dir, 'config.json')), false);
  assert.ok(existsSync(path.join(dir, 'vocab.txt')), 'the other files are still pulled');
});

test('server ignoring Range restarts the file', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  const content = hub.files.get('model.safetensors').content;
  mkdirSync(path.join(dir, '.partial'), { recursive: true });
  writeFileSync(partialPath(dir, 'model.safetensors'), Buffer.alloc(1000, 0x55));
  hub.faults.ignoreRange = true;

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  assert.deepEqual(hub.cdnRequests.filter((r) => r.headers.range).map((r) => r.headers.range), ['bytes=1000-']);
  assert.ok(result.stdout.includes(`downloaded model.safetensors (${content.length} bytes)\n`), result.stdout);
  assert.ok(readFileSync(path.join(dir, 'model.safetensors')).equals(content));
});

test('complete partial file is verified after 416', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  const content = hub.files.get('model.safetensors').content;
  mkdirSync(path.join(dir, '.partial'), { recursive: true });
  writeFileSync(partialPath(dir, 'model.safetensors'), content);

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  assert.deepEqual(hub.cdnRequests.filter((r) => r.headers.range).map((r) => r.headers.range), [`bytes=${content.length}-`]);
  assert.ok(result.stdout.includes(`resumed model.safetensors (${content.length} bytes, ${content.length} of them from an earlier run)\n`), result.stdout);
  assert.ok(readFileSync(path.join(dir, 'model.safetensors')).equals(content));
});

test('corrupted download fails naming file and hash', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  hub.faults.corrupt.add('model.safetensors');
  hub.faults.corrupt.add('vocab.txt');

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 1, `exit status; stderr:\n${result.stderr}`);
  const lfsContent = hub.files.get('model.safetensors').content;
  const badLfs = Buffer.from(lfsContent);
  badLfs[badLfs.length - 1] ^= 0xff;
  assert.ok(
    result.stderr.includes(`model.safetensors: SHA-256 mismatch: expected ${sha256(lfsContent)}, got ${sha256(badLfs)}`),
    result.stderr,
  );
  const vocab = hub.files.get('vocab.txt').content;
  const badVocab = Buffer.from(vocab);
  badVocab[badVocab.length - 1] ^= 0xff;
  assert.ok(
    result.stderr.includes(`vocab.txt: git blob SHA-1 mismatch: expected ${gitBlobSha1(vocab)}, got ${gitBlobSha1(badVocab)}`),
    result.stderr,
  );
  for (const filePath of ['model.safetensors', 'vocab.txt']) {
    assert.equal(existsSync(path.join(dir, filePath)), false, `${filePath} took its final name`);
    assert.equal(existsSync(partialPath(dir, filePath)), false, `${filePath} partial file kept`);
  }
  assert.ok(result.stdout.includes(': 6 downloaded, 0 resumed, 0 skipped, 2 excluded, 2 failed\n'), result.stdout);
});

test('unknown model is a 404 with a hint', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();

  const result = await pull(hub, ['fake-org/no-such-model', '--dir', dir]);
  assert.equal(result.status, 1);
  assert.equal(
    result.stderr.trim(),
    `agentnet model pull: GET ${hub.url}/api/models/fake-org/no-such-model/tree/main?recursive=true returned 404: ` +
      'not found: no model "fake-org/no-such-model" with revision "main"; check the model name (owner/name as on ' +
      'the hub) and --revision',
  );
  assert.equal(result.stdout, '');
});

test('HF_TOKEN is sent as bearer and never printed', async (t) => {
  const hub = await startFakeHub(t);
  hub.faults.private = true;
  hub.faults.drop.add('model.safetensors');
  const dir = makeTempDir();

  const result = await pull(hub, [REPO, '--dir', dir], { env: { HF_TOKEN: TOKEN } });
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  assert.ok(hub.requests.length > 0);
  for (const request of hub.requests) {
    assert.equal(request.headers.authorization, `Bearer ${TOKEN}`, `Authorization on ${request.url}`);
  }
  for (const request of hub.cdnRequests) {
    assert.equal(request.headers.authorization, undefined, `token sent to the CDN on ${request.url}`);
  }
  assert.ok(!result.stdout.includes(TOKEN), 'token in stdout');
  assert.ok(!result.stderr.includes(TOKEN), 'token in stderr');
  assert.ok(result.stderr.includes('retrying'), 'the retry log line was written');
});

test('token file replaces HF_TOKEN', async (t) => {
  const hub = await startFakeHub(t);
  hub.faults.private = true;
  const dir = makeTempDir();
  const tokenFile = path.join(makeTempDir(), 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);

  const result = await pull(hub, [REPO, '--dir', dir, '--token-file', tokenFile], { env: { HF_TOKEN: 'hf_wrong' } });
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  assert.equal(hub.requests[0].headers.authorization, `Bearer ${TOKEN}`);
});

test('missing token is a 401 that names HF_TOKEN', async (t) => {
  const hub = await startFakeHub(t);
  hub.faults.private = true;
  const dir = makeTempDir();

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 1);
  assert.ok(result.stderr.includes('returned 401: unauthorized: '), result.stderr);
  assert.ok(result.stderr.includes('set HF_TOKEN (or pass --token-file) to a token with access'), result.stderr);
  assert.equal(hub.requests[0].headers.authorization, undefined);
});

test('rejected token is a 401 without the token', async (t) => {
  const hub = await startFakeHub(t);
  hub.faults.private = true;
  const dir = makeTempDir();

  const result = await pull(hub, [REPO, '--dir', dir], { env: { HF_TOKEN: 'hf_rejectedToken42' } });
  assert.equal(result.status, 1);
  assert.ok(result.stderr.includes('returned 401: unauthorized: '), result.stderr);
  assert.ok(result.stderr.includes('the token sent cannot read it'), result.stderr);
  assert.ok(!result.stderr.includes('hf_rejectedToken42'), 'token in stderr');
});

test('default dir is models/NAME', async (t) => {
  const hub = await startFakeHub(t);
  const cwd = makeTempDir();
  requireBinary();
  const child = spawn(AGENTNET_BIN, ['model', 'pull', REPO], {
    cwd,
    env: { ...scrubbedEnv(), HF_ENDPOINT: `${hub.url}/`, HF_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));
  const status = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(status, 0, `exit status; stderr:\n${stderr}`);
  assertModelFiles(hub, path.join(cwd, 'models', 'mini-model'));
});

test('empty file is downloaded', async (t) => {
  const hub = await startFakeHub(t);
  hub.files.set('2_Normalize/empty.txt', { content: Buffer.alloc(0) });
  const dir = makeTempDir();

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  assert.ok(result.stdout.includes('downloaded 2_Normalize/empty.txt (0 bytes)\n'), result.stdout);
  assert.equal(statSync(path.join(dir, '2_Normalize/empty.txt')).size, 0);
});

test('second pull into one dir is rejected', async (t) => {
  const hub = await startFakeHub(t);
  const dir = makeTempDir();
  hub.faults.hold.add('vocab.txt');

  const first = pull(hub, [REPO, '--dir', dir]);
  while (!hub.heldRequest) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const second = await pull(hub, [REPO, '--dir', dir]);
  hub.release();
  assert.equal(second.status, 1);
  assert.equal(
    second.stderr.trim(),
    `agentnet model pull: another agentnet model pull is writing to "${dir}": wait for it to finish`,
  );
  const firstResult = await first;
  assert.equal(firstResult.status, 0, `first pull; stderr:\n${firstResult.stderr}`);
  assertModelFiles(hub, dir);
});

// Returns the files of a directory as hub files, with .safetensors files on LFS.
function filesOfDirectory(root) {
  const files = new Map();
  for (const entry of readdirSync(root, { recursive: true })) {
    const full = path.join(root, entry);
    if (statSync(full).isFile()) {
      files.set(entry.split(path.sep).join('/'), { content: readFileSync(full), lfs: entry.endsWith('.safetensors') });
    }
  }
  return files;
}

test('pulled model embeds like its source', async (t) => {
  const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/bert-tiny/f32');
  const hub = await startFakeHub(t, filesOfDirectory(fixture));
  const dir = makeTempDir();

  const result = await pull(hub, [REPO, '--dir', dir]);
  assert.equal(result.status, 0, `exit status; stderr:\n${result.stderr}`);
  const embed = (model) =>
    spawnSync(AGENTNET_BIN, ['embed', '-m', model], { input: 'the cat sat\nhello world\n', encoding: 'utf8', env: scrubbedEnv() });
  const expected = embed(fixture);
  const actual = embed(dir);
  assert.equal(expected.status, 0, `embed with the fixture; stderr:\n${expected.stderr}`);
  assert.equal(actual.status, 0, `embed with the pulled directory; stderr:\n${actual.stderr}`);
  assert.equal(actual.stdout.trim().split('\n').length, 2);
  assert.equal(actual.stdout, expected.stdout);
});

test('usage errors exit 2', async () => {
  const cases = [
    [[], 'agentnet model pull: missing NAME, the model\'s hub id such as sentence-transformers/all-MiniLM-L6-v2'],
    [['../etc'], 'agentnet model pull: NAME "../etc" is invalid; expected owner/name as on the hub, letters, digits, \'-\', \'_\' and \'.\' only'],
    [['a/b/c'], 'agentnet model pull: NAME "a/b/c" is invalid; expected owner/name as on the hub, letters, digits, \'-\', \'_\' and \'.\' only'],
    [['a/b', '--retries', 'x'], 'agentnet: option --retries "x" is invalid; expected a whole number'],
    [['a/b', 'c/d'], 'agentnet model pull: unexpected argument "c/d" after NAME "a/b"; pull one model per run'],
    [['a/b', '--endpoint', 'ftp://x'], 'agentnet model pull: hub endpoint "ftp://x" is invalid; set HF_ENDPOINT or --endpoint to an http:// or https:// URL'],
  ];
  for (const [args, message] of cases) {
    const result = await pull(null, args);
    assert.equal(result.status, 2, `exit status of ${JSON.stringify(args)}`);
    assert.equal(result.stderr.trim(), message, `message of ${JSON.stringify(args)}`);
  }
});
