// kill.test.mjs - kill confirmation (SPEC §7) in headless Chromium: three
// TV overlays labelled with ?screen= and one unlabelled demo page on one
// tickerd. A retract is acked by each overlay once its crawl element is
// gone, and `tickerctl retract ID --wait S` exits 0 with 3 of 3 acked; with
// one overlay's script paused (a frozen screen), that screen is reported
// pending and --wait exits 1. Run with tests/browser/run.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import * as H from './harness.mjs';

const SCREENS = ['studio-a', 'studio-b', 'studio-c'];
const ACK_WITHIN_MS = 1000;

const pages = {};

/** tickerctl with args against our Redis: {code, out, ms}. */
function tickerctl(...args) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(path.join(H.BUILD, 'tickerctl'), ['--redis', redis.url, ...args], { timeout: 20000 }, (err, out) =>
      resolve({ code: err ? err.code : 0, out, ms: Date.now() - t0 }),
    );
  });
}

async function openOverlay(label) {
  const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  const q = `server=${encodeURIComponent(tickerd.ws)}&backoff=300&replay=0&screen=${label}`;
  await page.goto(`${statics.url}/overlay/index.html?${q}`);
  await page.waitForSelector('#stage[data-conn="connected"]', { state: 'attached', timeout: 10000 });
  await page.waitForFunction(() => window.tickerOverlay && window.tickerOverlay.client.epoch, null, { timeout: 5000 });
  return page;
}

async function openDemo() {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(`${tickerd.http}/?backoff=300`);
  await page.waitForSelector('#bar .tk-status[data-state="connected"]', { timeout: 15000 });
  return page;
}

const shown = (page, id, root) => page.locator(`${root} [data-id="${id}"]`).count();

async function publishEverywhere(text) {
  const id = await redis.xadd({ lang: 'en', text });
  for (const label of SCREENS) await pages[label].waitForSelector(`#crawl [data-id="${id}"]`, { state: 'attached', timeout: 2000 });
  await pages.demo.waitForSelector(`#bar [data-id="${id}"]`, { state: 'attached', timeout: 2000 });
  return id;
}

const world = {};
let redis, tickerd, statics, browser;

before(async () => {
  await H.startWorld(world);
  ({ redis, tickerd, statics, browser } = world);
  for (const label of SCREENS) pages[label] = await openOverlay(label);
  pages.demo = await openDemo();
});

after(() => H.stopWorld(world));

test('kill: 3 labelled overlays ack within 1 s, the demo page is not counted, --wait exits 0', async (t) => {
  const id = await publishEverywhere(`Wrong headline ${process.pid}`);
  const r = await tickerctl('retract', id, '--wait', '5');
  assert.equal(r.code, 0, r.out);
  const body = JSON.parse(r.out);
  assert.equal(body.ref, id);
  assert.equal(body.sent, 3);
  assert.equal(body.acked, 3);
  assert.deepEqual(body.screens.map((s) => s.client), SCREENS);
  for (const s of body.screens) assert.ok(s.acked_ms >= 0 && s.acked_ms <= ACK_WITHIN_MS, JSON.stringify(s));
  // Acked only once off display: the crawl element was gone by then.
  for (const label of SCREENS) assert.equal(await shown(pages[label], id, '#crawl'), 0, label);
  await pages.demo.waitForSelector(`#bar [data-id="${id}"]`, { state: 'detached', timeout: 2000 });
  const res = await H.httpGet(`${tickerd.http}/v1/items/${id}/screens`);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), body);
  t.diagnostic(`acked_ms: ${body.screens.map((s) => `${s.client} ${s.acked_ms}`).join(', ')}`);
  for (const p of Object.values(pages)) assert.deepEqual(p.errors, []);
});

test('kill: a frozen overlay is reported pending and --wait exits 1', async () => {
  const id = await publishEverywhere(`Another wrong headline ${process.pid}`);
  const frozen = pages['studio-c'];
  const cdp = await frozen.context().newCDPSession(frozen);
  await cdp.send('Debugger.enable');
  await cdp.send('Debugger.pause');
  try {
    const r = await tickerctl('retract', id, '--wait', '2');
    assert.equal(r.code, 1, r.out);
    assert.ok(r.ms >= 2000, `gave up after ${r.ms} ms`);
    const body = JSON.parse(r.out);
    assert.equal(body.sent, 3);
    assert.equal(body.acked, 2);
    const by = Object.fromEntries(body.screens.map((s) => [s.client, s]));
    assert.equal(by['studio-c'].acked_ms, null);
    assert.ok(by['studio-a'].acked_ms <= ACK_WITHIN_MS && by['studio-b'].acked_ms <= ACK_WITHIN_MS);
  } finally {
    await cdp.send('Debugger.resume');
  }
  // Thawed, it takes the item off and acks after all.
  await frozen.waitForSelector(`#crawl [data-id="${id}"]`, { state: 'detached', timeout: 5000 });
  await H.waitUntil(
    async () => JSON.parse((await H.httpGet(`${tickerd.http}/v1/items/${id}/screens`)).body).acked === 3,
    5000,
    'the late ack',
  );
});
