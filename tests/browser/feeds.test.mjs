// feeds.test.mjs - /v1/feed.rss and /v1/feed.json as Chromium reads them:
// fetched from a page of tickerd's own origin and from another origin
// (CORS), RSS through DOMParser('application/xml') with no parsererror,
// JSON Feed through JSON.parse; Arabic items carry lang and dir, and their
// HTML renders right to left. Run with tests/browser/run.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import * as H from './harness.mjs';

const GLOBAL_TIMEOUT_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 300000);
const watchdog = setTimeout(() => {
  console.error(`feeds browser tests: still running after ${GLOBAL_TIMEOUT_MS} ms, giving up`);
  process.exit(2); // the exit hook kills our redis-server and tickerd
}, GLOBAL_TIMEOUT_MS);
watchdog.unref();

let dir, redis, tickerd, statics, browser;
const ids = {};

before(async () => {
  dir = H.tempDir();
  redis = await new H.Redis(dir).start();
  tickerd = await new H.Tickerd(dir, redis).start();
  statics = await H.staticServer();
  browser = await chromium.launch({ executablePath: H.CHROMIUM, args: H.CHROMIUM_ARGS, timeout: 30000 });
  ids.en = await redis.xadd({
    lang: 'en', region: 'mena', priority: 'urgent', category: 'politics',
    text: 'Talks <resume> in Cairo & Doha ]]> "today"', url: 'https://news.example/a?b=1&c=2',
    source: 'Reuters',
  });
  ids.ar = await redis.xadd({
    lang: 'ar', region: 'mena,palestine', priority: 'flash',
    text: 'مسيّرة إسرائيلية تستهدف سيارة في بلدة طول بقضاء النبطية', source: 'مراسل الميادين',
  });
  ids.es = await redis.xadd({ lang: 'es', region: 'latin-america', text: 'Resultados de la liga' });
  await H.waitUntil(
    async () => JSON.parse((await H.httpGet(`${tickerd.http}/healthz`)).body).last_id === ids.es,
    5000,
    'tickerd to read the items',
  );
});

after(async () => {
  if (browser) await Promise.race([browser.close(), H.sleep(5000)]);
  if (statics) statics.close();
  if (tickerd) await tickerd.stop();
  if (redis) await redis.stop();
  if (dir && !process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
});

async function pageAt(t, url) {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(url);
  return page;
}

/** Fetches and reads both feeds inside the page. */
function readFeeds(page, base, query = '') {
  return page.evaluate(
    async ({ base, query }) => {
      const XML_NS = 'http://www.w3.org/XML/1998/namespace';
      const dirOf = (html) => {
        const div = document.createElement('div');
        div.innerHTML = html;
        document.body.appendChild(div);
        const p = div.firstElementChild;
        const out = { direction: getComputedStyle(p).direction, lang: p.lang, text: p.textContent };
        div.remove();
        return out;
      };
      const out = {};
      const r = await fetch(`${base}/v1/feed.rss${query}`);
      out.rssStatus = r.status;
      out.rssType = r.headers.get('content-type');
      const xml = new DOMParser().parseFromString(await r.text(), 'application/xml');
      out.rssErrors = xml.getElementsByTagName('parsererror').length;
      const channel = xml.querySelector('rss > channel');
      out.channelLang = channel.getAttributeNS(XML_NS, 'lang');
      out.language = channel.querySelector(':scope > language')?.textContent ?? null;
      out.rss = [...channel.querySelectorAll(':scope > item')].map((it) => ({
        guid: it.querySelector('guid').textContent,
        permalink: it.querySelector('guid').getAttribute('isPermaLink'),
        title: it.querySelector('title').textContent,
        link: it.querySelector('link')?.textContent ?? null,
        pubDate: it.querySelector('pubDate').textContent,
        lang: it.getAttributeNS(XML_NS, 'lang'),
        html: dirOf(it.querySelector('description').textContent),
      }));
      const j = await fetch(`${base}/v1/feed.json${query}`);
      out.jsonStatus = j.status;
      out.jsonType = j.headers.get('content-type');
      const feed = JSON.parse(await j.text());
      out.version = feed.version;
      out.jsonLanguage = feed.language ?? null;
      out.json = feed.items.map((it) => ({
        id: it.id,
        text: it.content_text,
        url: it.url ?? null,
        date: it.date_published,
        language: it.language,
        dir: it._tickerd.dir,
        html: dirOf(it.content_html),
      }));
      // the parser this test trusts does report a broken document
      out.brokenErrors = new DOMParser()
        .parseFromString('<rss><channel><title>a & b</title></channel></rss>', 'application/xml')
        .getElementsByTagName('parsererror').length;
      return out;
    },
    { base, query },
  );
}

function checkFeeds(got, wantIds) {
  assert.equal(got.brokenErrors > 0, true, 'DOMParser reports a parsererror for bad XML');
  assert.equal(got.rssStatus, 200);
  assert.equal(got.rssType, 'application/rss+xml; charset=utf-8');
  assert.equal(got.rssErrors, 0, 'the RSS parses as XML');
  assert.equal(got.jsonStatus, 200);
  assert.equal(got.jsonType, 'application/feed+json; charset=utf-8');
  assert.equal(got.version, 'https://jsonfeed.org/version/1.1');
  assert.deepEqual(got.rss.map((i) => i.guid), wantIds, 'RSS: newest first');
  assert.deepEqual(got.json.map((i) => i.id), wantIds, 'JSON Feed: newest first');
  for (const it of got.rss) {
    assert.equal(it.permalink, 'false');
    assert.equal(it.pubDate, new Date(Number(it.guid.split('-')[0])).toUTCString());
    const rtl = it.lang === 'ar';
    assert.equal(it.html.direction, rtl ? 'rtl' : 'ltr', `RSS ${it.guid} (${it.lang})`);
    assert.equal(it.html.lang, it.lang);
    assert.equal(it.html.text, it.title);
  }
  for (const it of got.json) {
    assert.equal(new Date(it.date).getTime(), Number(it.id.split('-')[0]));
    const rtl = it.language === 'ar';
    assert.equal(it.dir, rtl ? 'rtl' : 'ltr');
    assert.equal(it.html.direction, rtl ? 'rtl' : 'ltr', `JSON Feed ${it.id} (${it.language})`);
    assert.equal(it.html.text, it.text);
  }
}

test('Chromium reads both feeds on their own origin', async (t) => {
  const page = await pageAt(t, `${tickerd.http}/healthz`);
  const got = await readFeeds(page, tickerd.http);
  checkFeeds(got, [ids.es, ids.ar, ids.en]);
  assert.equal(got.channelLang, null);
  assert.equal(got.language, null);
  assert.equal(got.jsonLanguage, null);
  const en = got.rss.find((i) => i.guid === ids.en);
  assert.equal(en.title, 'Talks <resume> in Cairo & Doha ]]> "today"');
  assert.equal(en.link, 'https://news.example/a?b=1&c=2');
  assert.equal(en.lang, 'en');
  const ar = got.json.find((i) => i.id === ids.ar);
  assert.equal(ar.text, 'مسيّرة إسرائيلية تستهدف سيارة في بلدة طول بقضاء النبطية');
  assert.equal(ar.language, 'ar');
  assert.equal(ar.url, null);
  assert.deepEqual(page.errors, []);
});

test('Chromium reads an Arabic-only feed from another origin (CORS)', async (t) => {
  const page = await pageAt(t, `${statics.url}/web/README.md`);
  const got = await readFeeds(page, tickerd.http, '?lang=ar');
  checkFeeds(got, [ids.ar]);
  assert.equal(got.channelLang, 'ar');
  assert.equal(got.language, 'ar');
  assert.equal(got.jsonLanguage, 'ar');
  assert.equal(got.rss[0].html.direction, 'rtl');
  assert.deepEqual(page.errors, []);
});
