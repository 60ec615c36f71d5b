"""The feeds (SPEC §3, issue 13): /v1/feed.json (JSON Feed 1.1) and
/v1/feed.rss (RSS 2.0) against a real tickerd and Redis.

RSS is read with feedparser (Debian's python3-feedparser), which reports
any XML error as `bozo`. feedparser 6.0.10 does not read JSON Feed, so the
JSON Feed is checked against the rules of the JSON Feed 1.1 spec written
out below. What each feed lists is compared with a small reference filter
over what the test itself XADDed."""

import calendar
import json
import re
import socket
import time
from datetime import datetime

import feedparser
import jwt
import pytest

from conftest import http_get, raw_request, wait_until

RSS_TYPE = "application/rss+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json; charset=utf-8"
FEEDS = ["/v1/feed.json", "/v1/feed.rss"]
PRIORITIES = ["normal", "breaking", "urgent", "flash"]
SECRET = "s3cret-for-feeds-only-0123456789"
QUERY_ARG_MAX = 2048  # src/request.h TK_QUERY_ARG_MAX

# --------------------------------------------------------------------------
# what the test published, and which of it a query selects


class Published:
    """Every item the test XADDed, as the reference the feeds must match."""

    def __init__(self, xadd):
        self.xadd = xadd
        self.items = []  # oldest first, current state

    def add(self, text, lang="en", region=(), priority="breaking", category=None, url=None,
            source=None, ttl=None):
        fields = {"text": text, "lang": lang, "priority": priority}
        if region:
            fields["region"] = ",".join(region)
        for k, v in (("category", category), ("url", url), ("source", source), ("ttl", ttl)):
            if v is not None:
                fields[k] = str(v)
        item = dict(fields, region=list(region), category=category, url=url, source=source)
        item["id"] = self.xadd(**fields)
        self.items.append(item)
        return item["id"]

    def update(self, ref, **fields):
        uid = self.xadd(op="update", ref=ref, **fields)
        for it in self.items:
            if it["id"] == ref:
                it.update(fields)
                if "region" in fields:
                    it["region"] = fields["region"].split(",")
        return uid

    def retract(self, ref):
        rid = self.xadd(op="retract", ref=ref)
        self.items = [it for it in self.items if it["id"] != ref]
        return rid

    def select(self, region=None, lang=None, priority=None, category=None, limit=20):
        """The IDs a query selects, newest first (the feeds' order)."""
        def match(it):
            if region and it["region"] and not set(it["region"]) & set(region):
                return False
            if lang and it["lang"] not in lang:
                return False
            if priority and PRIORITIES.index(it["priority"]) < PRIORITIES.index(priority):
                return False
            if category and it["category"] not in category:
                return False
            return True
        return [it["id"] for it in reversed(self.items) if match(it)][:limit]

    def by_id(self, entry_id):
        return next(it for it in self.items if it["id"] == entry_id)


@pytest.fixture
def pub(xadd):
    return Published(xadd)


def publish_mix(pub):
    """A dozen items across languages, regions, priorities and categories."""
    pub.add("Ceasefire talks resume in Cairo", region=["mena"], priority="urgent",
            category="politics", url="https://news.example/cairo?a=1&b=2", source="Reuters")
    pub.add("مسيّرة إسرائيلية تستهدف سيارة في بلدة طول بقضاء النبطية", lang="ar",
            region=["mena", "palestine"], priority="flash", category="politics",
            source="مراسل الميادين")
    pub.add("Markets open lower", region=["europe"], priority="normal", category="economy")
    pub.add("Global headline, no region", priority="breaking")
    pub.add("Resultados de la liga", lang="es", region=["latin-america"], category="sports")
    pub.add("ارتفاع أسعار النفط", lang="ar", region=["mena"], priority="normal",
            category="economy")
    pub.add("Storm warning <issued> & \"more\"", region=["us-canada"], priority="urgent",
            category="environment", url="https://news.example/storm")
    pub.add("Election results in Spain", region=["europe"], priority="flash", category="politics")
    pub.add("أخبار عاجلة بلا منطقة", lang="ar", priority="urgent")
    pub.add("Tech giant unveils chip ]]> today", region=["asia"], category="technology")
    pub.add("Cup final tonight", region=["europe", "mena"], priority="breaking",
            category="sports")
    pub.add("Health ministry update", region=["africa"], priority="urgent", category="health")


# --------------------------------------------------------------------------
# reading the feeds


def get(td, path, query="", headers=None):
    return http_get(td.port, path + (f"?{query}" if query else ""), headers=headers)


def rss(td, query="", headers=None):
    """The parsed RSS feed; fails on any XML or encoding error."""
    status, hdrs, body = get(td, "/v1/feed.rss", query, headers)
    assert status == 200, body
    assert hdrs["content-type"] == RSS_TYPE
    d = feedparser.parse(body, response_headers={"content-type": hdrs["content-type"]})
    assert not d.bozo, f"feedparser: {d.bozo_exception!r}\n{body.decode()[:2000]}"
    assert d.version == "rss20", d.version
    return d


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
FEED_KEYS = {"version", "title", "home_page_url", "feed_url", "description", "user_comment",
             "next_url", "icon", "favicon", "authors", "author", "language", "expired", "hubs",
             "items"}
ITEM_KEYS = {"id", "url", "external_url", "title", "content_html", "content_text", "summary",
             "image", "banner_image", "date_published", "date_modified", "authors", "author",
             "tags", "language", "attachments"}


def extension(key):
    return re.fullmatch(r"_[A-Za-z]\w*", key) is not None


def check_json_feed(doc):
    """The rules of https://jsonfeed.org/version/1.1 that a feed can break."""
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(doc["title"], str) and doc["title"]
    assert isinstance(doc["items"], list)
    for k, v in doc.items():
        assert k in FEED_KEYS or extension(k), f"unknown top-level key {k}"
        if k in ("home_page_url", "feed_url", "language", "description"):
            assert isinstance(v, str) and v
    for it in doc["items"]:
        for k in it:
            assert k in ITEM_KEYS or extension(k), f"unknown item key {k}"
        assert isinstance(it["id"], str) and it["id"]
        assert "content_text" in it or "content_html" in it
        for k in ("content_text", "content_html", "url", "language"):
            assert k not in it or isinstance(it[k], str)
        for k in ("date_published", "date_modified"):
            if k in it:
                assert RFC3339.match(it[k]), it[k]
                datetime.fromisoformat(it[k].replace("Z", "+00:00"))
        assert all(isinstance(t, str) for t in it.get("tags", []))
        for a in it.get("authors", []):
            assert isinstance(a, dict) and set(a) & {"name", "url", "avatar"}
    ids = [it["id"] for it in doc["items"]]
    assert len(ids) == len(set(ids)), "item IDs are unique"


def jfeed(td, query="", headers=None):
    status, hdrs, body = get(td, "/v1/feed.json", query, headers)
    assert status == 200, body
    assert hdrs["content-type"] == JSON_FEED_TYPE
    doc = json.loads(body.decode("utf-8"))  # strict: no raw control characters
    check_json_feed(doc)
    return doc


def rss_ids(td, query=""):
    return [e.id for e in rss(td, query).entries]


def json_ids(td, query=""):
    return [it["id"] for it in jfeed(td, query)["items"]]


def ms_of(entry_id):
    return int(entry_id.split("-")[0])


# --------------------------------------------------------------------------
# contents


def test_both_feeds_parse_and_list_every_item(tickerd, pub):
    publish_mix(pub)
    want = pub.select()
    d = rss(tickerd)
    assert [e.id for e in d.entries] == want
    assert d.feed.title == "ticker:breaking"
    assert d.feed.link == f"http://127.0.0.1:{tickerd.port}/"
    assert "language" not in d.feed  # three languages
    for e in d.entries:
        it = pub.by_id(e.id)
        assert e.guidislink is False
        assert e.title == it["text"]
        assert e.title_detail.language == it["lang"]
        rtl = it["lang"] == "ar"
        assert f'dir="{"rtl" if rtl else "ltr"}"' in e.summary
        assert f'lang="{it["lang"]}"' in e.summary
        assert e.published_parsed == time.gmtime(ms_of(e.id) // 1000)
        assert e.get("link") == it["url"]
        assert e.get("author") == it["source"]
        tags = {(t.scheme, t.term) for t in e.tags}
        want_tags = {("priority", it["priority"])} | {("region", r) for r in it["region"]}
        if it["category"]:
            want_tags.add(("category", it["category"]))
        assert tags == want_tags

    doc = jfeed(tickerd)
    assert [i["id"] for i in doc["items"]] == want
    assert doc["title"] == "ticker:breaking"
    assert doc["home_page_url"] == f"http://127.0.0.1:{tickerd.port}/"
    assert doc["feed_url"] == f"http://127.0.0.1:{tickerd.port}/v1/feed.json"
    assert doc["_tickerd"]["epoch"] == tickerd.health()[1]["epoch"]
    assert "language" not in doc
    for i in doc["items"]:
        it = pub.by_id(i["id"])
        assert i["content_text"] == it["text"]
        assert i["language"] == it["lang"]
        rtl = it["lang"] == "ar"
        assert i["_tickerd"]["dir"] == ("rtl" if rtl else "ltr")
        assert f'dir="{"rtl" if rtl else "ltr"}"' in i["content_html"]
        assert i.get("url") == it["url"]
        assert i["date_published"] == datetime.utcfromtimestamp(
            ms_of(i["id"]) / 1000).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms_of(i["id"]) % 1000)
        assert i.get("authors", [{}])[0].get("name") == it["source"]
        assert i["_tickerd"]["priority"] == it["priority"]
        assert i["_tickerd"]["region"] == sorted(it["region"], key=REGION_ORDER.index)
        assert i["_tickerd"].get("category") == it["category"]


REGION_ORDER = ["africa", "asia", "asia-pacific", "europe", "latin-america", "mena", "palestine",
                "us-canada"]


@pytest.mark.parametrize("query, sel", [
    ("region=mena", {"region": ["mena"]}),
    ("region=palestine", {"region": ["palestine"]}),
    ("region=europe,asia", {"region": ["europe", "asia"]}),
    ("lang=ar", {"lang": ["ar"]}),
    ("lang=en,es", {"lang": ["en", "es"]}),
    ("priority=urgent", {"priority": "urgent"}),
    ("priority=flash", {"priority": "flash"}),
    ("category=politics", {"category": ["politics"]}),
    ("category=sports,economy", {"category": ["sports", "economy"]}),
    ("region=europe,mena&lang=en&priority=breaking&category=sports,politics",
     {"region": ["europe", "mena"], "lang": ["en"], "priority": "breaking",
      "category": ["sports", "politics"]}),
    ("region=mena&lang=ar&limit=2", {"region": ["mena"], "lang": ["ar"], "limit": 2}),
    ("region=atlantis-free&lang=en", None),
])
def test_filters_match_the_reference(tickerd, pub, query, sel):
    publish_mix(pub)
    if sel is None:  # an unknown region is refused, never widened
        for path in FEEDS:
            status, _, body = get(tickerd, path, query)
            assert status == 400 and body.count(b"\n") == 1
        return
    want = pub.select(**sel)
    assert want, "the query selects something"
    assert rss_ids(tickerd, query) == want
    assert json_ids(tickerd, query) == want


def test_one_language_names_the_feed_language(tickerd, pub):
    publish_mix(pub)
    d = rss(tickerd, "lang=ar")
    assert d.feed.language == "ar"
    assert d.feed.title_detail.language == "ar"  # xml:lang on the channel
    assert [e.id for e in d.entries] == pub.select(lang=["ar"])
    assert all('dir="rtl"' in e.summary for e in d.entries)
    doc = jfeed(tickerd, "lang=ar")
    assert doc["language"] == "ar"
    assert doc["feed_url"].endswith("/v1/feed.json?lang=ar")
    assert all('dir="rtl"' in i["content_html"] for i in doc["items"])
    # two languages: the feed has none, each item has its own
    d = rss(tickerd, "lang=ar,en")
    assert "language" not in d.feed
    assert {e.title_detail.language for e in d.entries} == {"ar", "en"}
    assert "language" not in jfeed(tickerd, "lang=ar,en")


def test_empty_feeds_are_valid(tickerd):
    d = rss(tickerd)
    assert d.entries == []
    assert jfeed(tickerd)["items"] == []


# --------------------------------------------------------------------------
# limit


@pytest.fixture
def small(make_tickerd):
    """A tickerd whose replay_max is 5."""
    return make_tickerd({"replay": {"default": 3, "max": 5}})


@pytest.mark.parametrize("path", FEEDS + ["/v1/items"])
def test_limit_edges(small, xadd, path):
    ids = [xadd(text=f"n{i}") for i in range(8)]
    newest = list(reversed(ids))

    def listed(query):
        status, _, body = get(small, path, query)
        assert status == 200, (query, body)
        if path == "/v1/items":
            return [i["id"] for i in reversed(json.loads(body)["items"])]
        if path.endswith(".rss"):
            d = feedparser.parse(body)
            assert not d.bozo
            return [e.id for e in d.entries]
        doc = json.loads(body)
        check_json_feed(doc)
        return [i["id"] for i in doc["items"]]

    assert listed("limit=1") == newest[:1]
    assert listed("limit=4") == newest[:4]  # one under replay_max
    assert listed("limit=5") == newest[:5]  # at it
    assert listed("limit=0") == []
    # no limit: the default 20, held to replay_max
    assert listed("") == newest[:5]
    # over replay_max and negative: 400, as /v1/items does
    for bad in ("limit=6", "limit=-1", "limit=abc", "limit="):
        status, _, body = get(small, path, bad)
        assert status == 400, bad
        assert body.count(b"\n") == 1


def test_limit_at_the_default_replay_max(tickerd, pub):
    publish_mix(pub)
    for path in FEEDS:
        assert get(tickerd, path, "limit=200")[0] == 200
        status, _, body = get(tickerd, path, "limit=201")
        assert status == 400 and b"limit" in body
    assert rss_ids(tickerd, "limit=200") == pub.select(limit=200)
    assert json_ids(tickerd, "limit=3") == pub.select(limit=3)


# --------------------------------------------------------------------------
# corrections


def test_update_shows_the_correction_and_retract_removes(tickerd, pub):
    a = pub.add("Casualty figure: 10", region=["mena"], url="https://news.example/a")
    b = pub.add("Unconfirmed report", region=["mena"])
    c = pub.add("Third item", region=["europe"])
    pub.update(a, text="Casualty figure: 12 (corrected)")
    pub.retract(b)
    want = [c, a]
    assert pub.select() == want
    d = rss(tickerd)
    assert [e.id for e in d.entries] == want
    assert d.entries[1].title == "Casualty figure: 12 (corrected)"
    assert d.entries[1].link == "https://news.example/a"
    body = get(tickerd, "/v1/feed.rss")[2].decode()
    assert "Unconfirmed" not in body and b not in body and "10<" not in body
    doc = jfeed(tickerd)
    assert [i["id"] for i in doc["items"]] == want
    assert doc["items"][1]["content_text"] == "Casualty figure: 12 (corrected)"
    assert "Unconfirmed" not in json.dumps(doc, ensure_ascii=False)
    # an update that moves the item out of the filter takes it off that feed
    pub.update(a, text="Casualty figure: 12 (corrected)", region="europe")
    assert rss_ids(tickerd, "region=mena") == []
    assert json_ids(tickerd, "region=europe") == [c, a]


# --------------------------------------------------------------------------
# ETag, 304, HEAD


@pytest.mark.parametrize("path", FEEDS + ["/v1/items"])
def test_etag_and_304(tickerd, pub, path):
    pub.add("first")
    status, hdrs, body = get(tickerd, path)
    etag = hdrs["etag"]
    assert status == 200 and re.fullmatch(r'"[0-9a-f]{16}"', etag)
    assert get(tickerd, path)[1]["etag"] == etag  # the same answer, the same tag
    for inm in (etag, "W/" + etag, f'"other", {etag}', "*"):
        status, hdrs2, raw = get(tickerd, path, headers={"If-None-Match": inm})
        assert status == 304, inm
        assert raw == b""
        assert hdrs2["etag"] == etag
        assert hdrs2.get("content-length", "0") == "0"
    assert get(tickerd, path, headers={"If-None-Match": '"0000000000000000"'})[0] == 200
    # another query is another answer
    assert get(tickerd, path, "region=mena")[1]["etag"] != etag
    # a publish
    pub.add("second")
    status, hdrs, body = get(tickerd, path, headers={"If-None-Match": etag})
    assert status == 200 and hdrs["etag"] != etag
    assert b"second" in body
    etag2 = hdrs["etag"]
    # an update changes the text, not the list: a new tag all the same
    pub.update(pub.items[0]["id"], text="first, corrected")
    status, hdrs, body = get(tickerd, path, headers={"If-None-Match": etag2})
    assert status == 200 and hdrs["etag"] != etag2 and b"first, corrected" in body


@pytest.mark.parametrize("path", FEEDS + ["/v1/items"])
def test_etag_changes_at_expiry(tickerd, pub, path):
    """An item expiring is no new event: the history's last ID stays, the
    answer does not."""
    pub.add("stays")
    short = pub.add("expires soon", ttl=3)

    def listed(body):
        doc = json.loads(body) if not path.endswith(".rss") else None
        if doc is None:
            return [e.id for e in feedparser.parse(body).entries]
        return [i["id"] for i in doc["items"]]

    status, hdrs, body = get(tickerd, path)
    assert status == 200 and short in listed(body), "fetched within the ttl"
    etag, last = hdrs["etag"], tickerd.health()[1]["last_id"]
    assert last == short
    wait_until(lambda: short not in listed(get(tickerd, path)[2]), 10, what="the expiry")
    status, hdrs, body = get(tickerd, path, headers={"If-None-Match": etag})
    assert status == 200 and hdrs["etag"] != etag
    assert b"stays" in body and listed(body) == [pub.items[0]["id"]]
    assert tickerd.health()[1]["last_id"] == last
    assert get(tickerd, path, headers={"If-None-Match": hdrs["etag"]})[0] == 304


def raw_exchange(port, request, timeout=5):
    """Sends a request with Connection: close and reads until the server
    closes: every byte it sent, head and whatever follows."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, rest


@pytest.mark.parametrize("path", FEEDS + ["/v1/items"])
def test_head_has_the_headers_and_no_body(tickerd, pub, path):
    pub.add("for HEAD", lang="ar")
    for query, extra in (("", b""), ("lang=ar", b"Origin: https://news.example\r\n")):
        target = (path + (f"?{query}" if query else "")).encode()
        req = b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % tickerd.port + extra
        g_status, g_hdrs, g_body = raw_exchange(tickerd.port, b"GET" + req +
                                                b"Connection: close\r\n\r\n")
        h_status, h_hdrs, h_body = raw_exchange(tickerd.port, b"HEAD" + req +
                                                b"Connection: close\r\n\r\n")
        assert g_status == h_status == 200
        assert len(g_body) == int(g_hdrs["content-length"]) > 0
        assert h_body == b"", h_body[:200]
        g_hdrs.pop("connection", None)
        h_hdrs.pop("connection", None)
        assert h_hdrs == g_hdrs
    # HEAD of a 304 and of a 400 (the ETag names the links too: same Host)
    etag = get(tickerd, path)[1]["etag"]
    status, hdrs, rest = raw_exchange(tickerd.port, b"HEAD " + path.encode() +
                                      b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nIf-None-Match: " %
                                      tickerd.port + etag.encode() +
                                      b"\r\nConnection: close\r\n\r\n")
    assert status == 304 and rest == b"" and hdrs["etag"] == etag
    status, _, rest = raw_exchange(tickerd.port, b"HEAD " + path.encode() +
                                   b"?lang=xx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 400 and rest == b""


# --------------------------------------------------------------------------
# headers, tokens, hostile input


def test_content_types_and_cors(make_tickerd, xadd):
    td = make_tickerd({"auth": {"allowed_origins": "https://news.example"}})
    xadd(text="cors")
    for path, ctype in (("/v1/feed.json", JSON_FEED_TYPE), ("/v1/feed.rss", RSS_TYPE),
                        ("/v1/items", "application/json")):
        status, hdrs, _ = get(td, path, headers={"Origin": "https://news.example"})
        assert status == 200 and hdrs["content-type"] == ctype
        assert hdrs["access-control-allow-origin"] == "https://news.example"
        assert hdrs["vary"] == "Origin"
        assert hdrs["x-content-type-options"] == "nosniff"
        assert get(td, path, headers={"Origin": "https://evil.example"})[0] == 403
        status, hdrs, _ = get(td, path)  # no Origin: not a browser, no CORS header
        assert status == 200 and "access-control-allow-origin" not in hdrs


def token(claims):
    return jwt.encode(dict(claims, exp=int(time.time()) + 600), SECRET, algorithm="HS256")


def test_token_claims_narrow_the_feed(make_tickerd, xadd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    pub = Published(xadd)
    publish_mix(pub)
    tok = token({"regions": ["mena", "palestine"], "langs": ["ar"]})
    want = pub.select(region=["mena", "palestine"], lang=["ar"])
    assert want and len(want) < len(pub.items)
    d = rss(td, f"token={tok}")
    assert [e.id for e in d.entries] == want
    assert d.feed.language == "ar"  # the token leaves one language
    doc = jfeed(td, headers={"Authorization": f"Bearer {tok}"})
    assert [i["id"] for i in doc["items"]] == want
    assert "token" not in doc["feed_url"] and tok not in json.dumps(doc)
    assert tok not in get(td, "/v1/feed.rss", f"token={tok}")[2].decode()
    # narrower still inside the claims
    assert json_ids(td, f"token={tok}&region=palestine") == pub.select(region=["palestine"],
                                                                       lang=["ar"])
    # the same query under another token is another answer
    other = token({"regions": ["europe"]})
    e1 = get(td, "/v1/feed.rss", f"token={tok}")[1]["etag"]
    e2 = get(td, "/v1/feed.rss", f"token={other}")[1]["etag"]
    assert e1 != e2
    for path in FEEDS:
        assert get(td, path)[0] == 401
        assert get(td, path, f"token={tok}&region=europe")[0] == 403
        assert get(td, path, f"token={tok}&lang=en")[0] == 403


def padded_query(arg_len):
    """region=mena, an ignored parameter of exactly arg_len bytes, lang=en:
    a long parameter skipped would skip lang too, and widen the feed."""
    pad = "x=" + "a" * (arg_len - 2)
    return "region=mena&" + pad + "&lang=en"


@pytest.mark.parametrize("path", FEEDS)
def test_hostile_query(tickerd, pub, path):
    pub.add("mena en", region=["mena"])
    pub.add("mena ar", lang="ar", region=["mena"])
    pub.add("europe en", region=["europe"])
    # a 2,100-byte lang value
    status, _, body = get(tickerd, path, "lang=" + "a" * 2095)
    assert status == 400 and b"longer than" in body and body.count(b"\n") == 1
    # at the limit the whole query still counts; one over is refused
    status, _, body = raw_request(tickerd.port, (f"GET {path}?{padded_query(QUERY_ARG_MAX)} "
                                                 "HTTP/1.1\r\nHost: x\r\n\r\n").encode())
    assert status == 200
    if path.endswith(".rss"):
        got = [e.id for e in feedparser.parse(body).entries]
    else:
        got = [i["id"] for i in json.loads(body)["items"]]
    assert got == pub.select(region=["mena"], lang=["en"])
    status, _, body = raw_request(tickerd.port, (f"GET {path}?{padded_query(QUERY_ARG_MAX + 1)} "
                                                 "HTTP/1.1\r\nHost: x\r\n\r\n").encode())
    assert status == 400 and b"longer than" in body
    assert tickerd.health()[0] == 200


@pytest.mark.parametrize("host", ['evil"><x a="', "a b", "x&y", "ünï.example", ""])
def test_hostile_host_header(tickerd, pub, host):
    """The links come from Host only when it is a plain host[:port]; the
    feeds stay well-formed whatever it holds."""
    pub.add("host test")
    for path in FEEDS:
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").encode("utf-8")
        status, hdrs, body = raw_request(tickerd.port, req)
        assert status == 200, status
        if path.endswith(".rss"):
            d = feedparser.parse(body, response_headers={"content-type": hdrs["content-type"]})
            assert not d.bozo, d.bozo_exception
            assert d.feed.link == f"http://127.0.0.1:{tickerd.port}/"
        else:
            doc = json.loads(body)
            check_json_feed(doc)
            assert doc["home_page_url"] == f"http://127.0.0.1:{tickerd.port}/"


def test_host_header_names_the_links(tickerd):
    status, _, body = raw_request(tickerd.port, b"GET /v1/feed.json?lang=ar HTTP/1.1\r\n"
                                                b"Host: news.example:8443\r\n\r\n")
    doc = json.loads(body)
    assert doc["home_page_url"] == "http://news.example:8443/"
    assert doc["feed_url"] == "http://news.example:8443/v1/feed.json?lang=ar"
    status, _, body = raw_request(tickerd.port, b"GET /v1/feed.rss HTTP/1.1\r\n"
                                                b"Host: [::1]:9000\r\n\r\n")
    d = feedparser.parse(body)
    assert not d.bozo and d.feed.link == "http://[::1]:9000/"
