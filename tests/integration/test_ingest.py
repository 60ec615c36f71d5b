"""Stream entries (SPEC §1): every kind of bad entry is skipped, logged
once with its ID and reason, counted, and blocks nothing after it; good
entries in both forms become exact item frames."""

import json

import pytest

from conftest import WS, item_frame, run

BAD = [
    # (test id, fields, reason)
    ("missing_text", {"lang": "en", "region": "mena"}, "missing_text"),
    ("blank_text", {"text": " \t\n "}, "missing_text"),
    ("bad_lang", {"text": "t", "lang": "fr"}, "bad_lang"),
    ("empty_lang", {"text": "t", "lang": ""}, "bad_lang"),
    ("unknown_region", {"text": "t", "region": "mena,atlantis"}, "bad_region"),
    ("bad_priority", {"text": "t", "priority": "extreme"}, "bad_priority"),
    ("bad_category", {"text": "t", "category": "weather"}, "bad_category"),
    ("url_scheme", {"text": "t", "url": "ftp://example.com/x"}, "bad_url"),
    ("url_javascript", {"text": "t", "url": "javascript:alert(1)"}, "bad_url"),
    ("url_relative", {"text": "t", "url": "/news/1"}, "bad_url"),
    ("url_no_host", {"text": "t", "url": "https://"}, "bad_url"),
    ("url_space", {"text": "t", "url": "https://example.com/a b"}, "bad_url"),
    ("url_too_long", {"text": "t", "url": "https://example.com/" + "a" * 2029}, "bad_url"),
    ("long_source", {"text": "t", "source": "s" * 201}, "bad_source"),
    ("ttl_zero", {"text": "t", "ttl": "0"}, "bad_ttl"),
    ("ttl_word", {"text": "t", "ttl": "soon"}, "bad_ttl"),
    ("ttl_negative", {"text": "t", "ttl": "-5"}, "bad_ttl"),
    ("ttl_fraction", {"text": "t", "ttl": "1.5"}, "bad_ttl"),
    ("ttl_too_big", {"text": "t", "ttl": "2592001"}, "bad_ttl"),
    ("bad_op", {"text": "t", "op": "delete"}, "bad_op"),
    ("update_without_ref", {"text": "t", "op": "update"}, "bad_ref"),
    ("retract_without_ref", {"op": "retract"}, "bad_ref"),
    ("malformed_ref", {"text": "t", "op": "update", "ref": "abc"}, "bad_ref"),
    ("json_syntax", {"json": '{"text": "t", '}, "bad_json"),
    ("json_not_object", {"json": '["text", "t"]'}, "bad_json"),
    ("json_wrong_type", {"json": '{"text": 5}'}, "bad_json"),
    ("json_region_type", {"json": '{"text": "t", "region": [1]}'}, "bad_json"),
    ("json_bad_field", {"json": '{"text": "t", "lang": "xx"}'}, "bad_lang"),
    ("invalid_utf8", {"text": b"caf\xc3 \xff\xfe"}, "bad_utf8"),
    ("overlong_utf8", {"text": b"\xc0\xaf"}, "bad_utf8"),
    ("surrogate_utf8", {"text": b"\xed\xa0\x80"}, "bad_utf8"),
    ("control_char", {"text": b"a\x00b"}, "bad_utf8"),
    ("text_too_long", {"text": "x" * 1001}, "text_too_long"),
    ("text_too_long_multibyte", {"text": "\u00e9" * 501}, "text_too_long"),
]


@pytest.mark.parametrize("fields, reason", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_entry_is_skipped_logged_and_counted(tickerd, rds, xadd, fields, reason):
    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        before = tickerd.metric("tickerd_items_rejected_total", reason=reason)
        ingested = tickerd.metric("tickerd_items_ingested_total")
        good1 = xadd(text="good one")
        bad = rds.xadd("ticker:breaking", fields).decode()
        good2 = xadd(text="good two")
        assert await ws.recv() == item_frame(good1, "good one")
        assert await ws.recv() == item_frame(good2, "good two")
        await ws.expect_silence()
        assert tickerd.metric("tickerd_items_rejected_total", reason=reason) == before + 1
        assert tickerd.metric("tickerd_items_ingested_total") == ingested + 2
        log = tickerd.log()
        lines = [line for line in log.splitlines() if bad in line]
        assert len(lines) == 1, lines
        assert reason in lines[0]
        # never replayed either
        ws2 = await WS.connect(tickerd, "replay=10")
        _, replayed, _ = await ws2.start()
        assert [f["id"] for f in replayed] == [good1, good2]
        await ws.close()
        await ws2.close()

    run(main())
    assert tickerd.health()[0] == 200


def test_bad_entries_at_startup_are_skipped(make_tickerd, rds, xadd):
    good1 = xadd(text="one")
    rds.xadd("ticker:breaking", {"text": "t", "lang": "klingon"})
    rds.xadd("ticker:breaking", {"text": b"\xff"})
    good2 = xadd(text="two")
    td = make_tickerd()
    assert td.metric("tickerd_items_rejected_total", reason="bad_lang") == 1
    assert td.metric("tickerd_items_rejected_total", reason="bad_utf8") == 1

    async def main():
        ws = await WS.connect(td)
        _, replayed, _ = await ws.start()
        assert [f["id"] for f in replayed] == [good1, good2]
        await ws.close()

    run(main())


def test_limits_are_inclusive(tickerd, xadd):
    text = "\u00e9" * 500  # 1000 bytes
    url = "https://example.com/" + "a" * 2028  # 2048 bytes
    source = "s" * 200

    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        i = xadd(text=text, url=url, source=source, ttl="2592000")
        assert await ws.recv() == item_frame(i, text, url=url, source=source, ttl=2592000)
        await ws.close()

    run(main())


def test_json_form(tickerd, xadd):
    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        i = xadd(json=json.dumps({"text": "from json", "lang": "es", "region": ["mena", "europe"],
                                  "priority": "flash", "category": "sports", "ttl": 90,
                                  "url": "http://example.org/", "source": "CMS",
                                  "extra": {"ignored": True}}))
        assert await ws.recv() == item_frame(i, "from json", lang="es", region=["europe", "mena"],
                                             priority="flash", category="sports", ttl=90,
                                             url="http://example.org/", source="CMS")
        j = xadd(json='{"text":"comma list","region":"asia, africa","ttl":"30"}')
        assert await ws.recv() == item_frame(j, "comma list", region=["africa", "asia"], ttl=30)
        await ws.close()

    run(main())


def test_unknown_fields_ignored_and_names_case_insensitive(tickerd, xadd):
    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        i = xadd(text="t", author="someone", Lang="xx", lang="AR", region="MENA", priority="URGENT",
                 category="Sports")
        assert await ws.recv() == item_frame(i, "t", lang="ar", region=["mena"], priority="urgent",
                                             category="sports")
        await ws.close()

    run(main())


@pytest.mark.parametrize("nfields", [31, 32, 33, 200])
def test_entries_with_many_fields_around_the_stack_limit(tickerd, xadd, nfields):
    # worker.c reads up to 32 fields on the stack and more from the heap
    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        extra = {f"x{k}": "v" for k in range(nfields - 2)}
        i = xadd(text=f"{nfields} fields", lang="es", **extra)
        assert await ws.recv() == item_frame(i, f"{nfields} fields", lang="es")
        await ws.close()

    run(main())


def test_many_bad_entries_in_one_read(tickerd, rds, xadd):
    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        pipe = rds.pipeline(transaction=False)
        for n in range(50):
            pipe.xadd("ticker:breaking", {"text": "ok %d" % n} if n % 2 else {"lang": "en"})
        ids = [i.decode() for i in pipe.execute()]
        got = [(await ws.recv())["id"] for _ in range(25)]
        assert got == ids[1::2]
        await ws.expect_silence()
        await ws.close()

    run(main())
    assert tickerd.metric("tickerd_items_rejected_total", reason="missing_text") == 25
