// validate.js - the console's check of an item before it is sent: the rules
// of SPEC §1 as src/item.c applies them, with the lists and limits taken from
// GET /v1/lists (so that no list or limit is written twice), and the reason
// names tickerd uses (bad_lang, text_too_long, ...). Pure: no DOM, no I/O.
//
//   const errors = checkItem(lists, fields, { op, now });  // [] when it may go
//   errors[i] = { field, reason, message }

const EMBARGO_MAX_MS = 7 * 24 * 3600 * 1000; // publish_at at most 7 days ahead
const EMBARGO_PAST_MS = 60 * 1000; // up to 60 s before now: published at once

const encoder = new TextEncoder();

/** Bytes of s as UTF-8. */
export function utf8Bytes(s) {
  return encoder.encode(String(s)).length;
}

/** ASCII whitespace trimmed, as the daemon trims (space, \t \n \v \f \r). */
export function trimAscii(s) {
  return String(s).replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
}

/** What tk_utf8_valid refuses: a C0 control other than tab and newline, DEL,
 * or a lone surrogate (not encodable as UTF-8). */
function badChars(s) {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u0008\u000b-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

const quote = (v) => `'${String(v).slice(0, 60)}'`;

/** An absolute http(s) URL as url_ok() in item.c takes it. */
function urlOk(v) {
  const m = /^(https?:\/\/)(.)/i.exec(v);
  if (!m || '/?#'.includes(m[2])) return false;
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0020\u007f]/.test(v) && !badChars(v);
}

/** Epoch ms of a publish_at given as epoch ms or ISO 8601 UTC; NaN if neither. */
export function parsePublishAt(v) {
  const s = trimAscii(v);
  if (/^\d{1,16}$/.test(s)) return Number(s);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/.test(s)) return NaN;
  return Date.parse(s);
}

/** The names of a region list ("" = global). */
export function regionList(v) {
  if (Array.isArray(v)) return v.map(trimAscii);
  const s = trimAscii(v || '');
  return s ? s.split(',').map(trimAscii) : [];
}

function checkText(lists, f, op, out) {
  // An update needs its text too, unless it carries pin (SPEC §1).
  if (f.text == null || trimAscii(f.text) === '') {
    if (op === 'publish' || f.pin == null)
      out.push({ field: 'text', reason: 'missing_text', message: 'text is missing or empty' });
    return;
  }
  const t = trimAscii(f.text);
  if (badChars(t)) {
    out.push({ field: 'text', reason: 'bad_utf8', message: 'text is not UTF-8 (a control character or a broken one)' });
    return;
  }
  const n = utf8Bytes(t);
  const max = lists.limits.max_text_bytes;
  if (n > max) out.push({ field: 'text', reason: 'text_too_long', message: `text is ${n} bytes, over ${max}` });
}

function checkNames(lists, f, out) {
  if (f.lang != null && !lists.languages.includes(trimAscii(f.lang)))
    out.push({ field: 'lang', reason: 'bad_lang', message: `unknown lang ${quote(f.lang)}` });
  if (f.region != null) {
    const names = regionList(f.region);
    const bad = names.find((r) => !r || !lists.regions.includes(r));
    if (bad === '') out.push({ field: 'region', reason: 'bad_region', message: 'region list has an empty element' });
    else if (bad != null) out.push({ field: 'region', reason: 'bad_region', message: `unknown region ${quote(bad)}` });
  }
  if (f.priority != null && !lists.priorities.includes(trimAscii(f.priority)))
    out.push({ field: 'priority', reason: 'bad_priority', message: `unknown priority ${quote(f.priority)}` });
  const cat = f.category == null ? '' : trimAscii(f.category);
  if (cat && !lists.categories.includes(cat))
    out.push({ field: 'category', reason: 'bad_category', message: `unknown category ${quote(cat)}` });
}

function checkExtras(lists, f, out, now) {
  const L = lists.limits;
  const url = f.url == null ? '' : trimAscii(f.url);
  if (url && (utf8Bytes(url) > L.max_url_bytes || !urlOk(url)))
    out.push({
      field: 'url',
      reason: 'bad_url',
      message: `url ${quote(url)} is not an absolute http(s) URL of at most ${L.max_url_bytes} bytes`,
    });
  const src = f.source == null ? '' : trimAscii(f.source);
  if (src && (utf8Bytes(src) > L.max_source_bytes || badChars(src)))
    out.push({ field: 'source', reason: 'bad_source', message: `source is not UTF-8 of at most ${L.max_source_bytes} bytes` });
  if (f.ttl != null && f.ttl !== '') {
    const s = trimAscii(f.ttl);
    if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > L.max_ttl_s)
      out.push({ field: 'ttl', reason: 'bad_ttl', message: `ttl ${quote(s)} is not whole seconds in 1..${L.max_ttl_s}` });
  }
  if (f.publish_at != null && f.publish_at !== '') {
    const at = parsePublishAt(f.publish_at);
    let why = null;
    if (!Number.isFinite(at)) why = 'is not epoch ms or an ISO 8601 UTC time';
    else if (at < now - EMBARGO_PAST_MS) why = 'is in the past';
    else if (at > now + EMBARGO_MAX_MS) why = 'is more than 7 days ahead';
    if (why) out.push({ field: 'publish_at', reason: 'bad_publish_at', message: `publish_at ${quote(f.publish_at)} ${why}` });
  }
}

/**
 * The errors of one request body `f` (the §1 keys, as the console sends
 * them to POST /v1/items) for `op` ('publish', 'update', 'retract'). `lists`
 * is GET /v1/lists. An update needs only the fields it changes.
 */
export function checkItem(lists, f, { op = 'publish', now = Date.now() } = {}) {
  const out = [];
  if (op !== 'publish' && !/^\d+-\d+$/.test(String(f.ref || ''))) {
    out.push({ field: 'ref', reason: 'bad_ref', message: `ref ${quote(f.ref || '')} is not a stream ID` });
  }
  if (op === 'retract') return out;
  const fields = { ...f };
  delete fields.ref;
  delete fields.op;
  checkText(lists, fields, op, out);
  checkNames(lists, fields, out);
  checkExtras(lists, fields, out, now);
  if (fields.pin != null && ![true, false, 0, 1, '0', '1'].includes(fields.pin))
    out.push({ field: 'pin', reason: 'bad_pin', message: `pin ${quote(fields.pin)} is not 0 or 1` });
  return out;
}

/** The field a reason of the daemon's is about ('bad_lang' -> 'lang'). */
export function fieldOfReason(reason) {
  const map = { missing_text: 'text', text_too_long: 'text', bad_utf8: 'text', unknown_ref: 'ref', retracted_ref: 'ref' };
  if (map[reason]) return map[reason];
  const m = /^bad_(.+)$/.exec(String(reason || ''));
  return m ? m[1] : null;
}
