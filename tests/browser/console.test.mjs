// console.test.mjs - the editors' console (/console/, clients/console) in
// headless Chromium: node A (auth on) serves the console, node B (auth off,
// the same Redis) serves the demo page and the overlays, as a newsroom runs
// them. What needs POST /v1/items or GET /v1/items/<id>/screens skips, with
// the reason, on a tickerd that does not serve them yet. Screenshots go to
// /tmp/console/ (SHOTS_DIR). Run with tests/browser/run.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import * as H from './harness.mjs';

const SHOTS = process.env.SHOTS_DIR || '/tmp/console';
const SECRET = 'console-test-secret';
const GLOBAL_TIMEOUT_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 300000);
const watchdog = setTimeout(() => {
  console.error(`console browser tests: still running after ${GLOBAL_TIMEOUT_MS} ms, giving up`);
  process.exit(2); // the exit hook kills our redis-server and tickerds
}, GLOBAL_TIMEOUT_MS);
watchdog.unref();

let dir, redis, nodeA, nodeB, statics, browser, lists;
const token = (claims = {}) => H.signJwt({ sub: 'desk', publish: true, exp: Math.floor(Date.now() / 1000) + 3600, ...claims }, SECRET);

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  dir = H.tempDir();
  fs.mkdirSync(path.join(dir, 'a'));
  fs.mkdirSync(path.join(dir, 'b'));
  redis = await new H.Redis(dir).start();
  nodeA = await new H.Tickerd(path.join(dir, 'a'), redis, `[auth]\njwt_secret = ${SECRET}\n`).start();
  nodeB = await new H.Tickerd(path.join(dir, 'b'), redis).start();
  statics = await H.staticServer();
  browser = await chromium.launch({ executablePath: H.CHROMIUM, args: H.CHROMIUM_ARGS, timeout: 30000 });
  lists = JSON.parse((await H.httpGet(`${nodeA.http}/v1/lists`)).body);
});

after(async () => {
  if (browser) await Promise.race([browser.close(), H.sleep(5000)]);
  if (statics) statics.close();
  for (const n of [nodeA, nodeB]) if (n) await n.stop();
  if (redis) await redis.stop();
  if (dir && !process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
});

/** POST /v1/items of `body` to node A from here, not from a page (where a
 * refusal would be an error in the browser's console), on a connection of
 * its own that is closed after the answer: {status, body}. */
function postItem(body, tok) {
  const data = JSON.stringify(body);
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), Connection: 'close' };
  if (tok) headers.Authorization = `Bearer ${tok}`;
  return new Promise((resolve, reject) => {
    const req = http.request(`${nodeA.http}/v1/items`, { method: 'POST', agent: false, timeout: 5000, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer to POST /v1/items')));
    req.on('error', reject);
    req.end(data);
  });
}

/** Whether node A takes POST /v1/items (404/405: not built yet). Asked once. */
let served = null;
async function publishServed() {
  if (served) return served;
  const { status } = await postItem({});
  served = ![404, 405].includes(status) || `POST /v1/items answers ${status}: not served by this tickerd yet`;
  return served;
}

/** The console signed in from the URL fragment, its live view connected. */
async function openConsole(t, { viewport = { width: 1366, height: 768 }, tok = token() } = {}) {
  const ctx = await browser.newContext({ viewport });
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.errors = [];
  page.posts = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && page.errors.push(`console: ${m.text()}`));
  page.on('request', (r) => r.method() === 'POST' && page.posts.push({ url: r.url(), body: r.postData(), key: r.headers()['idempotency-key'] }));
  await page.goto(`${nodeA.http}/console/#token=${tok}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
  return page;
}

async function openDemo(t, query) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  await page.goto(`${nodeB.http}/?backoff=300&view=list&${query}`);
  await page.waitForSelector('#bar .tk-status[data-state="connected"]', { timeout: 10000 });
  return page;
}

/** What the daemon answers a POST of `body` (made from the page, with a token). */
const daemonSays = (page, body) =>
  page.evaluate(
    async ([b, tok]) => {
      const r = await fetch('/v1/items', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tok}` },
        body: JSON.stringify(b),
      });
      const j = await r.json().catch(() => ({}));
      return r.status === 201 ? [] : [j.error || `http_${r.status}`];
    },
    [body, token()],
  );

/** The value of a datetime-local input for epoch ms `at` (local time). */
const localTime = (at) => new Date(at - new Date(at).getTimezoneOffset() * 60e3).toISOString().slice(0, 19);

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

test('console: signs in from the fragment, builds its form from /v1/lists, shows the stream per language right to left for Arabic', async (t) => {
  const ids = {
    en: await redis.xadd({ lang: 'en', region: 'mena', priority: 'urgent', text: 'Console view: talks resume in Cairo' }),
    ar: await redis.xadd({ lang: 'ar', region: 'mena,palestine', text: 'مسيّرة إسرائيلية تستهدف سيارة في بلدة طول بقضاء النبطية' }),
    es: await redis.xadd({ lang: 'es', region: 'latin-america', text: 'Resultados de la liga' }),
  };
  const page = await openConsole(t);
  // keyboard: the first Tab is the skip link, which leads to the form
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'f-text', 'then the headline');
  assert.doesNotMatch(page.url(), /token/, 'the token is taken off the address');
  assert.equal(await page.getAttribute('#who', 'data-state'), 'in');
  assert.match(await page.textContent('#who'), /desk: may publish/);
  // the form is what the daemon lists, nothing written twice
  assert.deepEqual(await page.$$eval('#f-lang option', (o) => o.map((x) => x.value)), lists.languages);
  assert.deepEqual(await page.$$eval('#f-priority option', (o) => o.map((x) => x.value)), lists.priorities);
  assert.deepEqual(await page.$$eval('#f-category option', (o) => o.map((x) => x.value)), ['', ...lists.categories]);
  assert.deepEqual(await page.$$eval('#f-region input', (o) => o.map((x) => x.value)), lists.regions);
  assert.equal(await page.inputValue('#f-lang'), lists.default_lang);
  // one column a language, each item in its own; Arabic right to left
  for (const [lang, id] of Object.entries(ids)) {
    await page.waitForSelector(`.col[data-lang="${lang}"] li.entry[data-id="${id}"]`, { timeout: 5000 });
  }
  assert.equal(await page.getAttribute('.col[data-lang="ar"]', 'dir'), 'rtl');
  assert.equal(await page.getAttribute('.col[data-lang="en"]', 'dir'), 'ltr');
  assert.equal(await page.getAttribute(`.col[data-lang="ar"] [data-id="${ids.ar}"] .tk-item`, 'dir'), 'auto');
  assert.equal(await page.$eval(`.col[data-lang="ar"] [data-id="${ids.ar}"] .tk-text`, (e) => getComputedStyle(e).direction), 'rtl');
  // the input follows the language
  await page.selectOption('#f-lang', 'ar');
  await page.fill('#f-text', 'عاجل: اختبار');
  assert.equal(await page.getAttribute('#f-text', 'dir'), 'rtl');
  assert.equal(await page.getAttribute('#f-text', 'lang'), 'ar');
  assert.equal(await page.$eval('#f-text', (e) => getComputedStyle(e).direction), 'rtl');
  await page.selectOption('#f-lang', 'en');
  assert.equal(await page.getAttribute('#f-text', 'dir'), 'auto');
  // a retract asks once more, and Escape takes the question back (nothing sent)
  const retractBtn = `li.entry[data-id="${ids.es}"] button.retract`;
  await page.focus(retractBtn);
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute(retractBtn, 'data-armed'), 'true');
  assert.equal(await page.textContent(retractBtn), 'Confirm retract');
  await page.keyboard.press('Escape');
  assert.equal(await page.getAttribute(retractBtn, 'data-armed'), 'false');
  assert.deepEqual(page.posts, []);
  // the audience
  await page.waitForFunction(() => Number(document.getElementById('audience').dataset.connections) >= 1, null, { timeout: 8000 });
  // readable on 1366 px and on a phone: nothing wider than the screen
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no sideways scroll at 1366');
  await shot(page, 'console-1366.png');
  const phone = await openConsole(t, { viewport: { width: 390, height: 844 } });
  await phone.waitForSelector(`.col[data-lang="ar"] li.entry[data-id="${ids.ar}"]`, { timeout: 5000 });
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no sideways scroll on a phone');
  const w = await phone.$eval('#f-text', (e) => e.getBoundingClientRect().width);
  assert.ok(w > 300, `the headline box is ${w} px wide on a phone`);
  await shot(phone, 'console-phone.png');
  assert.deepEqual(page.errors, []);
  assert.deepEqual(phone.errors, []);
});

/** Whether anything in `sel` is wider than its box (a long word that does not wrap). */
const overflows = (page, sel) =>
  page.$$eval(sel, (els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.className));

test('console and demo: a headline of one long word wraps inside its column', async (t) => {
  const id = await redis.xadd({ lang: 'ar', region: 'asia-pacific', text: 'ب'.repeat(500) });
  const url = await redis.xadd({ lang: 'en', region: 'asia-pacific', text: `See https://example.org/${'x'.repeat(300)}` });
  const page = await openConsole(t);
  await page.waitForSelector(`li.entry[data-id="${id}"]`);
  await page.waitForSelector(`li.entry[data-id="${url}"]`);
  assert.deepEqual(await overflows(page, '.col, .col li.entry, .col .tk-item'), [], 'console columns');
  const demo = await openDemo(t, 'region=asia-pacific');
  await demo.waitForSelector(`#list [data-id="${id}"]`);
  assert.deepEqual(await overflows(demo, '#list, #list .tk-item'), [], 'demo list');
});

test('console: a token the daemon refuses is shown, and nothing is signed in', async (t) => {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  await page.goto(`${nodeA.http}/console/#token=${H.signJwt({ publish: true }, 'another-secret')}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  assert.equal(await page.getAttribute('#who', 'data-state'), 'bad');
  assert.match(await page.textContent('#who'), /refused this token \(401/);
  // a pasted one works
  await page.fill('#token', token());
  await page.press('#token', 'Enter');
  await page.waitForSelector('#who[data-state="in"]', { timeout: 5000 });
  assert.equal(await page.inputValue('#token'), '', 'the pasted token leaves the input');
});

test('console: a token that runs out while the console is open says so', async (t) => {
  const page = await openConsole(t, { tok: token({ exp: Math.floor(Date.now() / 1000) + 3 }) });
  await page.waitForSelector('#who[data-state="bad"]', { timeout: 8000 });
  assert.match(await page.textContent('#who'), /token expired/);
});

/** Runs the console's own checks in the page (validate.js), for the edges. */
const check = (page, body, op = 'publish') =>
  page.evaluate(
    async ([b, o, l]) => (await import('/console/validate.js')).checkItem(l, b, { op: o }).map((e) => e.reason),
    [body, op, lists],
  );

test('console: a field the daemon would reject shows its error and sends nothing', async (t) => {
  const page = await openConsole(t);
  const max = lists.limits.max_text_bytes;
  // over the limit by one byte, in a two-byte script: 501 Arabic letters = 1002 bytes
  await page.selectOption('#f-lang', 'ar');
  await page.fill('#f-text', 'ب'.repeat(max / 2 + 1));
  await page.fill('#f-ttl', '0');
  await page.fill('#f-url', 'ftp://example.org/x');
  await page.fill('#f-source', 's'.repeat(lists.limits.max_source_bytes + 1));
  await page.fill('#f-publish-at', localTime(Date.now() - 3600e3));
  await page.click('#submit');
  await page.waitForSelector('#err-text[data-reason="text_too_long"]');
  assert.match(await page.textContent('#err-text'), new RegExp(`text is ${max + 2} bytes, over ${max}`));
  assert.equal(await page.getAttribute('#err-ttl', 'data-reason'), 'bad_ttl');
  assert.equal(await page.getAttribute('#err-url', 'data-reason'), 'bad_url');
  assert.equal(await page.getAttribute('#err-source', 'data-reason'), 'bad_source');
  assert.equal(await page.getAttribute('#err-publish_at', 'data-reason'), 'bad_publish_at');
  assert.equal(await page.getAttribute('#f-text', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'f-text', 'the first bad field has the focus');
  assert.equal(await page.getAttribute('#text-count', 'data-over'), 'true');
  await shot(page, 'console-errors.png');
  // Ctrl+Enter sends the same: still refused
  await page.press('#f-text', 'Control+Enter');
  await H.sleep(300);
  assert.deepEqual(page.posts, [], 'nothing was sent');

  // every limit at its edge: one under, at, one over
  const L = lists.limits;
  const ok = { text: 'x', lang: 'en' };
  assert.deepEqual(await check(page, { ...ok, text: 'a'.repeat(max - 1) }), []);
  assert.deepEqual(await check(page, { ...ok, text: 'a'.repeat(max) }), []);
  assert.deepEqual(await check(page, { ...ok, text: `  ${'a'.repeat(max)}\n` }), [], 'trimmed as the daemon trims');
  assert.deepEqual(await check(page, { ...ok, text: 'a'.repeat(max + 1) }), ['text_too_long']);
  assert.deepEqual(await check(page, { ...ok, text: 'ب'.repeat(max / 2) }), []);
  assert.deepEqual(await check(page, { ...ok, text: `a${'ب'.repeat(max / 2)}` }), ['text_too_long']);
  assert.deepEqual(await check(page, { ...ok, text: '   ' }), ['missing_text']);
  assert.deepEqual(await check(page, { ...ok, text: 'bell \u0007' }), ['bad_utf8']);
  assert.deepEqual(await check(page, { ...ok, text: 'lone \ud800 half' }), ['bad_utf8']);
  assert.deepEqual(await check(page, { ...ok, text: 'tab\tand\nnewline' }), []);
  for (const [ttl, want] of [[1, []], [L.max_ttl_s - 1, []], [L.max_ttl_s, []], [L.max_ttl_s + 1, ['bad_ttl']], [0, ['bad_ttl']], ['1.5', ['bad_ttl']]]) {
    assert.deepEqual(await check(page, { ...ok, ttl }), want, `ttl ${ttl}`);
  }
  const url = (n) => `https://x.org/${'a'.repeat(n - 14)}`;
  assert.deepEqual(await check(page, { ...ok, url: url(L.max_url_bytes - 1) }), []);
  assert.deepEqual(await check(page, { ...ok, url: url(L.max_url_bytes) }), []);
  assert.deepEqual(await check(page, { ...ok, url: url(L.max_url_bytes + 1) }), ['bad_url']);
  for (const bad of ['https:///path', 'http://?q', 'https://a b', 'javascript:alert(1)', 'example.org'])
    assert.deepEqual(await check(page, { ...ok, url: bad }), ['bad_url'], bad);
  const S = L.max_source_bytes;
  assert.deepEqual(await check(page, { ...ok, source: 's'.repeat(S - 1) }), []);
  assert.deepEqual(await check(page, { ...ok, source: 's'.repeat(S) }), []);
  assert.deepEqual(await check(page, { ...ok, source: 's'.repeat(S + 1) }), ['bad_source']);
  assert.deepEqual(await check(page, { ...ok, lang: 'xx' }), ['bad_lang']);
  assert.deepEqual(await check(page, { ...ok, region: ['mena', 'atlantis'] }), ['bad_region']);
  assert.deepEqual(await check(page, { ...ok, region: 'mena,' }), ['bad_region']);
  assert.deepEqual(await check(page, { ...ok, region: [] }), [], 'no region: global');
  assert.deepEqual(await check(page, { ...ok, priority: 'extreme' }), ['bad_priority']);
  assert.deepEqual(await check(page, { ...ok, category: 'gossip' }), ['bad_category']);
  const now = Date.now();
  for (const [at, want] of [
    [now - 59e3, []], [now - 61e3, ['bad_publish_at']], [now + 7 * 86400e3 - 5e3, []],
    [now + 7 * 86400e3 + 5e3, ['bad_publish_at']], ['2026-13-01T00:00:00Z', ['bad_publish_at']], ['tomorrow', ['bad_publish_at']],
  ]) {
    const v = typeof at === 'number' ? new Date(at).toISOString() : at;
    assert.deepEqual(await check(page, { ...ok, publish_at: v }), want, `publish_at ${v}`);
  }
  assert.deepEqual(await check(page, { op: 'update', ref: '1-0', pin: false }, 'update'), [], 'an update of pin alone needs no text');
  assert.deepEqual(await check(page, { op: 'update', ref: '1-0', priority: 'urgent' }, 'update'), ['missing_text']);
  assert.deepEqual(await check(page, { op: 'retract', ref: 'abc' }, 'retract'), ['bad_ref']);
  // the retract-by-ID form: a malformed ID is refused where it was typed
  for (const bad of ['1764692400000', '1764692400000-', 'abc-0', '']) {
    await page.fill('#r-ref', bad);
    await page.press('#r-ref', 'Enter');
    await page.waitForSelector('#err-r-ref[data-reason="bad_ref"]');
  }
  assert.equal(await page.getAttribute('#r-ref', 'aria-invalid'), '');
  assert.deepEqual(page.posts, [], 'still nothing sent');

  // at the edge the form lets it go (1000 bytes exactly): one request
  await page.fill('#f-text', 'ب'.repeat(max / 2));
  await page.check('#f-region input[value="palestine"]');
  for (const f of ['#f-ttl', '#f-url', '#f-source', '#f-publish-at']) await page.fill(f, '');
  await page.click('#submit');
  await H.waitUntil(() => page.posts.length === 1, 5000, 'the POST of a valid headline');
  assert.equal(JSON.parse(page.posts[0].body).text.length, max / 2);
  assert.ok(page.posts[0].key && page.posts[0].key.length >= 16, 'it carries an Idempotency-Key');
  assert.deepEqual(page.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});

test('console: a headline published from the console appears on the demo page, once; corrected, pinned', async (t) => {
  const served = await publishServed();
  if (served !== true) return t.skip(served);
  const demo = await openDemo(t, 'region=asia');
  const page = await openConsole(t);
  const before = Number(await redis.cli('XLEN', H.STREAM));
  const text = `Console publish ${process.pid}: quake off the coast`;
  await page.fill('#f-text', text);
  await page.check('#f-region input[value="asia"]');
  await page.selectOption('#f-priority', 'urgent');
  await page.dblclick('#submit'); // a double click publishes once
  await page.waitForSelector('#form-status[data-state="ok"]', { timeout: 5000 });
  const id = (await page.textContent('#form-status')).match(/\d+-\d+/)[0];
  await demo.waitForSelector(`#list [data-id="${id}"]`, { timeout: 5000 });
  assert.match(await demo.textContent(`#list [data-id="${id}"]`), /quake off the coast/);
  assert.equal(Number(await redis.cli('XLEN', H.STREAM)), before + 1, 'one entry for a double click');
  assert.equal(page.posts.length, 1, 'one request for a double click');
  // two submits in the same turn (a double Enter, a script): the second joins the first
  const text2 = `Console publish ${process.pid}: second story`;
  await page.fill('#f-text', text2);
  await page.check('#f-region input[value="asia"]');
  await page.evaluate(() => {
    const f = document.getElementById('item-form');
    f.requestSubmit();
    f.requestSubmit();
  });
  await page.waitForSelector('#form-status[data-state="ok"]', { timeout: 5000 });
  await H.waitUntil(async () => (await demo.textContent('#list')).includes('second story'), 5000, 'the second story on the demo');
  assert.equal(Number(await redis.cli('XLEN', H.STREAM)), before + 2, 'one entry for two submits');
  assert.equal(page.posts.length, 2, 'one request for two submits');
  assert.notEqual(page.posts[0].key, page.posts[1].key, 'a new story, a new Idempotency-Key');
  await page.waitForSelector(`.col[data-lang="en"] li.entry[data-id="${id}"]`);
  // correct it
  await page.click(`li.entry[data-id="${id}"] button.edit`);
  assert.equal(await page.getAttribute('#item-form', 'data-mode'), 'update');
  await page.fill('#f-text', `${text} (magnitude 6.1)`);
  await page.click('#submit');
  await demo.waitForFunction((i) => /magnitude 6\.1/.test(document.querySelector(`#list [data-id="${i}"]`)?.textContent || ''), id, { timeout: 5000 });
  // pin it: first on the demo, marked
  const other = await redis.xadd({ lang: 'en', region: 'asia', text: 'A later headline' });
  await demo.waitForSelector(`#list [data-id="${other}"]`);
  await page.waitForSelector(`li.entry[data-id="${id}"] button.pin-toggle`);
  await page.click(`li.entry[data-id="${id}"] button.pin-toggle`);
  await demo.waitForSelector(`#list .tk-item:first-child[data-id="${id}"][data-pinned="true"]`, { timeout: 5000 });
  await shot(page, 'console-published.png');
  await shot(demo, 'console-demo.png');
  assert.deepEqual(page.errors, []);
});

test('console: the second click of a double click, landing after the answer, leaves "Published" on the form', async (t) => {
  // On a busy machine (or a quick daemon) the answer to the first click comes
  // before the second click: that click must not submit the emptied form.
  const served = await publishServed();
  if (served !== true) return t.skip(served);
  const page = await openConsole(t);
  const before = Number(await redis.cli('XLEN', H.STREAM));
  await page.fill('#f-text', `Console double click ${process.pid}: late second click`);
  await page.check('#f-region input[value="europe"]');
  const box = await page.locator('#submit').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down({ clickCount: 1 });
  await page.mouse.up({ clickCount: 1 });
  await page.waitForSelector('#form-status[data-state="ok"]', { timeout: 5000 });
  await page.mouse.down({ clickCount: 2 }); // the same double click's second press
  await page.mouse.up({ clickCount: 2 });
  await page.evaluate(() => new Promise((r) => setTimeout(r, 200)));
  assert.equal(await page.getAttribute('#form-status', 'data-state'), 'ok', await page.textContent('#form-status'));
  assert.equal(await page.textContent('#err-text'), '', 'no error on the emptied form');
  assert.equal(page.posts.length, 1);
  assert.equal(Number(await redis.cli('XLEN', H.STREAM)), before + 1);
  // a new single click on the emptied form still says what is missing
  await page.click('#submit');
  await page.waitForSelector('#err-text[data-reason]');
  assert.equal(page.posts.length, 1);
});

test('console: an answer lost on the way back, then Publish again: the same Idempotency-Key, one entry', async (t) => {
  const served = await publishServed();
  if (served !== true) return t.skip(served);
  const page = await openConsole(t);
  let lose = true;
  await page.route('**/v1/items', async (route) => {
    if (route.request().method() !== 'POST' || !lose) return route.continue();
    lose = false;
    await route.fetch(); // it reaches the daemon, which publishes it
    await route.abort('connectionreset'); // and its answer is lost
  });
  const before = Number(await redis.cli('XLEN', H.STREAM));
  await page.fill('#f-text', `Console retry ${process.pid}: port reopens`);
  await page.check('#f-region input[value="latin-america"]');
  await page.click('#submit');
  await page.waitForSelector('#form-status[data-reason="network"]', { timeout: 5000 });
  assert.match(await page.textContent('#form-status'), /send again, it cannot publish twice/);
  assert.equal(Number(await redis.cli('XLEN', H.STREAM)), before + 1, 'the lost one was published');
  await page.click('#submit');
  await page.waitForSelector('#form-status[data-state="ok"]', { timeout: 5000 });
  const id = (await page.textContent('#form-status')).match(/\d+-\d+/)[0];
  assert.equal(Number(await redis.cli('XLEN', H.STREAM)), before + 1, 'sent again: nothing added');
  assert.equal(page.posts.length, 2);
  assert.equal(page.posts[0].key, page.posts[1].key, 'the same key both times');
  await page.waitForSelector(`li.entry[data-id="${id}"]`, { timeout: 5000 });
  assert.equal(await page.locator('li.entry', { hasText: 'port reopens' }).count(), 1, 'once in the live view');
});

test('console: validate.js and the daemon give the same reason for every edge', async (t) => {
  const served = await publishServed();
  if (served !== true) return t.skip(served);
  const page = await openConsole(t);
  const L = lists.limits;
  const max = L.max_text_bytes;
  const ok = { text: 'agreement', lang: 'en', region: ['latin-america'] };
  const url = (n) => `https://x.org/${'a'.repeat(n - 14)}`;
  const cases = [
    ok,
    { ...ok, text: 'a'.repeat(max) }, { ...ok, text: 'a'.repeat(max + 1) },
    { ...ok, text: 'ب'.repeat(max / 2) }, { ...ok, text: `a${'ب'.repeat(max / 2)}` },
    { ...ok, text: `  ${'a'.repeat(max)}\n` }, { ...ok, text: '  ' }, { ...ok, text: 'bell \u0007' },
    { ...ok, lang: 'xx' }, { ...ok, region: ['latin-america', 'atlantis'] }, { ...ok, region: [] },
    { ...ok, priority: 'flash' }, { ...ok, priority: 'extreme' }, { ...ok, category: 'sports' }, { ...ok, category: 'gossip' },
    { ...ok, url: url(L.max_url_bytes) }, { ...ok, url: url(L.max_url_bytes + 1) }, { ...ok, url: 'https:///x' }, { ...ok, url: 'ftp://x.org' },
    { ...ok, source: 's'.repeat(L.max_source_bytes) }, { ...ok, source: 's'.repeat(L.max_source_bytes + 1) },
    { ...ok, ttl: 1 }, { ...ok, ttl: L.max_ttl_s }, { ...ok, ttl: L.max_ttl_s + 1 }, { ...ok, ttl: 0 }, { ...ok, ttl: '1.5' },
    { ...ok, pin: true }, { ...ok, pin: 'yes' },
    { op: 'update', ref: 'abc', text: 'x' }, { op: 'retract', ref: '12-' },
  ];
  for (const body of cases) {
    const op = body.op || 'publish';
    const mine = await check(page, body, op);
    const theirs = await daemonSays(page, body);
    assert.deepEqual(mine, theirs, `${JSON.stringify(body).slice(0, 120)}: console ${mine}, daemon ${theirs}`);
  }
});

test('console: an embargoed headline waits under Embargoed and goes live on the demo at its time', async (t) => {
  const served = await publishServed();
  if (served !== true) return t.skip(served);
  const demo = await openDemo(t, 'region=europe');
  const page = await openConsole(t);
  // the daemon's own check of publish_at tells whether it knows embargoes
  const probe = await postItem({ text: 'probe', publish_at: '2000-01-01T00:00:00Z' }, token());
  if (!/bad_publish_at/.test(probe.body)) return t.skip(`publish_at is not checked by this tickerd yet (${probe.status})`);
  const at = Math.ceil((Date.now() + 4000) / 1000) * 1000;
  await page.fill('#f-text', `Embargoed ${process.pid}: results at the hour`);
  await page.check('#f-region input[value="europe"]');
  await page.fill('#f-publish-at', localTime(at));
  assert.match(await page.textContent('#publish-at-utc'), new RegExp(new Date(at).toISOString().slice(11, 19)));
  await page.click('#submit');
  await page.waitForSelector('#form-status[data-state="ok"]', { timeout: 5000 });
  const id = (await page.textContent('#form-status')).match(/\d+-\d+/)[0];
  await page.waitForSelector(`#scheduled li[data-id="${id}"]`);
  assert.equal(await demo.locator(`[data-id="${id}"]`).count(), 0, 'not on the demo before its time');
  await demo.waitForSelector(`#list [data-id="${id}"]`, { timeout: 10000 });
  assert.ok(Date.now() >= at - 100, 'not before publish_at');
  await page.waitForSelector(`#scheduled li[data-id="${id}"]`, { state: 'detached', timeout: 5000 });
  await page.waitForSelector(`.col[data-lang="en"] li.entry[data-id="${id}"]`);
  assert.deepEqual(page.errors, []);
});

test('console: a retract from the console takes the headline off the screens and shows their acks', async (t) => {
  const served = await publishServed();
  if (served !== true) return t.skip(served);
  // a malformed ID is a 400 where the endpoint is served, a missing file (404) where not
  const r = await H.httpGet(`${nodeA.http}/v1/items/-/screens`);
  if (r.status === 404 || r.status === 405) return t.skip(`GET /v1/items/<id>/screens answers ${r.status}: not served by this tickerd yet`);
  const region = 'us-canada';
  const id = await redis.xadd({ lang: 'en', region, text: 'Console retract: wrong result called' });
  const screens = [];
  for (const label of ['studio-a-overlay', 'studio-b-overlay']) {
    const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
    t.after(() => ctx.close());
    const p = await ctx.newPage();
    await p.goto(`${statics.url}/overlay/index.html?server=${encodeURIComponent(nodeB.ws)}&region=${region}&screen=${label}&share=0&backoff=300`);
    await p.waitForSelector(`#crawl [data-id="${id}"]`, { state: 'attached', timeout: 10000 });
    screens.push(p);
  }
  const page = await openConsole(t);
  await page.waitForSelector(`li.entry[data-id="${id}"]`);
  await page.focus(`li.entry[data-id="${id}"] button.retract`);
  await page.keyboard.press('Enter'); // arms
  assert.equal(await page.getAttribute(`li.entry[data-id="${id}"] button.retract`, 'data-armed'), 'true');
  await page.keyboard.press('Enter'); // sends
  for (const p of screens) await p.waitForSelector(`#crawl [data-id="${id}"]`, { state: 'detached', timeout: 5000 });
  await page.waitForSelector(`#kills li[data-ref="${id}"][data-done="true"]`, { timeout: 15000 });
  const acked = await page.$$eval(`#kills li[data-ref="${id}"] li[data-acked="true"]`, (l) => l.map((e) => e.dataset.client).sort());
  assert.deepEqual(acked, ['studio-a-overlay', 'studio-b-overlay']);
  assert.equal(await page.getAttribute(`#kills li[data-ref="${id}"]`, 'data-sent'), '2');
  await page.waitForSelector(`li.entry[data-id="${id}"]`, { state: 'detached' });
  await shot(page, 'console-retract.png');
  assert.deepEqual(page.errors, []);
});
