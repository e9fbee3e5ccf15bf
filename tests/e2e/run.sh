#!/usr/bin/env bash
# Runs the end-to-end suite with node's test runner, one file at a time,
# because each file starts its own gateway and some tests measure timeouts.
set -euo pipefail
cd "$(dirname "$0")"

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "e2e: Node $(node --version) is too old; install Node 18 or newer" >&2
  exit 1
fi
if [ ! -d node_modules/openai ]; then
  echo "e2e: npm packages missing; run: (cd tests/e2e && npm ci)" >&2
  exit 1
fi

# --test-concurrency exists from Node 20.10; older runners take files in turn
# when given one file per invocation.
if node --help | grep -q -- '--test-concurrency'; then
  exec node --test --test-concurrency=1 ./*.test.mjs
fi
status=0
for file in ./*.test.mjs; do
  node --test "$file" || status=1
done
exit "$status"
