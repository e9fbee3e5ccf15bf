// `agentnet embed` run as a user runs it: texts on stdin or in a file,
// vectors as jsonl or npy, exit statuses for bad input and bad flags, and
// the progress bar that appears only on a terminal.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AGENTNET_BIN, makeTempDir, requireBinary, scrubbedEnv } from './lib/gateway.mjs';

const DEFAULT_DIMS = 384;

// Runs `agentnet embed ARGS...` with `input` on stdin and returns
// { status, stdout, stderr }; stdout is a Buffer, stderr a string.
function embed(args, input = '', { env = {} } = {}) {
  requireBinary();
  const result = spawnSync(AGENTNET_BIN, ['embed', ...args], {
    env: scrubbedEnv(env),
    input,
    timeout: 30000,
    maxBuffer: 64 * 1024 * 1024,
  });
  // A command that fails before it reads stdin closes the pipe while the input is being
  // written, so EPIPE is expected there; the exit status still tells the outcome.
  if (result.error && !(result.error.code === 'EPIPE' && result.status !== null)) {
    throw result.error;
  }
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString('utf8') };
}

// Parses jsonl output into an array of float arrays, checking that every
// line, the last one included, ends in '\n'.
function parseJsonl(stdout) {
  const text = stdout.toString('utf8');
  if (text === '') {
    return [];
  }
  assert.ok(text.endsWith('\n'), 'jsonl output must end with a newline');
  return text.slice(0, -1).split('\n').map((line) => JSON.parse(line));
}

function embedOk(args, input) {
  const result = embed(args, input);
  assert.equal(result.status, 0, `agentnet embed ${args.join(' ')} failed: ${result.stderr}`);
  return parseJsonl(result.stdout);
}

function norm(vector) {
  return Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
}

// Parses a .npy file: returns { version, headerLength, header, descr,
// fortranOrder, shape, data } and checks the magic.
function parseNpy(bytes) {
  assert.deepEqual([...bytes.subarray(0, 6)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59], 'npy magic');
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  const descr = /'descr': '([^']*)'/.exec(header);
  const fortranOrder = /'fortran_order': (True|False)/.exec(header);
  const shape = /'shape': \((\d+), (\d+)\)/.exec(header);
  assert.ok(descr, `npy header has no descr: ${header}`);
  assert.ok(fortranOrder, `npy header has no fortran_order: ${header}`);
  assert.ok(shape, `npy header has no two-dimensional shape: ${header}`);
  const dataBytes = bytes.subarray(10 + headerLength);
  const data = [];
  for (let offset = 0; offset + 4 <= dataBytes.length; offset += 4) {
    data.push(dataBytes.readFloatLE(offset));
  }
  return {
    version: [bytes[6], bytes[7]],
    headerLength,
    header,
    descr: descr[1],
    fortranOrder: fortranOrder[1],
    shape: [Number(shape[1]), Number(shape[2])],
    dataLength: dataBytes.length,
    data,
  };
}

test('jsonl has one vector per line in order, empty lines included', () => {
  const vectors = embedOk(['-m', 'hash:64'], 'alpha\n\nbeta gamma\n');
  assert.equal(vectors.length, 3, 'the final newline must not start a fourth text');

  const [alpha] = embedOk(['-m', 'hash:64'], 'alpha\n');
  const [betaGamma] = embedOk(['-m', 'hash:64'], 'beta gamma\n');
  assert.deepEqual(vectors[0], alpha);
  assert.deepEqual(vectors[1], new Array(64).fill(0), 'an empty line gives the zero vector');
  assert.deepEqual(vectors[2], betaGamma);
});

test('line counts at the edges of the input', () => {
  assert.equal(embedOk(['-m', 'hash:8'], '').length, 0, 'empty input is no text');
  assert.equal(embedOk(['-m', 'hash:8'], '\n').length, 1, 'one newline is one empty text');
  assert.equal(embedOk(['-m', 'hash:8'], '\n\n').length, 2);
  assert.equal(embedOk(['-m', 'hash:8'], 'a\nb').length, 2, 'a last line without newline counts');
  assert.equal(embedOk(['-m', 'hash:8'], 'a\nb\n').length, 2);
});

test('CRLF input gives the same vectors as LF input', () => {
  const lf = embedOk(['-m', 'hash:32'], 'one line\n\nanother line\n');
  const crlf = embedOk(['-m', 'hash:32'], 'one line\r\n\r\nanother line\r\n');
  assert.equal(crlf.length, 3);
  assert.deepEqual(crlf, lf);
});

test('default model is hash:384 with unit vectors', () => {
  const vectors = embedOk([], 'the cat sat on the mat\nhello\n');
  assert.equal(vectors.length, 2);
  for (const vector of vectors) {
    assert.equal(vector.length, DEFAULT_DIMS);
    assert.ok(Math.abs(norm(vector) - 1) < 1e-6, `norm ${norm(vector)} is not 1`);
  }
  // The same value the unit test pins, so the command prints the library's floats exactly.
  assert.equal(vectors[0][285], -0.433317035);
});

test('model comes from AGENTNET_EMBED_MODEL and -m overrides it', () => {
  const fromEnv = embed([], 'word\n', { env: { AGENTNET_EMBED_MODEL: 'hash:16' } });
  assert.equal(fromEnv.status, 0, fromEnv.stderr);
  assert.equal(parseJsonl(fromEnv.stdout)[0].length, 16);

  const fromFlag = embed(['-m', 'hash:24'], 'word\n', { env: { AGENTNET_EMBED_MODEL: 'hash:16' } });
  assert.equal(fromFlag.status, 0, fromFlag.stderr);
  assert.equal(parseJsonl(fromFlag.stdout)[0].length, 24);
});

test('-i reads a file and -o writes one', () => {
  const dir = makeTempDir();
  const input = path.join(dir, 'texts.txt');
  const output = path.join(dir, 'vectors.jsonl');
  writeFileSync(input, 'first\nsecond\n');

  const result = embed(['-m', 'hash:16', '-i', input, '-o', output]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.length, 0, 'nothing goes to stdout with -o');
  assert.deepEqual(parseJsonl(readFileSync(output)), embedOk(['-m', 'hash:16'], 'first\nsecond\n'));
});

test('npy file has a valid header, shape and length', () => {
  const dir = makeTempDir();
  const output = path.join(dir, 'vectors.npy');
  const input = 'alpha\n\nbeta gamma\n';
  const result = embed(['--format', 'npy', '-o', output], input);
  assert.equal(result.status, 0, result.stderr);

  const bytes = readFileSync(output);
  const npy = parseNpy(bytes);
  assert.deepEqual(npy.version, [1, 0]);
  assert.equal((10 + npy.headerLength) % 64, 0, 'data must start at a multiple of 64 bytes');
  assert.ok(npy.header.endsWith('\n'), 'the header ends with a newline');
  assert.equal(npy.descr, '<f4');
  assert.equal(npy.fortranOrder, 'False');
  assert.deepEqual(npy.shape, [3, DEFAULT_DIMS]);
  assert.equal(npy.dataLength, 3 * DEFAULT_DIMS * 4);

  const jsonl = embedOk([], input).flat();
  assert.deepEqual(npy.data, jsonl.map((x) => Math.fround(x)), 'npy and jsonl hold the same floats');
});

test('npy of empty input has shape (0, DIMS)', () => {
  const result = embed(['--format', 'npy', '-m', 'hash:8'], '');
  assert.equal(result.status, 0, result.stderr);
  const npy = parseNpy(result.stdout);
  assert.deepEqual(npy.shape, [0, 8]);
  assert.equal(npy.dataLength, 0);
});

test('invalid UTF-8 line exits 1 naming the line', () => {
  const input = Buffer.concat([Buffer.from('fine\n\nbad '), Buffer.from([0xff, 0xfe]), Buffer.from('\nlast\n')]);
  const result = embed([], input);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /line 3 is not valid UTF-8/);
  assert.match(result.stderr, /iconv/);
  assert.equal(result.stdout.length, 0, 'no vectors are written for bad input');
});

test('unknown model exits 1 with the name', () => {
  const badHash = embed(['-m', 'hash:abc'], 'text\n');
  assert.equal(badHash.status, 1);
  assert.match(badHash.stderr, /"hash:abc" is invalid/);
  assert.match(badHash.stderr, /8 to 65536/);

  const missing = embed(['-m', 'no-such-model-dir'], 'text\n');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no-such-model-dir/);
  assert.equal(missing.stdout.length, 0);
});

test('hash model on cuda exits 1 and names the fix', () => {
  const result = embed(['--device', 'cuda:0'], 'text\n');
  assert.equal(result.status, 1);
  assert.match(result.stderr, /runs on the CPU only/);
  assert.match(result.stderr, /--device cpu or auto/);
});

const BERT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/bert-tiny/f32');
const CUDA_MODULE = path.join(path.dirname(AGENTNET_BIN), 'libagentnet-cuda.so');

test('unloadable CUDA module names its path', () => {
  const env = { AGENTNET_CUDA_MODULE: '/nonexistent/libagentnet-cuda.so' };
  const cuda = embed(['-m', BERT_DIR, '--device', 'cuda:0'], 'text\n', { env });
  assert.equal(cuda.status, 1);
  assert.equal(cuda.stdout.length, 0);
  if (existsSync(CUDA_MODULE)) {
    assert.match(cuda.stderr, /cannot load the CUDA back end: \/nonexistent\/libagentnet-cuda\.so/);
  } else {
    assert.match(cuda.stderr, /this build has no CUDA back end/);
  }
  assert.match(cuda.stderr, /use --device cpu or auto/);

  // auto falls back to the CPU, so the text is still embedded.
  const auto = embed(['-m', BERT_DIR, '--device', 'auto'], 'text\n', { env });
  assert.equal(auto.status, 0);
  assert.equal(parseJsonl(auto.stdout).length, 1);
  // Without a driver, auto does not even try to load the module.
  const driver = ['/dev/nvidiactl', '/proc/driver/nvidia/version', '/dev/dxg'].some(existsSync);
  if (!driver && existsSync(CUDA_MODULE)) {
    assert.match(auto.stderr, /using the CPU reason=no NVIDIA driver: none of \/dev\/nvidiactl/);
    assert.doesNotMatch(auto.stderr, /cannot load the CUDA back end/);
  }
});

test('truncated lines are counted', () => {
  const long = 'hello world '.repeat(500);
  const result = embed(['-m', BERT_DIR, '--device', 'cpu'], `short\n${long}\n${long}\nend\n`);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(parseJsonl(result.stdout).length, 4);
  assert.match(result.stderr,
    /2 lines were longer than the model's max_seq_length \(\d+ tokens, \[CLS\] and \[SEP\] included\) and were cut to it; the first is line 2\n/);

  const single = embed(['-m', BERT_DIR, '--device', 'cpu'], `short\nshort\n${long}\n`);
  assert.equal(single.status, 0, single.stderr);
  assert.match(single.stderr, /line 3 was longer than the model's max_seq_length \(\d+ tokens/);

  const fits = embed(['-m', BERT_DIR, '--device', 'cpu'], 'short\nlines only\n');
  assert.equal(fits.status, 0, fits.stderr);
  assert.doesNotMatch(fits.stderr, /max_seq_length/);
});

test('short vocabulary is logged', () => {
  const dir = path.join(makeTempDir(), 'model');
  cpSync(BERT_DIR, dir, { recursive: true });
  const vocab = readFileSync(path.join(dir, 'vocab.txt'), 'utf8').split('\n');
  writeFileSync(path.join(dir, 'vocab.txt'), vocab.slice(0, 60).join('\n') + '\n');
  const result = embed(['-m', dir, '--device', 'cpu'], 'text\n');
  assert.equal(result.status, 0, result.stderr);
  assert.equal(parseJsonl(result.stdout).length, 1);
  assert.match(result.stderr, /fewer tokens than config\.json's vocab_size; words outside it embed as \[UNK\].*tokens="?60 of 120/);

  const full = embed(['-m', BERT_DIR, '--device', 'cpu'], 'text\n');
  assert.doesNotMatch(full.stderr, /vocab_size/);
});

test('missing modules.json is logged', () => {
  const dir = path.join(makeTempDir(), 'model');
  cpSync(BERT_DIR, dir, { recursive: true });
  rmSync(path.join(dir, 'modules.json'));
  const result = embed(['-m', dir, '--device', 'cpu'], 'text\n');
  assert.equal(result.status, 0, result.stderr);
  const vectors = parseJsonl(result.stdout);
  assert.equal(vectors.length, 1);
  assert.notEqual(norm(vectors[0]).toFixed(3), '1.000', 'no Normalize module without modules.json');
  assert.match(result.stderr, /modules\.json not found; using mean pooling without normalisation/);
  assert.match(result.stderr, /model\/modules\.json/);
});

test('unloadable command module exits 2 with the fix', () => {
  const result = embed([], 'text\n', { env: { AGENTNET_COMMANDS_MODULE: '/nonexistent/module.so' } });
  assert.equal(result.status, 2);
  assert.equal(result.stdout.length, 0);
  assert.match(result.stderr, /cannot load the command module "\/nonexistent\/module\.so"/);
  assert.match(result.stderr, /rebuild with make/);
});

test('bad flag values exit 2', () => {
  const cases = [
    { args: ['--batch-size', '0'], pattern: /--batch-size 0 is invalid/ },
    { args: ['--batch-size', 'many'], pattern: /--batch-size "many" is invalid/ },
    { args: ['--batch-size', '70000'], pattern: /--batch-size 70000 is invalid/ },
    { args: ['--format', 'csv'], pattern: /--format "csv" is invalid; use jsonl or npy/ },
    { args: ['--device', 'gpu'], pattern: /--device "gpu" is invalid/ },
    { args: ['--threads', '-1'], pattern: /--threads "-1" is invalid/ },
    { args: ['--no-such-flag'], pattern: /unknown option "--no-such-flag"/ },
    { args: ['-m'], pattern: /-m needs a value/ },
  ];
  for (const { args, pattern } of cases) {
    const result = embed(args, 'text\n');
    assert.equal(result.status, 2, `${args.join(' ')}: status ${result.status}`);
    assert.match(result.stderr, pattern, `${args.join(' ')}: ${result.stderr}`);
  }
});

test('no progress output when stderr is not a terminal', () => {
  const input = 'some text\n'.repeat(5000);
  const result = embed(['-m', 'hash:8', '--batch-size', '10'], input);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '');
  assert.equal(parseJsonl(result.stdout).length, 5000);
});

// script(1) from util-linux runs the command on a pseudo-terminal, so that
// stderr is a terminal as it is for a person at a shell.
test('progress bar on a terminal shows rate and time left', () => {
  const found = spawnSync('script', ['--version'], { encoding: 'utf8' });
  assert.equal(found.status, 0, 'this test needs script(1) from util-linux on PATH');

  const dir = makeTempDir();
  const input = path.join(dir, 'texts.txt');
  const output = path.join(dir, 'vectors.npy');
  const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa'.split(' ');
  const lines = [];
  for (let i = 0; i < 200000; i++) {
    lines.push(`${words[i % 10]} ${words[(i * 7) % 10]} ${words[(i * 3) % 10]} line ${i}`);
  }
  writeFileSync(input, lines.join('\n') + '\n');

  const quote = (s) => `'${s.replace(/'/g, "'\\''")}'`;
  const command = [AGENTNET_BIN, 'embed', '-i', input, '-o', output, '--format', 'npy',
    '--batch-size', '100'].map(quote).join(' ');
  const result = spawnSync('script', ['-qec', command, '/dev/null'], {
    env: scrubbedEnv(),
    encoding: 'utf8',
    timeout: 60000,
  });
  assert.equal(result.status, 0, `script exited ${result.status}: ${result.stdout}`);
  assert.match(result.stdout, /\d+\/200000 texts/);
  assert.match(result.stdout, /\d+ texts\/s/);
  assert.match(result.stdout, /\d+(s|m\d\ds|h\d\dm) left/);
  assert.match(result.stdout, /\r\x1b\[K$/, 'the bar is cleared at the end');
  assert.deepEqual(parseNpy(readFileSync(output)).shape, [200000, DEFAULT_DIMS]);
});

test('no bar when vectors reach terminal', () => {
  const dir = makeTempDir();
  const input = path.join(dir, 'texts.txt');
  writeFileSync(input, 'alpha beta gamma\n'.repeat(300000));
  const quote = (s) => `'${s.replace(/'/g, "'\\''")}'`;
  const command = [AGENTNET_BIN, 'embed', '-m', 'hash:8', '-i', input, '--batch-size', '10']
    .map(quote).join(' ');
  const result = spawnSync('script', ['-qec', command, '/dev/null'], {
    env: scrubbedEnv(),
    encoding: 'utf8',
    timeout: 60000,
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(result.status, 0, `script exited ${result.status}`);
  assert.doesNotMatch(result.stdout, /texts\/s/);
  assert.equal(result.stdout.trim().split(/\r?\n/).length, 300000);

  // The same when -o names the terminal, and npy is refused there as on stdout.
  const toTty = spawnSync('script', ['-qec', `${command} -o /dev/tty`, '/dev/null'], {
    env: scrubbedEnv(),
    encoding: 'utf8',
    timeout: 60000,
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(toTty.status, 0, `script exited ${toTty.status}`);
  assert.doesNotMatch(toTty.stdout, /texts\/s/);
  assert.equal(toTty.stdout.trim().split(/\r?\n/).length, 300000);
  const npy = spawnSync('script', ['-qec', `${command} --format npy -o /dev/tty`, '/dev/null'], {
    env: scrubbedEnv(),
    encoding: 'utf8',
    timeout: 60000,
  });
  assert.equal(npy.status, 2);
  assert.match(npy.stdout, /npy output is binary and "\/dev\/tty" is a terminal; pass -o FILE\.npy/);
});
