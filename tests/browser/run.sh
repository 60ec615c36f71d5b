#!/bin/sh
# Browser tests of clients/web and clients/overlay (headless Chromium via
# playwright-core, against a tickerd and a redis-server of their own).
# Needs: node >= 20, /usr/bin/chromium (apt-get install chromium), redis-server,
# redis-cli and build/tickerd (make build/tickerd). Screenshots: build/browser/.
# Arguments go to node --test, e.g. one test: run.sh --test-name-pattern=getToken
# --test-timeout bounds each file too (node runs a file as one test): it is
# the files' own watchdog (BROWSER_TEST_TIMEOUT_MS, 300 s); browser.test.mjs
# takes over 120 s since the long-poll tests run.
set -eu
cd "$(dirname "$0")"
if [ ! -d node_modules/playwright-core ]; then
    npm install --no-audit --no-fund
fi
exec node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec "$@" harness.test.mjs browser.test.mjs feeds.test.mjs pin.test.mjs console.test.mjs kill.test.mjs
