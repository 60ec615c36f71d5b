// browser.test.mjs - the web client (clients/web) and the TV overlay
// (clients/overlay) in headless Chromium against a real tickerd and Redis.
// Run with tests/browser/run.sh. Screenshots go to build/browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import * as H from './harness.mjs';

const GLOBAL_TIMEOUT_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 300000);
const watchdog = setTimeout(() => {
  console.error(`browser tests: still running after ${GLOBAL_TIMEOUT_MS} ms, giving up`);
  process.exit(2); // the exit hook kills our redis-server and tickerd
}, GLOBAL_TIMEOUT_MS);
watchdog.unref();

let dir, redis, tickerd, statics, browser;
let seq = 0;
const tag = () => `#${process.pid}.${++seq}`;
const shot = (name) => path.join(H.SHOTS, name);

before(async () => {
  fs.mkdirSync(H.SHOTS, { recursive: true });
  dir = H.tempDir();
  redis = await new H.Redis(dir).start();
  tickerd = await new H.Tickerd(dir, redis).start();
  statics = await H.staticServer();
  browser = await chromium.launch({ executablePath: H.CHROMIUM, args: H.CHROMIUM_ARGS, timeout: 30000 });
});

after(async () => {
  if (browser) await Promise.race([browser.close(), H.sleep(5000)]);
  if (statics) statics.close();
  if (tickerd) await tickerd.stop();
  if (redis) await redis.stop();
  if (dir && !process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
  else if (dir) console.error(`browser tests: kept ${dir}`);
});

/** A fresh browser context on the demo page, connected. `base`: where the
 * page comes from (tickerd, or a proxy in front of it). */
async function openDemo(t, query = '', { reducedMotion = 'no-preference', viewport = { width: 1280, height: 720 }, setup, base } = {}) {
  const ctx = await browser.newContext({ viewport, reducedMotion });
  t.after(() => ctx.close());
  return openTab(ctx, query, { setup, base });
}

/** One more tab of the demo in `ctx`, connected (or fed by another tab). */
async function openTab(ctx, query = '', { setup, base = tickerd.http, td = tickerd } = {}) {
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  if (setup) await setup(page);
  await page.goto(`${base}/?backoff=300&backoff_max=2000&${query}`);
  try {
    await page.waitForSelector('#bar .tk-status[data-state="connected"]', { timeout: 15000 });
    await page.waitForFunction(() => window.ticker && window.ticker.log.replays.length > 0, null, { timeout: 5000 });
  } catch (e) {
    const log = await page.evaluate(() => window.ticker && window.ticker.log).catch(() => null);
    e.message += `\npage log: ${JSON.stringify(log)}\ntickerd log tail:\n${td.log().split('\n').slice(-10).join('\n')}`;
    throw e;
  }
  return page;
}

const count = (page, sel) => page.locator(sel).count();

async function assertOnce(page, id, where = ['#list', '#bar']) {
  for (const w of where) assert.equal(await count(page, `${w} [data-id="${id}"]`), 1, `${id} once in ${w}`);
}

function noPageErrors(page) {
  assert.deepEqual(page.errors, [], 'uncaught errors in the page');
}

// ---------------------------------------------------------------------------
// The demo page

test('demo page shows a published item within 1 s', async (t) => {
  const page = await openDemo(t);
  const text = `Ceasefire talks resume in Cairo ${tag()}`;
  const t0 = Date.now();
  const { id, via } = await H.publish(redis, { text, lang: 'en', region: 'mena' });
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'attached', timeout: Math.max(1, 1000 - (Date.now() - t0)) });
  await page.waitForSelector(`#bar [data-id="${id}"]`, { state: 'attached', timeout: Math.max(1, 1000 - (Date.now() - t0)) });
  const ms = Date.now() - t0;
  t.diagnostic(`shown ${ms} ms after publishing with ${via}`);
  assert.ok(ms <= 1000, `shown after ${ms} ms`);
  await assertOnce(page, id);
  const el = page.locator(`#list [data-id="${id}"]`);
  assert.equal(await el.getAttribute('dir'), 'auto');
  assert.equal(await el.getAttribute('lang'), 'en');
  assert.equal(await el.getAttribute('data-priority'), 'breaking');
  assert.equal(await el.locator('.tk-text').textContent(), text);
  assert.equal(await page.locator('#bar .tk-status').getAttribute('data-transport'), 'ws');
  await H.sleep(1500); // let the crawl bring the headline in
  await page.screenshot({ path: shot('demo.png') });
  noPageErrors(page);
});

test('an Arabic item renders right to left', async (t) => {
  const ar = await redis.xadd({
    lang: 'ar', region: 'mena', priority: 'urgent',
    text: `مسيّرة إسرائيلية تستهدف سيارة في بلدة طول بقضاء النبطية ${tag()}`,
    source: 'مراسل الميادين',
  });
  const en = await redis.xadd({ lang: 'en', region: 'mena', text: `An English headline ${tag()}` });
  // Mixed languages: each item takes its own direction.
  const page = await openDemo(t);
  await page.waitForSelector(`#list [data-id="${ar}"]`, { state: 'attached' });
  for (const w of ['#list', '#bar']) {
    const dir = await page.$eval(`${w} [data-id="${ar}"]`, (e) => getComputedStyle(e).direction);
    assert.equal(dir, 'rtl', `Arabic item in ${w}`);
    const dirEn = await page.$eval(`${w} [data-id="${en}"]`, (e) => getComputedStyle(e).direction);
    assert.equal(dirEn, 'ltr', `English item in ${w}`);
  }
  const font = await page.$eval(`#list [data-id="${ar}"]`, (e) => getComputedStyle(e).fontFamily);
  assert.match(font, /^"?Noto Naskh Arabic"?/, 'an Arabic font comes first for lang=ar');
  assert.equal(await page.getAttribute(`#list [data-id="${ar}"]`, 'lang'), 'ar');

  // Arabic only: the whole bar runs right to left, with an Arabic label.
  const pageAr = await openDemo(t, 'lang=ar');
  await pageAr.waitForSelector(`#bar [data-id="${ar}"]`, { state: 'attached' });
  assert.equal(await count(pageAr, `[data-id="${en}"]`), 0, 'lang=ar filters English out');
  assert.equal(await pageAr.getAttribute('#bar', 'data-direction'), 'rtl');
  assert.equal(await pageAr.$eval('#bar', (e) => getComputedStyle(e).direction), 'rtl');
  assert.equal(await pageAr.$eval(`#bar [data-id="${ar}"]`, (e) => getComputedStyle(e).direction), 'rtl');
  assert.equal((await pageAr.textContent('#bar .tk-label')).trim(), 'عاجل');
  assert.equal(await pageAr.$eval('#lang', (e) => e.value), 'ar');
  await H.sleep(1500);
  await pageAr.screenshot({ path: shot('demo-ar.png') });
  noPageErrors(page);
  noPageErrors(pageAr);
});

test('an update replaces the item in place', async (t) => {
  const page = await openDemo(t, 'region=africa');
  const id = await redis.xadd({ lang: 'en', region: 'africa', text: `Death toll rises to 12 ${tag()}` });
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'attached' });
  const fixed = `Death toll rises to 21 ${tag()}`;
  await redis.xadd({ op: 'update', ref: id, text: fixed, priority: 'urgent' });
  await page.waitForFunction(
    ([id, fixed]) => document.querySelector(`#list [data-id="${id}"] .tk-text`)?.textContent === fixed,
    [id, fixed],
    { timeout: 2000 },
  );
  await assertOnce(page, id);
  assert.equal(await page.getAttribute(`#list [data-id="${id}"]`, 'data-priority'), 'urgent');
  assert.equal((await page.textContent(`#bar [data-id="${id}"] .tk-text`)), fixed);
  noPageErrors(page);
});

test('a retract removes the item', async (t) => {
  const early = await redis.xadd({ lang: 'en', region: 'asia', text: `Retracted before the page opened ${tag()}` });
  await redis.xadd({ op: 'retract', ref: early });
  const page = await openDemo(t, 'region=asia');
  assert.equal(await count(page, `[data-id="${early}"]`), 0, 'a retracted item is not replayed');
  const id = await redis.xadd({ lang: 'en', region: 'asia', priority: 'flash', text: `Wrong report ${tag()}` });
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'attached' });
  await page.waitForSelector(`#bar [data-id="${id}"]`, { state: 'attached' });
  await redis.xadd({ op: 'retract', ref: id });
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'detached', timeout: 1000 });
  await page.waitForSelector(`#bar [data-id="${id}"]`, { state: 'detached', timeout: 1000 });
  assert.equal(await page.evaluate((id) => window.ticker.client.get(id), id), undefined);
  noPageErrors(page);
});

test('an item is dropped at its expiry time', async (t) => {
  const page = await openDemo(t, 'region=asia-pacific');
  const id = await redis.xadd({ lang: 'en', region: 'asia-pacific', ttl: 2, text: `Short-lived ${tag()}` });
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'attached' });
  const t0 = Date.now();
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'detached', timeout: 4000 });
  await page.waitForSelector(`#bar [data-id="${id}"]`, { state: 'detached', timeout: 500 });
  t.diagnostic(`removed ${Date.now() - t0} ms after it was shown (ttl 2 s)`);
  assert.ok(await page.evaluate(() => window.ticker.log.expires) >= 1);
  noPageErrors(page);
});

test('flash and urgent items stand out', async (t) => {
  const page = await openDemo(t, 'region=latin-america');
  const ids = {};
  for (const p of ['normal', 'breaking', 'urgent', 'flash']) {
    ids[p] = await redis.xadd({ lang: 'es', region: 'latin-america', priority: p, text: `Titular ${p} ${tag()}` });
  }
  await page.waitForSelector(`#list [data-id="${ids.flash}"]`, { state: 'attached' });
  const style = (sel) => page.$eval(sel, (e) => {
    const s = getComputedStyle(e);
    return { bg: s.backgroundColor, weight: Number(s.fontWeight), border: s.borderInlineStartColor };
  });
  const list = {};
  for (const p of Object.keys(ids)) list[p] = await style(`#list [data-id="${ids[p]}"]`);
  assert.notEqual(list.flash.bg, list.breaking.bg, 'flash background in the list');
  assert.notEqual(list.urgent.bg, list.breaking.bg, 'urgent background in the list');
  assert.ok(list.flash.weight > list.normal.weight, 'flash is bolder than normal');
  const barFlash = await style(`#bar [data-id="${ids.flash}"]`);
  const barBreaking = await style(`#bar [data-id="${ids.breaking}"]`);
  assert.notEqual(barFlash.bg, barBreaking.bg, 'flash background in the crawl');
  assert.equal((await page.textContent(`#list [data-id="${ids.urgent}"] .tk-badge`)).trim(), 'URGENTE');
  assert.equal(await count(page, `#list [data-id="${ids.breaking}"] .tk-badge`), 0);
  noPageErrors(page);
});

test('the crawl moves, and stands still with prefers-reduced-motion', async (t) => {
  await redis.xadd({ lang: 'en', region: 'europe', text: `Something to crawl ${tag()}` });
  const page = await openDemo(t, 'region=europe');
  await page.waitForSelector('#bar .tk-item', { state: 'attached' });
  assert.equal(await page.getAttribute('#bar', 'data-motion'), 'crawl');
  const x = () => page.$eval('#bar .tk-track', (e) => e.getBoundingClientRect().left);
  const x0 = await x();
  await H.sleep(300);
  assert.notEqual(await x(), x0, 'the crawl track moves');

  const still = await openDemo(t, 'region=europe', { reducedMotion: 'reduce' });
  await still.waitForSelector('#bar .tk-item', { state: 'attached' });
  assert.equal(await still.getAttribute('#bar', 'data-motion'), 'reduced');
  const running = await still.evaluate(() => document.getAnimations().filter((a) => a.playState === 'running').length);
  assert.equal(running, 0, 'no running animation');
  const y0 = await still.$eval('#bar .tk-track', (e) => e.getBoundingClientRect().left);
  await H.sleep(300);
  assert.equal(await still.$eval('#bar .tk-track', (e) => e.getBoundingClientRect().left), y0);
  noPageErrors(page);
  noPageErrors(still);
});

test('region and language selectors change the subscription', async (t) => {
  const page = await openDemo(t);
  await page.selectOption('#region', 'us-canada');
  await page.selectOption('#lang', 'es');
  await page.waitForFunction(() => /region=us-canada/.test(location.search) && /lang=es/.test(location.search));
  await page.waitForFunction(() => {
    const u = window.ticker.client.lastUrl || '';
    return /region=us-canada/.test(u) && /lang=es/.test(u) && window.ticker.client.status === 'connected';
  });
  await H.sleep(200);
  const en = await redis.xadd({ lang: 'en', region: 'us-canada', text: `English, not shown ${tag()}` });
  const other = await redis.xadd({ lang: 'es', region: 'europe', text: `Otra región ${tag()}` });
  const es = await redis.xadd({ lang: 'es', region: 'us-canada', text: `Noticia en español ${tag()}` });
  await page.waitForSelector(`#list [data-id="${es}"]`, { state: 'attached' });
  await H.sleep(200);
  assert.equal(await count(page, `[data-id="${en}"]`), 0);
  assert.equal(await count(page, `[data-id="${other}"]`), 0);
  for (const lang of await page.$$eval('#list .tk-item', (els) => els.map((e) => e.lang))) assert.equal(lang, 'es');
  noPageErrors(page);
});

test('falls back to Server-Sent Events when WebSocket keeps failing', async (t) => {
  let refused = 0;
  const page = await openDemo(t, 'region=palestine', {
    setup: (p) =>
      p.routeWebSocket(/\/v1\/ws/, (ws) => {
        refused++;
        ws.close({ code: 1011, reason: 'blocked by test' });
      }),
  });
  assert.equal(await page.getAttribute('#bar .tk-status', 'data-transport'), 'sse');
  assert.ok(refused >= 3, `WebSocket tried ${refused} times first`);
  const id = await redis.xadd({ lang: 'en', region: 'palestine', text: `Over SSE ${tag()}` });
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'attached', timeout: 1000 });
  await redis.xadd({ op: 'retract', ref: id });
  await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'detached', timeout: 1000 });
  noPageErrors(page);
});

test('after a daemon restart the page reconnects and shows each item exactly once', async (t) => {
  const page = await openDemo(t, 'region=palestine&replay=50');
  const a = await redis.xadd({ lang: 'en', region: 'palestine', text: `Before restart A ${tag()}` });
  const b = await redis.xadd({ lang: 'ar', region: 'palestine', text: `قبل إعادة التشغيل ب ${tag()}` });
  for (const id of [a, b]) await page.waitForSelector(`#list [data-id="${id}"]`, { state: 'attached' });

  const exit = await tickerd.stop();
  assert.deepEqual({ code: exit.code, killed: exit.killed }, { code: 0, killed: false }, `tickerd exit on SIGTERM: ${JSON.stringify(exit)}`);
  const status = page.locator('#bar .tk-status[data-state="reconnecting"]');
  await status.waitFor({ state: 'visible', timeout: 3000 });
  assert.match(await status.textContent(), /reconnecting/i);
  await page.screenshot({ path: shot('demo-reconnecting.png') });

  // While it is down: a new item, a correction of A and a retraction of B.
  const c = await redis.xadd({ lang: 'en', region: 'palestine', text: `While down C ${tag()}` });
  const fixed = `Before restart A, corrected ${tag()}`;
  await redis.xadd({ op: 'update', ref: a, text: fixed });
  await redis.xadd({ op: 'retract', ref: b });
  // More failed reconnects than fallbackAfter (3): the server is down, and
  // no other transport would help.
  await page.waitForFunction(() => window.ticker.log.drops.length >= 5, null, { timeout: 15000 });
  await tickerd.start();

  await page.waitForSelector('#bar .tk-status[data-state="connected"]', { timeout: 15000 });
  await page.waitForSelector(`#list [data-id="${c}"]`, { state: 'attached', timeout: 3000 });
  await page.waitForSelector(`#list [data-id="${b}"]`, { state: 'detached', timeout: 3000 });
  await page.waitForFunction(
    ([a, fixed]) => document.querySelector(`#list [data-id="${a}"] .tk-text`)?.textContent === fixed,
    [a, fixed],
    { timeout: 3000 },
  );
  const d = await redis.xadd({ lang: 'en', region: 'palestine', text: `After restart D ${tag()}` });
  await page.waitForSelector(`#list [data-id="${d}"]`, { state: 'attached', timeout: 1000 });
  await H.sleep(300);

  for (const id of [a, c, d]) await assertOnce(page, id);
  assert.equal(await count(page, `[data-id="${b}"]`), 0);
  const log = await page.evaluate(() => window.ticker.log);
  for (const id of [a, b, c, d]) assert.equal(log.items[id], 1, `one 'item' event for ${id}`);
  const drop = log.drops[0];
  assert.equal(drop.code, 1001, `close code on shutdown: ${JSON.stringify(log.drops)}`);
  const resumeUrl = log.urls[log.urls.length - 1];
  assert.match(resumeUrl, /[?&]since=\d+-\d+/, 'resumed with since');
  assert.match(resumeUrl, /[?&]epoch=/, 'resumed with epoch');
  const replay = log.replays[log.replays.length - 1];
  assert.equal(replay.gap, false);
  assert.equal(replay.count, 3, 'the item, update and retract made while down');
  const failed = log.drops.length - 1;
  t.diagnostic(`${failed} reconnects failed while tickerd was down`);
  assert.ok(failed >= 4, `reconnects failed while down: ${failed}`);
  assert.deepEqual(log.transports, [], 'a server that is down is no reason to change transport');
  assert.equal(await page.evaluate(() => window.ticker.client.transport), 'ws');
  noPageErrors(page);
});

test('a filter the server refuses stops the retries with a visible reason', async (t) => {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  await page.goto(`${tickerd.http}/?backoff=200&backoff_max=400&region=atlantis`);
  const status = page.locator('#bar .tk-status[data-state="failed"]');
  await status.waitFor({ state: 'visible', timeout: 10000 });
  const reason = await status.getAttribute('title');
  assert.match(reason || '', /atlantis|region/i, `reason shown: ${reason}`);
  const hellos = await page.evaluate(() => window.ticker.log.urls.length);
  assert.equal(hellos, 0);
});

// ---------------------------------------------------------------------------
// The TV overlay

/** The overlay, from the static server (http://) or, with `file`, from the
 * checkout (file://, as CasparCG loads templates); console errors are kept
 * in page.consoleErrors. */
async function openOverlay(t, query, { file = false } = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.errors = [];
  page.consoleErrors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') page.consoleErrors.push(`${m.text()} (${m.location().url})`);
  });
  const base = file ? `file://${path.join(H.REPO, 'clients', 'overlay', 'index.html')}` : `${statics.url}/overlay/index.html`;
  await page.goto(`${base}?server=${encodeURIComponent(tickerd.ws)}&backoff=300&${query}`);
  await page.waitForSelector('#stage[data-conn="connected"]', { state: 'attached', timeout: 10000 });
  await page.waitForFunction(() => window.tickerOverlay && window.tickerOverlay.client.epoch, null, { timeout: 5000 });
  return page;
}

const opacity = (page) => page.$eval('#lower-third', (e) => Number(getComputedStyle(e).opacity));

test('overlay: transparent 1920x1080 page; play() and stop() work', async (t) => {
  const page = await openOverlay(t, 'region=europe&autoplay=0&speed=200');
  for (const sel of ['html', 'body']) {
    assert.equal(await page.$eval(sel, (e) => getComputedStyle(e).backgroundColor), 'rgba(0, 0, 0, 0)', `${sel} background`);
  }
  assert.equal(await page.getAttribute('#stage', 'data-state'), 'stopped');
  assert.equal(await page.getAttribute('#stage', 'data-visible'), 'false');
  const id = await redis.xadd({ lang: 'en', region: 'europe', priority: 'flash', text: `Overlay headline ${tag()}` });
  await page.waitForSelector(`#crawl [data-id="${id}"]`, { state: 'attached', timeout: 1000 });
  assert.equal(await opacity(page), 0, 'nothing on air before play()');

  await page.evaluate(() => window.play());
  await page.waitForSelector('#stage[data-visible="true"]', { state: 'attached' });
  await page.waitForFunction(() => {
    const s = getComputedStyle(document.getElementById('lower-third'));
    return s.opacity === '1' && s.transform === 'none'; // slid in
  });
  const box = await page.locator('#lower-third').boundingBox();
  assert.ok(box.x >= 96 && box.x + box.width <= 1920 - 96 + 0.5, `inside title-safe width: ${JSON.stringify(box)}`);
  assert.ok(box.y + box.height <= 1080 - 54 + 0.5, `inside title-safe height: ${JSON.stringify(box)}`);
  const png = await page.screenshot({ path: shot('overlay.png'), omitBackground: true });
  const img = H.decodePng(png);
  assert.equal(img.width, 1920);
  assert.equal(img.pixel(20, 20)[3], 0, 'top-left corner is transparent');
  assert.equal(img.pixel(960, 400)[3], 0, 'middle of the frame is transparent');
  assert.equal(img.pixel(Math.round(box.x + 5), Math.round(box.y + box.height / 2))[3], 255, 'the bar is opaque');

  await page.evaluate(() => window.stop());
  await page.waitForSelector('#stage[data-visible="false"]', { state: 'attached' });
  await page.waitForFunction(() => getComputedStyle(document.getElementById('lower-third')).opacity === '0');
  assert.equal(await page.getAttribute('#stage', 'data-state'), 'stopped');

  // CasparCG template data, XML then JSON; next() steps the crawl.
  await page.evaluate(() =>
    window.update(
      '<templateData><componentData id="theme"><data id="text" value="dark"/></componentData>' +
        '<componentData id="label"><data id="text" value="LIVE"/></componentData></templateData>',
    ),
  );
  assert.equal(await page.getAttribute('#stage', 'data-theme'), 'dark');
  assert.equal((await page.textContent('#crawl .tk-label')).trim(), 'LIVE');
  await page.evaluate(() => window.update('{"theme":"light","speed":"300"}'));
  assert.equal(await page.getAttribute('#stage', 'data-theme'), 'light');
  await page.evaluate(() => {
    window.play();
    window.next();
  });
  assert.equal(await page.getAttribute('#stage', 'data-visible'), 'true');
  noPageErrors(page);
});

for (const from of ['file', 'http']) {
  test(`overlay: loads from ${from}:// with no console error, and items arrive`, async (t) => {
    const page = await openOverlay(t, 'region=us-canada&replay=0', { file: from === 'file' });
    const id = await redis.xadd({ lang: 'en', region: 'us-canada', text: `Overlay from ${from} ${tag()}` });
    await page.waitForSelector(`#crawl [data-id="${id}"]`, { state: 'attached', timeout: 2000 });
    await page.waitForSelector('#stage[data-visible="true"]', { state: 'attached', timeout: 2000 });
    await redis.xadd({ op: 'retract', ref: id });
    await page.waitForSelector(`#crawl [data-id="${id}"]`, { state: 'detached', timeout: 2000 });
    assert.deepEqual(page.consoleErrors, [], 'console errors');
    t.diagnostic(`role ${await page.evaluate(() => window.tickerOverlay.client.role)}, transport ${await page.evaluate(() => window.tickerOverlay.client.transport)}`);
    const client = await page.getAttribute('#stage', 'data-client');
    assert.match(client, from === 'file' ? /^file:\/\/.*\/clients\/web\/ticker\.global\.js$/ : /^http:\/\/.*\/web\/ticker\.global\.js$/);
    noPageErrors(page);
  });
}

test('overlay: a retracted or expired item leaves the screen', async (t) => {
  const page = await openOverlay(t, 'region=mena&lang=ar');
  assert.equal(await page.getAttribute('#stage', 'data-state'), 'playing', 'autoplay by default (OBS)');
  const keep = await redis.xadd({ lang: 'ar', region: 'mena', text: `خبر يبقى ${tag()}` });
  const gone = await redis.xadd({ lang: 'ar', region: 'mena', priority: 'urgent', text: `خبر سيُسحب ${tag()}` });
  const brief = await redis.xadd({ lang: 'ar', region: 'mena', ttl: 2, text: `خبر قصير ${tag()}` });
  for (const id of [keep, gone, brief]) await page.waitForSelector(`#crawl [data-id="${id}"]`, { state: 'attached', timeout: 1000 });
  assert.equal(await page.$eval(`#crawl [data-id="${keep}"]`, (e) => getComputedStyle(e).direction), 'rtl');
  assert.equal(await page.getAttribute('#crawl', 'data-direction'), 'rtl');
  await redis.xadd({ op: 'retract', ref: gone });
  await page.waitForSelector(`#crawl [data-id="${gone}"]`, { state: 'detached', timeout: 1000 });
  await page.waitForSelector(`#crawl [data-id="${brief}"]`, { state: 'detached', timeout: 4000 });
  assert.equal(await count(page, `#crawl [data-id="${keep}"]`), 1);
  await page.screenshot({ path: shot('overlay-ar.png'), omitBackground: true });
  noPageErrors(page);
});

test('overlay: goes off air while disconnected past stale_s, back after the resume', async (t) => {
  const page = await openOverlay(t, 'region=africa&stale_s=1');
  const id = await redis.xadd({ lang: 'en', region: 'africa', text: `On air ${tag()}` });
  await page.waitForSelector('#stage[data-visible="true"]', { state: 'attached', timeout: 2000 });
  await tickerd.stop();
  await page.waitForSelector('#stage[data-stale="true"][data-visible="false"]', { state: 'attached', timeout: 4000 });
  await redis.xadd({ op: 'retract', ref: id }); // made while the overlay cannot hear it
  const other = await redis.xadd({ lang: 'en', region: 'africa', text: `Still true ${tag()}` });
  await tickerd.start();
  await page.waitForSelector('#stage[data-stale="false"][data-visible="true"]', { state: 'attached', timeout: 15000 });
  assert.equal(await count(page, `#crawl [data-id="${id}"]`), 0, 'the retraction was applied before going back on air');
  assert.equal(await count(page, `#crawl [data-id="${other}"]`), 1);
  noPageErrors(page);
});

test(
  'overlay: loads ticker.js from the tickerd URL (cross-origin)',
  async (t) => {
    const ctx = await browser.newContext();
    t.after(() => ctx.close());
    const page = await ctx.newPage();
    await page.goto(`${statics.url}/overlay/README.md`);
    const ok = await page.evaluate((u) => import(u).then((m) => typeof m.TickerClient === 'function', () => false), `${tickerd.http}/ticker.js`);
    assert.ok(ok, 'import() of tickerd /ticker.js from another origin');
  },
);

// ---------------------------------------------------------------------------
// Token renewal (issue 12): getToken() and short-lived JWTs against a tickerd
// with [auth] jwt_secret, which closes a connection at its token's exp.

const JWT_SECRET = 'browser-tests-secret-0123456789abcdef';

/** A tickerd of its own with auth on (same Redis), stopped after the test. */
const authTickerd = (t) => ownTickerd(t, `[auth]\njwt_secret = ${JWT_SECRET}\n`);

/** An origin of its own on 127.0.0.1 that answers every GET with `html`. */
async function htmlServer(t, html) {
  const srv = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html));
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  return `http://127.0.0.1:${srv.address().port}`;
}

/** A page on `td`'s origin running a TickerClient with getToken() = the
 * test's `mint(info, n)` (n: 1 for the first call), counting the WebSocket
 * and EventSource objects it makes; window.tk = {client, log}. */
async function openTokenPage(t, td, mint, options = {}) {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  let calls = 0;
  await page.exposeFunction('mintToken', (info) => mint(info, ++calls));
  await page.addInitScript(() => {
    window.sockets = { ws: 0, es: 0 };
    const W = window.WebSocket;
    window.WebSocket = class extends W {
      constructor(...a) {
        super(...a);
        window.sockets.ws++;
      }
    };
    const E = window.EventSource;
    window.EventSource = class extends E {
      constructor(...a) {
        super(...a);
        window.sockets.es++;
      }
    };
  });
  const html = `<!doctype html><meta charset="utf-8"><title>tokens</title><script type="module">
    import { TickerClient } from '${td.http}/ticker.js';
    const log = { items: {}, tokens: [], errors: [], statuses: [], getToken: [] };
    const t0 = Date.now();
    const client = new TickerClient({
      server: '${td.http}',
      ...${JSON.stringify(options)},
      getToken: async (info) => {
        log.getToken.push([Date.now() - t0, info.reason]);
        return window.mintToken(info);
      },
    });
    client.addEventListener('item', (e) => { log.items[e.detail.item.id] = (log.items[e.detail.item.id] || 0) + 1; });
    client.addEventListener('token', (e) => log.tokens.push({ t: Date.now() - t0, ...e.detail }));
    client.addEventListener('error', (e) => log.errors.push({ t: Date.now() - t0, ...e.detail }));
    client.addEventListener('status', (e) => log.statuses.push({ t: Date.now() - t0, ...e.detail }));
    window.tk = { client, log };
    client.start();
  </script>`;
  // A page of its own, served from 127.0.0.1 (a page made up with page.route
  // counts as public, and Chromium's local network access checks would block
  // its WebSocket to 127.0.0.1); ticker.js comes from tickerd (CORS).
  await page.goto(`${await htmlServer(t, html)}/token-test.html`);
  try {
    await page.waitForFunction(() => window.tk && window.tk.client.status === 'connected', null, { timeout: 10000 });
  } catch (e) {
    const log = await page.evaluate(() => window.tk && window.tk.log).catch(() => null);
    throw new Error(
      `${e.message}\npage log: ${JSON.stringify(log)}\npage errors: ${JSON.stringify(page.errors)}\ntickerd log tail:\n${td.log().split('\n').slice(-10).join('\n')}`,
    );
  }
  return page;
}

const shortToken = (ttlS) => {
  const now = Math.floor(Date.now() / 1000);
  return H.signJwt({ iat: now, exp: now + ttlS, sub: 'browser-test' }, JWT_SECRET);
};

/** Publishes one item every `everyMs` for `forMs`; resolves to their IDs. */
async function publishFor(region, forMs, everyMs) {
  const ids = [];
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    ids.push(await redis.xadd({ lang: 'en', region, text: `Renewal run ${ids.length} ${tag()}` }));
    await H.sleep(everyMs);
  }
  return ids;
}

async function assertAllOnce(page, ids) {
  await page.waitForFunction((ids) => ids.every((id) => window.tk.log.items[id]), ids, { timeout: 3000 });
  const log = await page.evaluate(() => window.tk.log);
  for (const id of ids) assert.equal(log.items[id], 1, `one 'item' event for ${id}`);
  const held = await page.evaluate(() => window.tk.client.items.map((it) => it.id));
  for (const id of ids) assert.equal(held.filter((x) => x === id).length, 1, `${id} once in the state`);
}

test('getToken: 3 s tokens renewed over one WebSocket for 10 s, nothing lost', async (t) => {
  const td = await authTickerd(t);
  const page = await openTokenPage(t, td, () => shortToken(3), { region: 'europe', replay: 0, transport: 'ws', backoffInitialMs: 300 });
  const firstExp = await page.evaluate(() => window.tk.client.tokenExp);
  assert.ok(firstExp > Date.now() / 1000, 'the client read the exp of its token');
  const ids = await publishFor('europe', 10000, 400);
  await assertAllOnce(page, ids);

  const log = await page.evaluate(() => window.tk.log);
  const sockets = await page.evaluate(() => window.sockets);
  const m = await td.metrics();
  const renewed = log.tokens.filter((e) => e.status === 'renewed');
  t.diagnostic(`${ids.length} items, ${renewed.length} renewals at ${renewed.map((e) => e.t).join(', ')} ms, getToken ${log.getToken.length}x`);
  assert.equal(sockets.ws, 1, 'one WebSocket for the whole run');
  assert.equal(m.tickerd_connections_total, 1, 'the server accepted one connection');
  assert.equal(m['tickerd_connections{transport="websocket"}'], 1, 'and it is still open');
  assert.ok(renewed.length >= 2, `at least 2 renewals: ${JSON.stringify(log.tokens)}`);
  assert.ok(renewed.every((e) => e.via === 'auth' && e.transport === 'ws'));
  assert.equal(log.getToken.length, renewed.length + 1, 'getToken: once to connect, once a renewal');
  assert.deepEqual(log.getToken.slice(0, 2).map((g) => g[1]), ['connect', 'renew']);
  assert.deepEqual(log.errors, [], 'no error events');
  assert.deepEqual(log.statuses.map((s) => s.status), ['connecting', 'connected'], 'never dropped');
  assert.ok((await page.evaluate(() => window.tk.client.tokenExp)) >= firstExp + 5, 'the exp in force moved on');
  assert.doesNotMatch(td.log(), /token expired/i);
  noPageErrors(page);
});

test('getToken over SSE: a fresh stream (resuming with since) before each exp', async (t) => {
  const td = await authTickerd(t);
  const page = await openTokenPage(t, td, () => shortToken(3), { region: 'africa', replay: 0, transport: 'sse', backoffInitialMs: 300 });
  const ids = await publishFor('africa', 8000, 400);
  await assertAllOnce(page, ids);
  const log = await page.evaluate(() => window.tk.log);
  const sockets = await page.evaluate(() => window.sockets);
  const renewed = log.tokens.filter((e) => e.status === 'renewed');
  t.diagnostic(`${ids.length} items over ${sockets.es} streams; renewals at ${renewed.map((e) => e.t).join(', ')} ms`);
  assert.equal(sockets.ws, 0);
  assert.ok(renewed.length >= 2, `at least 2 renewals: ${JSON.stringify(log.tokens)}`);
  assert.ok(renewed.every((e) => e.via === 'reconnect' && e.transport === 'sse'));
  assert.equal(sockets.es, renewed.length + 1, 'one stream per token');
  assert.equal((await td.metrics()).tickerd_connections_total, sockets.es);
  assert.ok(!log.statuses.some((s) => s.status === 'reconnecting'), `no stream ended by the server: ${JSON.stringify(log.statuses)}`);
  assert.ok(!log.tokens.some((e) => e.status === 'expired'));
  assert.deepEqual(log.errors, []);
  assert.match(await page.evaluate(() => window.tk.client.lastUrl), /[?&]since=\d+-\d+/, 'the new streams resume with since');
  noPageErrors(page);
});

test('getToken failing: the page is told, and after the 1008 "token expired" the reconnects back off', async (t) => {
  const td = await authTickerd(t);
  let failing = true;
  const page = await openTokenPage(
    t,
    td,
    (info, n) => {
      if (n > 1 && failing) throw new Error('token service down');
      return shortToken(3);
    },
    { region: 'asia', replay: 0, transport: 'ws', backoffInitialMs: 500, backoffMaxMs: 4000, tokenRetryMs: 300 },
  );
  // The renewal fails: error events and a 'failed' token status before exp.
  await page.waitForFunction(() => window.tk.log.errors.some((e) => e.source === 'getToken'), null, { timeout: 4000 });
  await page.waitForFunction(() => window.tk.log.tokens.some((e) => e.status === 'failed'), null, { timeout: 4000 });
  // The server closes at exp.
  await page.waitForFunction(() => window.tk.log.statuses.some((s) => s.status === 'reconnecting'), null, { timeout: 4000 });
  const closedAt = Date.now();
  let log = await page.evaluate(() => window.tk.log);
  const drop = log.statuses.find((s) => s.status === 'reconnecting');
  assert.deepEqual([drop.code, drop.reason], [1008, 'token expired']);
  assert.ok(log.tokens.some((e) => e.status === 'expired'), 'a token event says expired');
  const err = log.errors.find((e) => e.source === 'getToken');
  assert.equal(err.code, 'token_unavailable');
  assert.match(err.message, /token service down/);
  const renewTries = log.getToken.filter((g) => g[1] === 'renew').length;
  assert.ok(renewTries >= 2 && renewTries <= 4, `renewal retried a few times: ${renewTries}`);

  const published = await redis.xadd({ lang: 'en', region: 'asia', text: `While the token service is down ${tag()}` });
  await H.sleep(8000);
  log = await page.evaluate(() => window.tk.log);
  const connects = log.getToken.filter((g) => g[1] === 'connect' && g[0] >= drop.t);
  const delays = log.statuses.filter((s) => s.status === 'reconnecting').map((s) => s.delayMs);
  t.diagnostic(`in 8 s after the close: ${connects.length} reconnect attempts, delays ${delays.join(', ')} ms`);
  assert.ok(connects.length >= 2 && connects.length <= 10, `bounded reconnect attempts: ${connects.length}`);
  const attempts = log.statuses.filter((s) => s.status === 'reconnecting').map((s) => s.attempt);
  assert.deepEqual(attempts, [...attempts].sort((a, b) => a - b), 'the backoff grows');
  assert.equal((await page.evaluate(() => window.sockets)).ws, 1, 'no connection tried without a token');
  assert.equal((await td.metrics()).tickerd_connections_total, 1);
  assert.equal(await page.evaluate(() => window.tk.client.status), 'reconnecting');

  // The token service is back: the client resumes and misses nothing.
  failing = false;
  await page.waitForFunction(() => window.tk.client.status === 'connected', null, { timeout: 6000 });
  t.diagnostic(`connected again ${Date.now() - closedAt} ms after the close`);
  await assertAllOnce(page, [published]);
  assert.match(await page.evaluate(() => window.tk.client.lastUrl), /[?&]since=\d+-\d+/);
  assert.equal((await page.evaluate(() => window.sockets)).ws, 2);
  noPageErrors(page);
});

test('getToken: a token the server refuses in an auth frame is retried, the old one holding', async (t) => {
  const td = await authTickerd(t);
  const page = await openTokenPage(
    t,
    td,
    (info, n) => {
      const now = Math.floor(Date.now() / 1000);
      // The second token does not allow the filter in force: `forbidden`, the first one stays.
      if (n === 2) return H.signJwt({ iat: now, exp: now + 60, regions: ['europe'] }, JWT_SECRET);
      return shortToken(4);
    },
    { region: 'us-canada', replay: 0, transport: 'ws', tokenRetryMs: 200 },
  );
  await page.waitForFunction(() => window.tk.log.tokens.some((e) => e.status === 'renewed'), null, { timeout: 6000 });
  const log = await page.evaluate(() => window.tk.log);
  const err = log.errors.find((e) => e.source === 'auth');
  assert.ok(err, `an error event for the refused auth: ${JSON.stringify(log.errors)}`);
  assert.equal(err.code, 'forbidden');
  assert.ok(log.tokens.some((e) => e.status === 'retrying' && e.code === 'forbidden'));
  assert.deepEqual(log.statuses.map((s) => s.status), ['connecting', 'connected'], 'never dropped');
  assert.equal(log.getToken.length, 3);
  const id = await redis.xadd({ lang: 'en', region: 'us-canada', text: `After a refused renewal ${tag()}` });
  await assertAllOnce(page, [id]);
  assert.equal((await page.evaluate(() => window.sockets)).ws, 1);
  noPageErrors(page);
});

// ---------------------------------------------------------------------------
// Transports (issue 13): WebSocket -> SSE -> long-poll, chosen by the client,
// through a proxy in front of tickerd that breaks them the way corporate
// proxies do (H.StreamProxy). The page comes through the proxy, so all its
// requests do.

/** A tickerd of its own (same Redis), stopped after the test. */
async function ownTickerd(t, extra = '') {
  const d = path.join(dir, `own-${++seq}`);
  fs.mkdirSync(d);
  const td = await new H.Tickerd(d, redis, extra).start();
  t.after(() => td.stop());
  return td;
}

async function streamProxy(t, td = tickerd) {
  const proxy = await new H.StreamProxy(td.http).start();
  t.after(() => proxy.close());
  return proxy;
}

/** Whether `td` serves GET /v1/poll (SPEC §3; being built on another branch). */
async function hasPoll(td = tickerd) {
  const r = await H.httpGet(`${td.http}/v1/poll?wait_s=1`).catch(() => ({ status: 0 }));
  return r.status !== 404 && r.status !== 0;
}
const NO_POLL = 'tickerd has no GET /v1/poll yet (404): the long-poll transport cannot be tried against it';

const transportLive = (page, kind, timeout = 20000) =>
  page.waitForSelector(`#conn[data-transport="${kind}"][data-live="true"]`, { state: 'attached', timeout });

/** Every id shown once on `page`: one 'item' event each, once in the list. */
async function assertEachOnce(page, ids, timeout = 5000) {
  await page.waitForFunction((ids) => ids.every((id) => window.ticker.log.items[id]), ids, { timeout }).catch(async (e) => {
    const log = await page.evaluate(() => window.ticker.log);
    throw new Error(`${e.message}\nmissing: ${ids.filter((id) => !log.items[id]).join(' ')}\nlog: ${JSON.stringify(log)}`);
  });
  const log = await page.evaluate(() => window.ticker.log);
  for (const id of ids) assert.equal(log.items[id], 1, `one 'item' event for ${id}`);
  for (const id of ids) assert.equal(await count(page, `#list [data-id="${id}"]`), 1, `${id} once in the list`);
}

test('transports: a proxy refuses WebSocket; the page goes on over SSE, and back to WebSocket once it passes', async (t) => {
  const proxy = await streamProxy(t);
  const page = await openDemo(t, 'region=europe&replay=0&step_up=2000', { base: proxy.url });
  await transportLive(page, 'ws');
  const ids = [await redis.xadd({ lang: 'en', region: 'europe', text: `Before the block ${tag()}` })];
  await assertEachOnce(page, ids);

  proxy.ws = 'refuse';
  proxy.cut(); // the proxy restarts with its new policy
  ids.push(await redis.xadd({ lang: 'en', region: 'europe', text: `While WebSocket is refused ${tag()}` }));
  await transportLive(page, 'sse');
  ids.push(await redis.xadd({ lang: 'en', region: 'europe', text: `Over SSE ${tag()}` }));
  await assertEachOnce(page, ids);
  assert.equal(await page.textContent('#transport'), 'Server-Sent Events');
  let log = await page.evaluate(() => window.ticker.log);
  assert.match(log.urls[log.urls.length - 1], /\/v1\/events\?.*since=\d+-\d+.*epoch=/, 'SSE resumed with since and epoch');
  // Reconnects carry since; the step-up probes (every 2 s from now) do not.
  const reconnects = proxy.counts.refusedUrls.filter((u) => /since=/.test(u));
  assert.equal(reconnects.length, 3, 'fallbackAfter (3) refused reconnects, the server answering HTTP, then SSE');

  await H.waitUntil(() => proxy.counts.refusedUrls.some((u) => !/since=/.test(u)), 10000, 'a probe of WebSocket, refused');
  ids.push(await redis.xadd({ lang: 'en', region: 'europe', text: `Still over SSE ${tag()}` }));
  await assertEachOnce(page, ids);
  assert.equal(await page.evaluate(() => window.ticker.client.transport), 'sse', 'a refused probe changes nothing');
  proxy.ws = 'pass';
  await transportLive(page, 'ws', 10000);
  ids.push(await redis.xadd({ lang: 'en', region: 'europe', text: `Back on WebSocket ${tag()}` }));
  await assertEachOnce(page, ids);

  log = await page.evaluate(() => window.ticker.log);
  t.diagnostic(`${reconnects.length} reconnects and ${proxy.counts.refused - reconnects.length} probes refused; switches ${JSON.stringify(log.transports)}`);
  assert.deepEqual(log.transports.map((s) => [s[1], s[2]]), [['ws', 'sse'], ['sse', 'ws']]);
  assert.match(log.urls[log.urls.length - 1], /\/v1\/ws\?.*since=\d+-\d+.*epoch=/, 'WebSocket resumed with since and epoch');
  const onSse = log.statuses.findIndex((s) => s[1] === 'connected' && s[2] === 'sse');
  assert.deepEqual(log.statuses.slice(onSse + 1).map((s) => s.slice(1, 3)), [['connected', 'ws']], 'switched up while connected');
  noPageErrors(page);
});

test('transports: a WebSocket that connects and delivers nothing gives way to SSE at once', async (t) => {
  const proxy = await streamProxy(t);
  proxy.ws = 'mute';
  const page = await openDemo(t, 'region=europe&replay=0&timeout=2000&step_up=600000', { base: proxy.url });
  await transportLive(page, 'sse');
  const id = await redis.xadd({ lang: 'en', region: 'europe', text: `After a silent WebSocket ${tag()}` });
  await assertEachOnce(page, [id]);
  const log = await page.evaluate(() => window.ticker.log);
  assert.equal(proxy.counts.upgrades, 1, 'one silent WebSocket was enough');
  assert.deepEqual(log.transports.map((s) => s.slice(1)), [['ws', 'sse', 'no answer']]);
  noPageErrors(page);
});

test('transports: WebSocket refused, then SSE held back by a buffering proxy: long-poll, and back up to WebSocket', async (t) => {
  if (!(await hasPoll())) return t.skip(NO_POLL);
  const proxy = await streamProxy(t);
  const page = await openDemo(t, 'region=africa&replay=0&timeout=3000&step_up=3000&poll_wait=10', { base: proxy.url });
  await transportLive(page, 'ws');
  const ids = [await redis.xadd({ lang: 'en', region: 'africa', text: `On WebSocket ${tag()}` })];
  await assertEachOnce(page, ids);

  proxy.ws = 'refuse';
  proxy.cut();
  ids.push(await redis.xadd({ lang: 'en', region: 'africa', text: `WebSocket refused ${tag()}` }));
  await transportLive(page, 'sse');
  ids.push(await redis.xadd({ lang: 'en', region: 'africa', text: `On SSE ${tag()}` }));
  await assertEachOnce(page, ids);

  proxy.buffer = true; // every response held until it ends: a stream never does
  proxy.cut();
  ids.push(await redis.xadd({ lang: 'en', region: 'africa', text: `SSE held back ${tag()}` }));
  await transportLive(page, 'poll');
  for (let i = 0; i < 3; i++) {
    ids.push(await redis.xadd({ lang: 'en', region: 'africa', text: `Long-polled ${i} ${tag()}` }));
    await H.sleep(300);
  }
  await assertEachOnce(page, ids);

  proxy.ws = 'pass';
  proxy.buffer = false;
  await transportLive(page, 'ws', 30000); // the next probe finds WebSocket through
  ids.push(await redis.xadd({ lang: 'en', region: 'africa', text: `Back on WebSocket ${tag()}` }));
  await assertEachOnce(page, ids);

  const log = await page.evaluate(() => window.ticker.log);
  t.diagnostic(`switches ${JSON.stringify(log.transports)}; polls ${proxy.counts.requests['/v1/poll']}`);
  assert.deepEqual(log.transports.map((s) => [s[1], s[2]]), [['ws', 'sse'], ['sse', 'poll'], ['poll', 'ws']]);
  assert.ok(log.urls.filter((u) => /\/v1\/poll\?/.test(u)).every((u) => /since=\d+-\d+/.test(u)), 'the polls resumed with since');
  noPageErrors(page);
});

test('getToken over long-poll: each renewed token goes with the next poll, nothing lost', async (t) => {
  const td = await authTickerd(t);
  if (!(await hasPoll(td))) return t.skip(NO_POLL);
  const page = await openTokenPage(t, td, () => shortToken(3), { region: 'asia', replay: 0, transport: 'poll', pollWaitS: 10 });
  const ids = await publishFor('asia', 8000, 400);
  await assertAllOnce(page, ids);
  const log = await page.evaluate(() => window.tk.log);
  const renewed = log.tokens.filter((e) => e.status === 'renewed');
  t.diagnostic(`${ids.length} items; renewals at ${renewed.map((e) => e.t).join(', ')} ms`);
  assert.ok(renewed.length >= 2, `at least 2 renewals: ${JSON.stringify(log.tokens)}`);
  assert.ok(renewed.every((e) => e.via === 'request' && e.transport === 'poll'));
  assert.deepEqual(log.statuses.map((s) => s.status), ['connecting', 'connected'], 'never dropped');
  assert.deepEqual(log.errors, []);
  assert.equal((await page.evaluate(() => window.sockets)).ws + (await page.evaluate(() => window.sockets)).es, 0);
  noPageErrors(page);
});

// ---------------------------------------------------------------------------
// One connection per browser (issue 13): tabs of one origin asking for the
// same server and filter share the connection of the tab holding a Web Lock.

const role = (page) => page.evaluate(() => window.ticker.client.role);

test('five tabs share one connection; the leader closes, another takes over, every tab gets every item once', async (t) => {
  const td = await ownTickerd(t);
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const q = 'region=mena&replay=0';
  const tabs = [];
  for (let i = 0; i < 5; i++) tabs.push(await openTab(ctx, q, { base: td.http, td }));
  const ids = [await redis.xadd({ lang: 'en', region: 'mena', text: `Five tabs ${tag()}` })];
  for (const p of tabs) await assertEachOnce(p, ids);

  let m = await td.metrics();
  t.diagnostic(`5 tabs -> ${H.connectionsNow(m)} connection(s) on the server`);
  assert.equal(H.connectionsNow(m), 1, 'one connection for the five tabs');
  assert.equal(m.tickerd_connections_total, 1, 'and no tab ever connected on its own');
  const roles = await Promise.all(tabs.map(role));
  assert.deepEqual([...roles].sort(), ['follower', 'follower', 'follower', 'follower', 'leader']);
  const leader = tabs[roles.indexOf('leader')];
  await leader.waitForFunction(() => window.ticker.client.peers === 5, null, { timeout: 5000 });
  assert.match(await leader.textContent('#share'), /shared with 4 other tabs/);
  for (const p of tabs) if (p !== leader) assert.equal(await p.textContent('#share'), 'the connection of another tab');

  // Items before, during and after the takeover.
  let publishing = true;
  const stream = (async () => {
    for (let i = 0; publishing; i++) {
      ids.push(await redis.xadd({ lang: 'en', region: 'mena', text: `Around the takeover ${i} ${tag()}` }));
      await H.sleep(40);
    }
  })();
  await H.sleep(300);
  const rest = tabs.filter((p) => p !== leader);
  const t0 = Date.now();
  await leader.close();
  const next = await H.waitUntil(
    async () => {
      for (const p of rest) if ((await role(p)) === 'leader' && (await p.evaluate(() => window.ticker.client.connections)) > 0) return p;
      return null;
    },
    10000,
    'a new leader, connected',
  );
  const takeoverMs = Date.now() - t0;
  await H.sleep(500);
  publishing = false;
  await stream;
  ids.push(await redis.xadd({ lang: 'en', region: 'mena', text: `After the takeover ${tag()}` }));
  for (const p of rest) await assertEachOnce(p, ids);

  await H.waitUntil(async () => H.connectionsNow(await td.metrics()) === 1, 5000, 'one connection again');
  m = await td.metrics();
  t.diagnostic(`takeover: the next tab connected ${takeoverMs} ms after the leader's tab closed; ${ids.length} items, each once in 4 tabs`);
  assert.ok(takeoverMs <= 2000, `taken over within 2 s: ${takeoverMs} ms`);
  assert.equal(m.tickerd_connections_total, 2, 'the old leader and the new one, no other');
  assert.match(await next.evaluate(() => window.ticker.client.lastUrl), /since=\d+-\d+.*epoch=/, 'the new leader resumed with since');
  assert.deepEqual((await Promise.all(rest.map(role))).filter((r) => r === 'leader').length, 1);
  for (const p of rest) {
    assert.equal(await p.evaluate(() => window.ticker.client.status), 'connected');
    noPageErrors(p);
  }
});

test('shared tabs through a daemon restart: the leader resumes, the others follow, each item once', async (t) => {
  const td = await ownTickerd(t);
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const tabs = [];
  for (let i = 0; i < 3; i++) tabs.push(await openTab(ctx, 'region=palestine&replay=0', { base: td.http, td }));
  const a = await redis.xadd({ lang: 'en', region: 'palestine', text: `Shared, before the restart ${tag()}` });
  for (const p of tabs) await assertEachOnce(p, [a]);
  await td.stop();
  for (const p of tabs) await p.waitForSelector('#bar .tk-status[data-state="reconnecting"]', { state: 'attached', timeout: 5000 });
  const b = await redis.xadd({ lang: 'en', region: 'palestine', text: `Shared, while down ${tag()}` });
  await redis.xadd({ op: 'retract', ref: a });
  await H.sleep(500);
  await td.start();
  const c = await redis.xadd({ lang: 'en', region: 'palestine', text: `Shared, after the restart ${tag()}` });
  for (const p of tabs) {
    await assertEachOnce(p, [b, c], 15000);
    await p.waitForSelector(`#list [data-id="${a}"]`, { state: 'detached', timeout: 3000 });
    assert.equal((await p.evaluate(() => window.ticker.log.items))[a], 1);
    assert.equal(await p.evaluate(() => window.ticker.client.status), 'connected');
    noPageErrors(p);
  }
  assert.equal(H.connectionsNow(await td.metrics()), 1, 'one connection after the restart too');
});

test('shared tabs over long-poll: the frames reach the other tabs, and a takeover resumes with since', async (t) => {
  const td = await ownTickerd(t);
  if (!(await hasPoll(td))) return t.skip(NO_POLL);
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const q = 'region=asia&replay=0&transport=poll&poll_wait=5';
  const tabs = [];
  for (let i = 0; i < 3; i++) tabs.push(await openTab(ctx, q, { base: td.http, td }));
  const ids = [await redis.xadd({ lang: 'en', region: 'asia', text: `Polled for three tabs ${tag()}` })];
  for (const p of tabs) await assertEachOnce(p, ids);
  const roles = await Promise.all(tabs.map(role));
  const leader = tabs[roles.indexOf('leader')];
  const rest = tabs.filter((p) => p !== leader);
  for (const p of rest) assert.equal(await p.evaluate(() => window.ticker.client.transport), 'poll');
  await leader.close();
  ids.push(await redis.xadd({ lang: 'en', region: 'asia', text: `Polled, leader gone ${tag()}` }));
  const next = await H.waitUntil(async () => {
    for (const p of rest) if ((await role(p)) === 'leader') return p;
    return null;
  }, 10000, 'a new leader');
  ids.push(await redis.xadd({ lang: 'en', region: 'asia', text: `Polled by the new leader ${tag()}` }));
  for (const p of rest) await assertEachOnce(p, ids);
  assert.match(await next.evaluate(() => window.ticker.client.lastUrl), /\/v1\/poll\?.*since=\d+-\d+.*epoch=/);
  for (const p of rest) noPageErrors(p);
});

test('tabs with another filter, or share=0, get connections of their own', async (t) => {
  const td = await ownTickerd(t);
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const a = await openTab(ctx, 'region=europe&lang=en,ar&replay=0', { base: td.http, td });
  const same = await openTab(ctx, 'lang=ar,en&region=europe&replay=0', { base: td.http, td }); // the same filter
  const other = await openTab(ctx, 'region=asia&replay=0', { base: td.http, td });
  const alone = await openTab(ctx, 'region=europe&lang=en,ar&replay=0&share=0', { base: td.http, td });
  assert.deepEqual(await Promise.all([a, same, other, alone].map(role)), ['leader', 'follower', 'leader', 'solo']);
  await H.waitUntil(async () => H.connectionsNow(await td.metrics()) === 3, 5000, '3 connections');
  assert.equal((await td.metrics()).tickerd_connections_total, 3);
  const eu = await redis.xadd({ lang: 'ar', region: 'europe', text: `أوروبا ${tag()}` });
  const as = await redis.xadd({ lang: 'en', region: 'asia', text: `Asia ${tag()}` });
  for (const p of [a, same, alone]) await assertEachOnce(p, [eu]);
  await assertEachOnce(other, [as]);
  assert.equal(await count(other, `[data-id="${eu}"]`), 0);
  assert.equal(await count(a, `[data-id="${as}"]`), 0);

  // A new filter in the follower: it leaves the group and leads one of its own.
  await same.selectOption('#region', 'asia');
  await same.waitForFunction(() => window.ticker.client.role !== 'solo' && /region=asia/.test(location.search));
  const as2 = await redis.xadd({ lang: 'ar', region: 'asia', text: `آسيا ${tag()}` });
  await assertEachOnce(same, [as2]);
  await assertEachOnce(other, [as2]);
  assert.equal(await count(a, `[data-id="${as2}"]`), 0);
});

// ---------------------------------------------------------------------------
// ticker.global.js: the same client as a classic script.

test('ticker.global.js defines window.Ticker with what ticker.js exports, and it works', async (t) => {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(`${await htmlServer(t, '<!doctype html><meta charset="utf-8"><title>classic</title>')}/classic.html`);
  const names = await page.evaluate(async (base) => {
    const mod = await import(`${base}/ticker.js`);
    await new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = `${base}/ticker.global.js`;
      s.onload = resolve;
      s.onerror = reject;
      document.head.append(s);
    });
    const differ = Object.keys(mod).filter((k) => typeof mod[k] !== typeof window.Ticker[k]);
    return { module: Object.keys(mod).sort(), global: Object.keys(window.Ticker).sort(), differ };
  }, tickerd.http);
  assert.deepEqual(names.global, names.module);
  assert.deepEqual(names.differ, []);
  const id = await redis.xadd({ lang: 'en', region: 'latin-america', text: `Classic script ${tag()}` });
  const got = await page.evaluate(
    ([id, server]) =>
      new Promise((resolve) => {
        const c = new window.Ticker.TickerClient({ server, region: 'latin-america', replay: 5, share: false });
        c.addEventListener('replay', () => {
          resolve({ has: !!c.get(id), transport: c.transport });
          c.close();
        });
        c.start();
      }),
    [id, tickerd.http],
  );
  assert.deepEqual(got, { has: true, transport: 'ws' });
  noPageErrors(page);
});

// Last: it recreates the stream.
test('a new epoch (stream recreated) resets the page to the replay', async (t) => {
  // Over WebSocket, and over long-poll when tickerd has it (the epoch sent
  // with since no longer matches: the answer says gap and holds the state).
  const kinds = (await hasPoll()) ? ['ws', 'poll'] : ['ws'];
  const pages = [];
  for (const k of kinds) pages.push(await openDemo(t, `region=us-canada&transport=${k}&poll_wait=5`));
  const old = await redis.xadd({ lang: 'en', region: 'us-canada', text: `From the old stream ${tag()}` });
  for (const page of pages) await page.waitForSelector(`#list [data-id="${old}"]`, { state: 'attached' });
  const epoch = await pages[0].evaluate(() => window.ticker.client.epoch);
  await tickerd.stop();
  await redis.cli('DEL', H.STREAM, `${H.STREAM}:epoch`);
  await tickerd.start();
  for (const [i, page] of pages.entries()) {
    await page.waitForSelector(`#list [data-id="${old}"]`, { state: 'detached', timeout: 15000 });
    const log = await page.evaluate(() => window.ticker.log);
    assert.equal(log.replays[log.replays.length - 1].gap, true, `the replay says gap (${kinds[i]})`);
    assert.notEqual(await page.evaluate(() => window.ticker.client.epoch), epoch);
    assert.equal(await page.evaluate(() => window.ticker.client.transport), kinds[i]);
  }
  const fresh = await redis.xadd({ lang: 'en', region: 'us-canada', text: `From the new stream ${tag()}` });
  for (const page of pages) {
    await page.waitForSelector(`#list [data-id="${fresh}"]`, { state: 'attached', timeout: 2000 });
    await assertOnce(page, fresh);
    noPageErrors(page);
  }
  if (kinds.length < 2) t.diagnostic(`long-poll part left out: ${NO_POLL}`);
});
