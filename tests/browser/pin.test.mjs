// pin.test.mjs - pinned items first (SPEC §1 `pin`, §8) in ticker.js's state,
// on the demo page (bar and list) and in the TV overlay's crawl: a pinned
// item stays first whatever is published after it, an update with pin 0
// puts it back in its place, a retract takes it away. Screenshots go to
// /tmp/console/ (SHOTS_DIR). Run with tests/browser/run.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as H from './harness.mjs';

export const SHOTS = process.env.SHOTS_DIR || '/tmp/console';
const GLOBAL_TIMEOUT_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 300000);
const watchdog = setTimeout(() => {
  console.error(`pin browser tests: still running after ${GLOBAL_TIMEOUT_MS} ms, giving up`);
  process.exit(2); // the exit hook kills our redis-server and tickerd
}, GLOBAL_TIMEOUT_MS);
watchdog.unref();

const w = {}; // redis, tickerd, statics, browser: harness.mjs startWorld

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  await H.startWorld(w);
});

after(async () => {
  await H.stopWorld(w);
});

async function open(t, url, ready, viewport = { width: 1280, height: 720 }) {
  const ctx = await w.browser.newContext({ viewport });
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector(ready, { state: 'attached', timeout: 15000 });
  return page;
}

/** The data-id of the items in `sel`, in page order. */
const order = (page, sel) => page.$$eval(`${sel} .tk-item`, (els) => els.map((e) => e.dataset.id));

async function waitOrder(page, sel, want, what) {
  await H.waitUntil(async () => JSON.stringify(await order(page, sel)) === JSON.stringify(want), 5000, `${what}: ${want}`).catch(
    async (e) => {
      e.message += ` (have ${JSON.stringify(await order(page, sel))})`;
      throw e;
    },
  );
}

test('pins: the demo keeps a pinned item first in the bar and the list; unpin and retract put it back', async (t) => {
  const region = `europe`;
  const pinned = await w.redis.xadd({ lang: 'en', region, text: 'Pinned: live coverage of the summit', pin: 1 });
  const a = await w.redis.xadd({ lang: 'en', region, text: 'Later headline A' });
  const page = await open(t, `${w.tickerd.http}/?region=${region}&view=list&backoff=300`, '#bar .tk-status[data-state="connected"]');
  await waitOrder(page, '#list', [pinned, a], 'replayed: pinned first');
  const b = await w.redis.xadd({ lang: 'en', region, text: 'Later headline B, live' });
  await waitOrder(page, '#list', [pinned, b, a], 'a live item goes under the pin');
  await waitOrder(page, '#bar', [pinned, b, a], 'the bar too');
  assert.equal(await page.getAttribute(`#list [data-id="${pinned}"]`, 'data-pinned'), 'true');
  assert.equal(await page.getAttribute(`#list [data-id="${b}"]`, 'data-pinned'), null);
  // the marker is drawn (::before), so a reader sees the difference
  const marker = await page.$eval(`#list [data-id="${pinned}"]`, (e) => getComputedStyle(e, '::before').width);
  assert.notEqual(marker, 'auto');
  await page.screenshot({ path: path.join(SHOTS, 'pin-demo.png') });

  // unpin (an update carrying only pin 0): back to its place by ID
  await w.redis.xadd({ op: 'update', ref: pinned, pin: 0 });
  await waitOrder(page, '#list', [b, a, pinned], 'unpinned: newest first again');
  assert.equal(await page.getAttribute(`#list [data-id="${pinned}"]`, 'data-pinned'), null);
  assert.match(await page.textContent(`#list [data-id="${pinned}"]`), /live coverage of the summit/);
  // pinned again (an update with pin 1), then a second pin: both first, newest pin on top
  await w.redis.xadd({ op: 'update', ref: pinned, pin: 1 });
  await waitOrder(page, '#list', [pinned, b, a], 'pinned again');
  await w.redis.xadd({ op: 'update', ref: a, pin: 1, text: 'Later headline A, now pinned' });
  await waitOrder(page, '#list', [a, pinned, b], 'two pins, newest first, above the rest');
  await w.redis.xadd({ op: 'retract', ref: a });
  await waitOrder(page, '#list', [pinned, b], 'a retracted pin is gone');
  // a reload: the replay brings the pin first (the server puts it on top of replay=N)
  await page.reload();
  await page.waitForSelector('#bar .tk-status[data-state="connected"]', { timeout: 10000 });
  await waitOrder(page, '#list', [pinned, b], 'replayed after a reload');
  assert.deepEqual(page.errors, []);
});

test('pins: the overlay shows a pinned item first in the crawl', async (t) => {
  const region = 'africa';
  const first = await w.redis.xadd({ lang: 'en', region, text: 'Older story, pinned by the desk', pin: 1 });
  const later = await w.redis.xadd({ lang: 'en', region, text: 'Newer story' });
  const url = `${w.statics.url}/overlay/index.html?server=${encodeURIComponent(w.tickerd.ws)}&region=${region}&backoff=300&speed=40`;
  const page = await open(t, url, '#stage[data-conn="connected"]', { width: 1920, height: 1080 });
  await waitOrder(page, '#crawl', [first, later], 'the pinned item leads the crawl');
  assert.equal(await page.getAttribute(`#crawl [data-id="${first}"]`, 'data-pinned'), 'true');
  const newest = await w.redis.xadd({ lang: 'en', region, text: 'Newest story' });
  await waitOrder(page, '#crawl', [first, newest, later], 'still first after a new item');
  await page.evaluate(() => window.next()); // the crawl to its first headline, for the picture
  await H.sleep(300);
  await page.screenshot({ path: path.join(SHOTS, 'pin-overlay.png') });
  await w.redis.xadd({ op: 'update', ref: first, pin: 0 });
  await waitOrder(page, '#crawl', [newest, later, first], 'unpinned');
  assert.deepEqual(page.errors, []);
});
