// Helpers that run the real `agentnet serve` binary for the end-to-end tests.
//
// The binary is AGENTNET_BIN, or build/agentnet at the repository root when
// the variable is unset. Every gateway listens on 127.0.0.1 and gets an
// environment without OPENAI_* and AGENTNET_* variables, so that a
// developer's own settings never reach the process under test.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startFakeUpstream } from './fake-upstream.mjs';

const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const AGENTNET_BIN = process.env.AGENTNET_BIN
  ? path.resolve(E2E_DIR, process.env.AGENTNET_BIN)
  : path.resolve(E2E_DIR, '../../build/agentnet');

const STARTUP_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 10000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Temporary directories and processes still alive when the test process
// exits are removed and killed here, so that a failed test leaves nothing
// behind.
const tempDirs = new Set();
const liveProcesses = new Set();
process.on('exit', () => {
  for (const child of liveProcesses) {
    child.kill('SIGKILL');
  }
  for (const dir of tempDirs) {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Creates an empty directory under os.tmpdir() that is removed when the test
// process exits.
export function makeTempDir(prefix = 'agentnet-e2e-') {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

// Throws with a build hint when the binary is missing, so that the suite
// fails loudly instead of reporting errors from spawn.
export function requireBinary() {
  if (!existsSync(AGENTNET_BIN)) {
    throw new Error(
      `agentnet binary not found at ${AGENTNET_BIN}; build it with \`make\` ` +
        'at the repository root or set AGENTNET_BIN to its path',
    );
  }
}

// Returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process could take it before the caller binds it, which is unlikely on a
// test machine.
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// Returns a copy of process.env without OPENAI_* and AGENTNET_* variables,
// with `extra` added.
export function scrubbedEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('OPENAI_') || name.startsWith('AGENTNET_')) {
      continue;
    }
    env[name] = value;
  }
  return { ...env, ...extra };
}

// Runs `agentnet ARGS...` to completion with the scrubbed environment and
// returns { status, stdout, stderr }.
export function runAgentnet(args, { env = {}, timeoutMs = 20000 } = {}) {
  requireBinary();
  const result = spawnSync(AGENTNET_BIN, args, {
    env: scrubbedEnv(env),
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  if (result.error) {
    throw result.error;
  }
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

// Starts `agentnet serve` and resolves once GET /healthz returns 200.
//
// options:
//   upstream  upstream base URL ending in /v1; null starts without --upstream
//   dataDir   data directory; a fresh temporary one when omitted
//   args      extra command-line flags
//   env       extra environment variables (for example AGENTNET_UPSTREAM_API_KEY)
//   port      listen port; a free one when omitted
export async function startGateway({ upstream, dataDir, args = [], env = {}, port } = {}) {
  requireBinary();
  const listenPort = port ?? (await freePort());
  const dir = dataDir ?? makeTempDir();
  const argv = ['serve', '--listen', `127.0.0.1:${listenPort}`, '--data-dir', dir];
  if (upstream) {
    argv.push('--upstream', upstream);
  }
  argv.push(...args);

  const child = spawn(AGENTNET_BIN, argv, {
    env: scrubbedEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveProcesses.add(child);

  const gateway = {
    process: child,
    port: listenPort,
    url: `http://127.0.0.1:${listenPort}`,
    baseURL: `http://127.0.0.1:${listenPort}/v1`,
    dataDir: dir,
    argv,
    stdout: '',
    stderr: '',
    exit: null,
    exited: null,

    // Returns the complete stderr lines seen so far.
    stderrLines() {
      return this.stderr.split('\n').filter((line) => line.length > 0);
    },

    // Returns the stderr lines parsed as JSON; a line that is not JSON is
    // returned as { unparsed: LINE }.
    logRecords() {
      return this.stderrLines().map((line) => {
        try {
          return JSON.parse(line);
        } catch {
          return { unparsed: line };
        }
      });
    },

    // Returns the access-log records: the JSON stderr lines whose msg is "access".
    accessLog() {
      return this.logRecords().filter((record) => record.msg === 'access');
    },

    // Sends SIGTERM and resolves to { code, signal } once the process exits.
    // Sends SIGKILL and rejects when it has not exited after STOP_TIMEOUT_MS.
    async stop() {
      if (this.exit) {
        return this.exit;
      }
      child.kill('SIGTERM');
      const timer = sleep(STOP_TIMEOUT_MS).then(() => 'timeout');
      const outcome = await Promise.race([this.exited, timer]);
      if (outcome === 'timeout') {
        child.kill('SIGKILL');
        await this.exited;
        throw new Error(`agentnet serve did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
      }
      return outcome;
    },

    // Sends SIGKILL and resolves to { code, signal } once the process is gone.
    async kill9() {
      if (this.exit) {
        return this.exit;
      }
      child.kill('SIGKILL');
      return this.exited;
    },
  };

  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (text) => {
    gateway.stdout += text;
  });
  child.stderr.on('data', (text) => {
    gateway.stderr += text;
  });
  let spawnError = null;
  child.on('error', (err) => {
    spawnError = err;
  });
  gateway.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      liveProcesses.delete(child);
      gateway.exit = { code, signal };
      resolve(gateway.exit);
    });
  });
  // Wait for stderr to drain as well, so that log checks after stop() see
  // every line.
  const closed = new Promise((resolve) => child.on('close', resolve));
  gateway.exited = gateway.exited.then(async (exit) => {
    await closed;
    return exit;
  });

  await waitForHealthy(gateway, () => spawnError);
  return gateway;
}

async function waitForHealthy(gateway, spawnError) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (spawnError()) {
      liveProcesses.delete(gateway.process);
      throw new Error(`failed to start ${AGENTNET_BIN}: ${spawnError().message}`);
    }
    if (gateway.exit) {
      throw new Error(
        `agentnet serve exited with ${JSON.stringify(gateway.exit)} before /healthz returned 200; ` +
          `argv: ${gateway.argv.join(' ')}\nstderr:\n${gateway.stderr}`,
      );
    }
    try {
      const response = await fetch(`${gateway.url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) {
        return;
      }
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  await gateway.kill9();
  throw new Error(
    `agentnet serve did not return 200 for GET /healthz within ${STARTUP_TIMEOUT_MS} ms; ` +
      `argv: ${gateway.argv.join(' ')}\nstderr:\n${gateway.stderr}`,
  );
}

// Starts a fake upstream and a gateway in front of it, and registers their
// shutdown with the test context `t`. `gatewayOptions` go to startGateway.
export async function startStack(t, gatewayOptions = {}) {
  const fake = await startFakeUpstream();
  t.after(() => fake.close());
  const gateway = await startGateway({ upstream: fake.url, ...gatewayOptions });
  t.after(() => gateway.kill9());
  return { fake, gateway };
}

// Sends one HTTP request with fetch and reads the whole response.
// Resolves to { status, headers, bytes, text, json } where json is the parsed
// body or undefined when the body is not JSON.
export async function request(gateway, method, urlPath, { headers = {}, body, timeoutMs = 15000 } = {}) {
  let payload = body;
  const sendHeaders = { ...headers };
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    payload = JSON.stringify(body);
  }
  if (payload !== undefined && !Object.keys(sendHeaders).some((h) => h.toLowerCase() === 'content-type')) {
    sendHeaders['Content-Type'] = 'application/json';
  }
  const response = await fetch(`${gateway.url}${urlPath}`, {
    method,
    headers: sendHeaders,
    body: payload,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  const text = bytes.toString('utf8');
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, bytes, text, json };
}

// POSTs a JSON body to a /v1 route with the bearer key that the openai
// clients of these tests use.
export function postJson(gateway, route, body, headers = {}) {
  return request(gateway, 'POST', route, {
    headers: { Authorization: 'Bearer sk-test', ...headers },
    body,
  });
}

// Parses the Prometheus text exposition format into a list of samples
// { name, labels, value }.
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) {
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) {
      continue;
    }
    const labels = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

// Fetches /metrics and returns { text, samples }.
export async function fetchMetrics(gateway) {
  const response = await request(gateway, 'GET', '/metrics');
  if (response.status !== 200) {
    throw new Error(`GET /metrics returned ${response.status}: ${response.text}`);
  }
  return { text: response.text, samples: parseMetrics(response.text) };
}

// Sums the samples named `name` whose labels include every pair in `labels`.
// Returns undefined when no sample matches, so that a missing series fails
// an equality check instead of reading as 0.
export function metricValue(samples, name, labels = {}) {
  const matching = samples.filter(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (matching.length === 0) {
    return undefined;
  }
  return matching.reduce((sum, sample) => sum + sample.value, 0);
}

// Returns the value of one metric series from a fresh /metrics scrape.
export async function scrapeMetric(gateway, name, labels = {}) {
  const { samples } = await fetchMetrics(gateway);
  return metricValue(samples, name, labels);
}
