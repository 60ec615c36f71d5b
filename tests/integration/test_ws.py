"""WebSocket transport (SPEC §2): the connect sequence, filters, bad
handshakes and client messages."""

import json
import time

import pytest
import websockets

from conftest import WS, RawWS, item_frame, raw_request, run, ws_handshake_request


# --------------------------------------------------------------------------
# the connect sequence


def test_connect_sequence_hello_replay_marker_live(make_tickerd, xadd):
    td = make_tickerd({"server": {"heartbeat_s": 7}})
    ids = [xadd(text=f"old {i}", region="mena") for i in range(3)]
    epoch = td.health()[1]["epoch"]

    async def main():
        ws = await WS.connect(td, "replay=2")
        hello = await ws.recv()
        assert hello["type"] == "hello"
        assert hello["protocol"] == 1
        assert hello["epoch"] == epoch and len(epoch) > 0
        assert hello["heartbeat_s"] == 7
        assert hello["filter"] == {"priority": "normal"}
        assert hello["server"].startswith("tickerd/")
        r1, r2, marker = await ws.recv_n(3)
        assert r1 == item_frame(ids[1], "old 1", region=["mena"], replay=True)
        assert r2 == item_frame(ids[2], "old 2", region=["mena"], replay=True)
        assert marker == {"type": "replay", "count": 2, "gap": False}
        new = xadd(text="  live one\t", lang="ar", region="palestine, mena", priority="urgent",
                   category="politics", url="https://example.com/a?b=c", source="Agency",
                   ttl="60")
        live = await ws.recv()
        assert live == item_frame(new, "live one", lang="ar", region=["mena", "palestine"],
                                  priority="urgent", category="politics",
                                  url="https://example.com/a?b=c", source="Agency", ttl=60)
        assert "replay" not in live
        await ws.expect_silence()
        await ws.close()

    run(main())


def test_marker_sent_even_when_nothing_is_replayed(tickerd, xadd):
    xadd(text="x", region="mena")

    async def main():
        for query, count in (("replay=0", 0), ("region=europe", 0), ("", 1)):
            ws = await WS.connect(tickerd, query)
            hello, replayed, marker = await ws.start()
            assert len(replayed) == count
            assert marker == {"type": "replay", "count": count, "gap": False}
            await ws.expect_silence(0.1)
            await ws.close()

    run(main())


def test_default_replay_is_ten_newest(tickerd, xadd):
    ids = [xadd(text=f"n{i}") for i in range(15)]

    async def main():
        ws = await WS.connect(tickerd)
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids[-10:]
        assert marker == {"type": "replay", "count": 10, "gap": False}
        await ws.close()

    run(main())


# --------------------------------------------------------------------------
# filters


async def expect_ids(ws, ids):
    """The next frames are exactly the items ids, then nothing."""
    got = [(await ws.recv())["id"] for _ in ids]
    assert got == ids
    await ws.expect_silence()


def test_region_filter_multi_region_and_global(tickerd, xadd):
    async def main():
        mena = await WS.connect(tickerd, "region=mena&replay=0")
        eu_asia = await WS.connect(tickerd, "region=europe,asia&replay=0")
        pal = await WS.connect(tickerd, "region=palestine&replay=0")
        everyone = await WS.connect(tickerd, "replay=0")
        for ws in (mena, eu_asia, pal, everyone):
            await ws.start()
        a = xadd(text="a", region="mena")
        b = xadd(text="b", region="europe")
        c = xadd(text="c", region="mena,europe")
        d = xadd(text="d")  # global
        e = xadd(text="e", region="")  # empty = global
        f = xadd(text="f", region="asia,us-canada")
        await expect_ids(mena, [a, c, d, e])
        await expect_ids(eu_asia, [b, c, d, e, f])
        await expect_ids(pal, [d, e])
        await expect_ids(everyone, [a, b, c, d, e, f])
        for ws in (mena, eu_asia, pal, everyone):
            await ws.close()

    run(main())


def test_lang_filter(tickerd, xadd):
    async def main():
        ar_es = await WS.connect(tickerd, "lang=ar,es&replay=0")
        en = await WS.connect(tickerd, "lang=en&replay=0")
        for ws in (ar_es, en):
            await ws.start()
        a = xadd(text="a", lang="ar")
        b = xadd(text="b")  # default lang en
        c = xadd(text="c", lang="es")
        d = xadd(text="d", lang="EN")
        await expect_ids(ar_es, [a, c])
        await expect_ids(en, [b, d])
        await ar_es.close()
        await en.close()

    run(main())


def test_priority_is_a_minimum(tickerd, xadd):
    async def main():
        urgent = await WS.connect(tickerd, "priority=urgent&replay=0")
        normal = await WS.connect(tickerd, "priority=normal&replay=0")
        breaking = await WS.connect(tickerd, "priority=breaking&replay=0")
        for ws in (urgent, normal, breaking):
            await ws.start()
        n = xadd(text="n", priority="normal")
        b = xadd(text="b")  # default breaking
        u = xadd(text="u", priority="urgent")
        f = xadd(text="f", priority="flash")
        await expect_ids(urgent, [u, f])
        await expect_ids(normal, [n, b, u, f])
        await expect_ids(breaking, [b, u, f])
        for ws in (urgent, normal, breaking):
            await ws.close()

    run(main())


def test_category_filter_and_items_without_category(tickerd, xadd):
    async def main():
        sports = await WS.connect(tickerd, "category=sports,health&replay=0")
        anycat = await WS.connect(tickerd, "replay=0")
        for ws in (sports, anycat):
            await ws.start()
        a = xadd(text="a", category="sports")
        b = xadd(text="b")  # no category
        c = xadd(text="c", category="politics")
        d = xadd(text="d", category="health")
        await expect_ids(sports, [a, d])
        await expect_ids(anycat, [a, b, c, d])
        await sports.close()
        await anycat.close()

    run(main())


def test_filters_combine_and_hello_shows_them(tickerd, xadd):
    async def main():
        ws = await WS.connect(tickerd, "region=mena,palestine&lang=ar&priority=urgent"
                              "&category=politics&replay=0")
        hello, _, _ = await ws.start()
        assert hello["filter"] == {"region": ["mena", "palestine"], "lang": ["ar"],
                                   "priority": "urgent", "category": ["politics"]}
        xadd(text="wrong lang", lang="en", region="mena", priority="flash", category="politics")
        xadd(text="low prio", lang="ar", region="mena", priority="breaking", category="politics")
        xadd(text="wrong region", lang="ar", region="europe", priority="flash",
             category="politics")
        xadd(text="no category", lang="ar", region="mena", priority="flash")
        ok = xadd(text="match", lang="ar", priority="flash", category="politics")  # global
        await expect_ids(ws, [ok])
        await ws.close()

    run(main())


# --------------------------------------------------------------------------
# handshakes


@pytest.mark.parametrize("path, status, words", [
    ("/v1/ws?region=atlantis", 400, "atlantis"),
    ("/v1/ws?region=", 400, "region"),
    ("/v1/ws?region=mena,,europe", 400, "region"),
    ("/v1/ws?lang=fr", 400, "fr"),
    ("/v1/ws?priority=extreme", 400, "extreme"),
    ("/v1/ws?category=weather", 400, "weather"),
    ("/v1/ws?since=yesterday", 400, "since"),
    ("/v1/ws?since=12-", 400, "since"),
    ("/v1/ws?replay=201", 400, "replay"),
    ("/v1/ws?replay=-1", 400, "replay"),
    ("/v1/ws?replay=ten", 400, "replay"),
    ("/v2/ws", 404, ""),
    ("/v1/wsx", 404, ""),
])
def test_bad_handshake_is_refused_with_a_reason(tickerd, path, status, words):
    got, headers, body = raw_request(tickerd.port, ws_handshake_request(tickerd.port, path))
    assert got == status
    text = body.decode()
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    assert len(text.strip()) > 0
    assert words in text

    async def main():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await WS.connect(tickerd, path.partition("?")[2]) if path.startswith("/v1/ws?") \
                else await websockets.connect(f"ws://127.0.0.1:{tickerd.port}{path}",
                                              open_timeout=5)
        assert e.value.status_code == status

    run(main())
    # the daemon still serves
    assert tickerd.health()[0] == 200


def test_good_handshake_after_refusals_and_counted(tickerd):
    raw_request(tickerd.port, ws_handshake_request(tickerd.port, "/v1/ws?region=nowhere"))
    assert tickerd.metric("tickerd_refused_total", reason="bad_request") >= 1

    async def main():
        ws = await WS.connect(tickerd, "region=mena")
        hello, _, _ = await ws.start()
        assert hello["filter"]["region"] == ["mena"]
        await ws.close()

    run(main())


# --------------------------------------------------------------------------
# client messages


def test_ping_pong(tickerd):
    async def main():
        ws = await WS.connect(tickerd)
        await ws.start()
        await ws.send({"type": "ping"})
        assert await ws.recv() == {"type": "pong"}
        await ws.close()

    run(main())


def test_subscribe_replaces_filter_with_new_hello(tickerd, xadd):
    old = xadd(text="old", region="europe")

    async def main():
        ws = await WS.connect(tickerd, "region=mena&replay=0")
        await ws.start()
        await ws.send({"type": "subscribe", "region": ["europe", "asia"], "lang": "en,ar"})
        hello = await ws.recv()
        assert hello["type"] == "hello" and hello["protocol"] == 1
        # names in the configured order
        assert hello["filter"] == {"region": ["asia", "europe"], "lang": ["en", "ar"],
                                   "priority": "normal"}
        # no replay without replay/since: the next frame is live
        xadd(text="mena", region="mena")
        eu = xadd(text="eu", region="europe")
        assert (await ws.recv())["id"] == eu
        await ws.expect_silence()
        # with replay: hello, the replay, the marker
        await ws.send({"type": "subscribe", "region": "europe", "replay": 5})
        hello, replayed, marker = await ws.start()
        assert hello["filter"]["region"] == ["europe"]
        assert [f["id"] for f in replayed] == [old, eu]
        assert marker == {"type": "replay", "count": 2, "gap": False}
        await ws.close()

    run(main())


def test_subscribe_with_since_replays_events(tickerd, xadd):
    a = xadd(text="a")

    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        b = xadd(text="b", region="asia")
        assert (await ws.recv())["id"] == b
        await ws.send({"type": "subscribe", "since": a, "region": "asia"})
        hello, replayed, marker = await ws.start()
        assert replayed == [item_frame(b, "b", region=["asia"], replay=True)]
        assert marker == {"type": "replay", "count": 1, "gap": False}
        await ws.close()

    run(main())


@pytest.mark.parametrize("bad", [
    "not json",
    "[1,2]",
    '{"no":"type"}',
    '{"type":"dance"}',
    '{"type":42}',
    '{"type":"subscribe","region":"atlantis"}',
    '{"type":"subscribe","region":{"a":1}}',
    '{"type":"subscribe","replay":999}',
    '{"type":"subscribe","since":"nope"}',
])
def test_bad_message_gets_error_and_keeps_filter(tickerd, xadd, bad):
    async def main():
        ws = await WS.connect(tickerd, "region=mena&replay=0")
        await ws.start()
        await ws.send(bad)
        err = await ws.recv()
        assert err["type"] == "error"
        assert isinstance(err["code"], str) and err["code"]
        assert isinstance(err["message"], str) and err["message"]
        await ws.expect_silence(0.1)
        xadd(text="eu", region="europe")
        m = xadd(text="mena", region="mena")
        assert (await ws.recv())["id"] == m
        await ws.expect_silence()
        await ws.close()

    run(main())


def test_ten_bad_messages_in_a_row_close_1008(tickerd):
    async def main():
        ws = await WS.connect(tickerd)
        await ws.start()
        # nine bad, one good: the count starts over
        for _ in range(9):
            await ws.send("garbage")
            assert (await ws.recv())["type"] == "error"
        await ws.send({"type": "ping"})
        assert await ws.recv() == {"type": "pong"}
        for _ in range(9):
            await ws.send("garbage")
            assert (await ws.recv())["type"] == "error"
        await ws.send({"type": "ping"})
        assert await ws.recv() == {"type": "pong"}
        for _ in range(10):
            await ws.send("garbage")
        assert await ws.wait_closed() == 1008

    run(main())


def test_frame_over_max_frame_bytes_closes_1009(tickerd):
    async def main():
        ws = await WS.connect(tickerd)
        await ws.start()
        base = '{"type":"ping","pad":""}'
        exact = base.replace('""', '"' + "x" * (4096 - len(base)) + '"')
        assert len(exact) == 4096
        await ws.send(exact)
        assert await ws.recv() == {"type": "pong"}
        await ws.send(exact.replace('"x', '"xx'))
        assert await ws.wait_closed() == 1009

    run(main())


def test_frame_over_max_frame_bytes_in_fragments_closes_1009(make_tickerd):
    # A raw client: websockets gives up reading when a write fails, and the
    # server closes while the last fragments are still being sent.
    td = make_tickerd({"limits": {"max_frame_bytes": 256}})
    c = RawWS(td.port, "/v1/ws")
    assert c.read_json()["type"] == "hello"
    assert c.read_json()["type"] == "replay"
    c.send_frame(1, b'{"type":"ping","pad":"', fin=False)
    c.send_frame(0, b"y" * 200, fin=False)
    c.send_frame(0, b"y" * 200, fin=False)
    try:
        c.send_frame(0, b'"}', fin=True)
    except OSError:
        pass
    assert c.read_close() == 1009
    c.close()


def test_fragmented_message_within_limit_is_accepted(tickerd):
    async def main():
        ws = await WS.connect(tickerd)
        await ws.start()
        await ws.conn.send(iter(['{"type":', '"pi', 'ng"}']))
        assert await ws.recv() == {"type": "pong"}
        await ws.close()

    run(main())


# lws's receive buffer per connection is 128 bytes (src/net.c RX_CHUNK_BYTES,
# kept small: every idle connection holds one). Control frames must still
# arrive whole, and longer messages are joined from its chunks.


@pytest.mark.parametrize("n", [0, 124, 125])
def test_ping_payload_up_to_125_is_ponged_whole(tickerd, n):
    c = RawWS(tickerd.port, "/v1/ws?replay=0")
    assert c.read_json()["type"] == "hello"
    assert c.read_json()["type"] == "replay"
    payload = bytes(range(256))[:n] if n else b""
    c.send_frame(9, payload)
    op, got = c.read_frame()
    assert (op, got) == (10, payload)
    c.close()


def test_close_with_a_123_byte_reason_is_answered(tickerd):
    c = RawWS(tickerd.port, "/v1/ws?replay=0")
    assert c.read_json()["type"] == "hello"
    assert c.read_json()["type"] == "replay"
    c.send_frame(8, (1000).to_bytes(2, "big") + b"r" * 123)
    assert c.read_close() == 1000
    c.close()


@pytest.mark.parametrize("pad", [100, 110, 200, 3000])
def test_messages_longer_than_the_receive_buffer_are_joined(tickerd, pad):
    # {"type":"ping","pad":"..."}: 24 bytes + pad, one frame, around and
    # over 128 bytes
    c = RawWS(tickerd.port, "/v1/ws?replay=0")
    assert c.read_json()["type"] == "hello"
    assert c.read_json()["type"] == "replay"
    c.send_frame(1, b'{"type":"ping","pad":"' + b"y" * pad + b'"}')
    assert c.read_json() == {"type": "pong"}
    sub = {"type": "subscribe", "lang": ["en"], "region": ["mena"], "pad": "z" * pad}
    c.send_frame(1, json.dumps(sub).encode())
    got = c.read_json()  # a subscribe is answered with a new hello
    assert got["type"] == "hello" and got["filter"]["lang"] == ["en"], got
    c.close()


def test_binary_frame_is_an_error(tickerd):
    async def main():
        ws = await WS.connect(tickerd)
        await ws.start()
        await ws.conn.send(json.dumps({"type": "ping"}).encode())
        err = await ws.recv()
        assert err["type"] == "error"
        await ws.close()

    run(main())


# --------------------------------------------------------------------------
# heartbeat: a ping every heartbeat_s; silent for 2 x heartbeat_s = dropped


def test_heartbeat_pings_and_drops_silent_client(make_tickerd):
    td = make_tickerd({"server": {"heartbeat_s": 1}})
    silent = RawWS(td.port, "/v1/ws?replay=0", timeout=8)
    answering = RawWS(td.port, "/v1/ws?replay=0", timeout=8)
    assert silent.status == answering.status == 101
    start = time.monotonic()
    pings = 0
    # the answering client pongs every ping for 4 s
    while time.monotonic() - start < 4:
        op, payload = answering.read_frame()
        if op == 9:
            pings += 1
            answering.send_frame(10, payload)
    assert pings >= 3, "a ping about every heartbeat_s"
    # the silent one got pings too, then the connection was dropped
    silent_pings, closed = 0, False
    try:
        while True:
            op, _ = silent.read_frame()
            silent_pings += op == 9
    except (EOFError, ConnectionError, OSError):
        closed = True
    assert silent_pings >= 1 and closed
    # the answering client is still served
    answering.send_frame(1, b'{"type":"ping"}')
    while True:
        op, payload = answering.read_frame()
        if op == 1:
            assert json.loads(payload) == {"type": "pong"}
            break
    assert td.metric("tickerd_connections", transport="websocket") == 1
    silent.close()
    answering.close()
