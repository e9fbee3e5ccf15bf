// Entry bounds of the response cache (--response-max-entries).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fetchMetrics, metricValue, postJson, startStack } from './lib/gateway.mjs';

test('response cache stays within max entries', async (t) => {
  const { fake, gateway } = await startStack(t, { args: ['--response-max-entries', '5'] });

  for (let i = 0; i < 20; i++) {
    const response = await postJson(gateway, '/v1/chat/completions', {
      model: 'fake-chat',
      messages: [{ role: 'user', content: `distinct ${i}` }],
    });
    assert.equal(response.status, 200, `request ${i}`);
  }
  assert.equal(fake.count('/v1/chat/completions'), 20);

  const { samples, text } = await fetchMetrics(gateway);
  const entries = metricValue(samples, 'agentnet_cache_entries', { cache: 'responses' });
  const evictions = metricValue(samples, 'agentnet_cache_evictions_total', { cache: 'responses' });
  assert.notEqual(entries, undefined, `no agentnet_cache_entries{cache="responses"} in:\n${text}`);
  assert.ok(entries <= 5, `agentnet_cache_entries{cache="responses"} is ${entries}:\n${text}`);
  assert.ok(entries >= 1, `agentnet_cache_entries{cache="responses"} is ${entries}; the latest responses should stay`);
  assert.notEqual(evictions, undefined, `no agentnet_cache_evictions_total{cache="responses"} in:\n${text}`);
  assert.ok(evictions >= 15, `agentnet_cache_evictions_total{cache="responses"} is ${evictions}:\n${text}`);

  // The newest response is one of the entries kept.
  const newest = await postJson(gateway, '/v1/chat/completions', {
    model: 'fake-chat',
    messages: [{ role: 'user', content: 'distinct 19' }],
  });
  assert.equal(newest.headers.get('x-agentnet-cache'), 'hit', 'the most recent entry survives eviction');
});
