// Operations surface: health and readiness probes, Prometheus metrics, the
// JSON access log, /v1/models forwarding and graceful shutdown.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openaiClient } from './lib/checks.mjs';
import { fetchMetrics, metricValue, postJson, request, sleep, startStack } from './lib/gateway.mjs';

const CHAT = '/v1/chat/completions';
const BODY = { model: 'fake-chat', messages: [{ role: 'user', content: 'observe me' }] };

test('healthz and readyz return 200 JSON', async (t) => {
  const { gateway } = await startStack(t);

  const health = await request(gateway, 'GET', '/healthz');
  assert.equal(health.status, 200);
  assert.match(health.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(health.json?.status, 'ok', `/healthz body: ${health.text}`);
  assert.ok(health.headers.get('x-request-id'), 'X-Request-Id on /healthz');

  const ready = await request(gateway, 'GET', '/readyz');
  assert.equal(ready.status, 200, `/readyz body: ${ready.text}`);
  assert.notEqual(ready.json, undefined, `/readyz body is not JSON: ${ready.text}`);
});

test('every response has a distinct X-Request-Id', async (t) => {
  const { gateway } = await startStack(t);
  const responses = [
    await postJson(gateway, CHAT, BODY),
    await postJson(gateway, CHAT, BODY),
    await request(gateway, 'GET', '/metrics'),
    await request(gateway, 'GET', '/v1/models', { headers: { Authorization: 'Bearer sk-test' } }),
    await request(gateway, 'GET', '/no-such-path'),
  ];
  const ids = responses.map((response) => response.headers.get('x-request-id'));
  ids.forEach((id, i) => assert.ok(id, `response ${i} has no X-Request-Id`));
  assert.equal(new Set(ids).size, ids.length, `request ids repeat: ${ids.join(', ')}`);
});

test('metrics expose cache, HTTP and upstream series', async (t) => {
  const { gateway } = await startStack(t);
  await postJson(gateway, CHAT, BODY);
  await postJson(gateway, CHAT, BODY);

  const metrics = await request(gateway, 'GET', '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
  const text = metrics.text;

  for (const name of [
    'agentnet_cache_requests_total',
    'agentnet_cache_entries',
    'agentnet_cache_bytes',
    'agentnet_cache_evictions_total',
    'agentnet_http_requests_total',
    'agentnet_upstream_request_duration_seconds',
  ]) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `no TYPE line for ${name}`);
    assert.match(text, new RegExp(`^${name}(_[a-z]+)?(\\{|\\s)`, 'm'), `no sample of ${name}`);
  }
  assert.match(text, /^# TYPE agentnet_http_request_duration_seconds histogram$/m);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    assert.match(
      text,
      new RegExp(`^agentnet_http_request_duration_seconds${suffix}(\\{|\\s)`, 'm'),
      `no agentnet_http_request_duration_seconds${suffix} sample`,
    );
  }
  assert.match(text, /^agentnet_http_request_duration_seconds_bucket\{[^}]*le="\+Inf"[^}]*\}/m);

  const { samples } = await fetchMetrics(gateway);
  assert.equal(
    metricValue(samples, 'agentnet_http_requests_total', { route: CHAT, code: '200' }),
    2,
    'agentnet_http_requests_total{route="/v1/chat/completions",code="200"}',
  );
  assert.equal(metricValue(samples, 'agentnet_cache_entries', { cache: 'responses' }), 1);
  assert.ok(metricValue(samples, 'agentnet_cache_bytes', { cache: 'responses' }) > 0, 'responses cache bytes');
  assert.equal(
    metricValue(samples, 'agentnet_upstream_request_duration_seconds_count'),
    1,
    'one upstream request was timed',
  );
});

test('access log has one JSON line per request', async (t) => {
  const { gateway } = await startStack(t);
  const miss = await postJson(gateway, CHAT, BODY);
  const hit = await postJson(gateway, CHAT, BODY);
  const health = await request(gateway, 'GET', '/healthz');
  const exit = await gateway.stop();
  assert.equal(exit.code, 0);

  const records = gateway.logRecords();
  const unparsed = records.filter((record) => 'unparsed' in record);
  assert.deepEqual(unparsed, [], 'stderr lines that are not JSON');

  const access = gateway.accessLog();
  const expectations = [
    [miss, CHAT, 'miss'],
    [hit, CHAT, 'hit'],
    [health, '/healthz', undefined],
  ];
  for (const [response, route, cache] of expectations) {
    const id = response.headers.get('x-request-id');
    const lines = access.filter((record) => record.request_id === id);
    assert.equal(lines.length, 1, `access lines for request ${id} (${route})`);
    const line = lines[0];
    assert.equal(line.route, route);
    assert.equal(line.status, 200);
    assert.equal(typeof line.latency_ms, 'number', `latency_ms of ${route}`);
    assert.ok(line.latency_ms >= 0, `latency_ms of ${route} is ${line.latency_ms}`);
    assert.equal(typeof line.ts, 'string', 'ts field');
    assert.equal(typeof line.level, 'string', 'level field');
    if (cache) {
      assert.equal(line.cache, cache, `cache field of the ${cache}`);
    }
  }
});

test('--access-log off writes no access lines', async (t) => {
  const { gateway } = await startStack(t, { args: ['--access-log', 'off'] });
  const response = await postJson(gateway, CHAT, BODY);
  assert.equal(response.status, 200);
  await request(gateway, 'GET', '/healthz');
  await gateway.stop();

  assert.deepEqual(gateway.accessLog(), [], 'access lines with --access-log off');
});

test('GET /v1/models is forwarded', async (t) => {
  const { fake, gateway } = await startStack(t);
  const client = openaiClient(gateway, 'sk-models');

  const models = [];
  for await (const model of client.models.list()) {
    models.push(model.id);
  }
  assert.deepEqual(models, ['fake-chat', 'fake-embed']);
  assert.equal(fake.count('/v1/models', 'GET'), 1);
  assert.equal(fake.last('/v1/models').headers.authorization, 'Bearer sk-models');
});

test('SIGTERM lets an in-flight request finish', async (t) => {
  const { fake, gateway } = await startStack(t);
  fake.behavior.delayMs = 1000;

  const inFlight = postJson(gateway, CHAT, BODY);
  const deadline = Date.now() + 5000;
  while (fake.count(CHAT) === 0 && Date.now() < deadline) {
    await sleep(20);
  }
  assert.equal(fake.count(CHAT), 1, 'the request reached upstream before SIGTERM');

  const stopping = gateway.stop();
  const response = await inFlight;
  assert.equal(response.status, 200);
  assert.equal(response.json.choices[0].message.content, 'echo:observe me');
  const exit = await stopping;
  assert.deepEqual(exit, { code: 0, signal: null });
});
