"""Audience and lists (SPEC §3): GET /v1/stats and tickerd_subscribers{lang}
/{region}, kept on connect, subscribe and disconnect, daemon-wide across
workers, compared with a model of who is connected with which filter; and
GET /v1/lists, built from the configuration."""
import asyncio
import collections
import json

import pytest

from conftest import SSE, WS, http_get, run, wait_until

LANGS = ["en", "ar", "es"]
REGIONS = ["mena", "palestine", "europe", "latin-america"]


def stats(td):
    status, _, body = http_get(td.port, "/v1/stats")
    assert status == 200
    return json.loads(body)


def model(filters):
    """What /v1/stats must say for clients with these (langs, regions)."""
    by_lang, by_region = collections.Counter(), collections.Counter()
    for langs, regions in filters:
        for name in langs or ["*"]:
            by_lang[name] += 1
        for name in regions or ["*"]:
            by_region[name] += 1
    return by_lang, by_region


def check(td, filters, transports=None):
    want_lang, want_region = model(filters)

    def agrees():
        s = stats(td)
        got_lang = {k: v for k, v in s["by_lang"].items() if v}
        got_region = {k: v for k, v in s["by_region"].items() if v}
        ok = (s["connections"] == len(filters) and got_lang == dict(want_lang) and
              got_region == dict(want_region))
        if ok and transports is not None:
            ok = {k: v for k, v in s["by_transport"].items() if v} == transports
        return ok
    wait_until(agrees, 5, what=f"stats {stats(td)} to match {want_lang} {want_region}")
    # the metrics say the same
    for name, n in want_lang.items():
        assert td.metric("tickerd_subscribers", lang=name) == n
    for name, n in want_region.items():
        assert td.metric("tickerd_subscribers", region=name) == n


def query(langs, regions):
    parts = []
    if langs:
        parts.append("lang=" + ",".join(langs))
    if regions:
        parts.append("region=" + ",".join(regions))
    return "&".join(parts + ["replay=0"])


@pytest.mark.parametrize("workers", [1, 2])
def test_stats_follow_connect_subscribe_disconnect(make_tickerd, workers):
    td = make_tickerd({"server": {"workers": workers}})
    s = stats(td)
    lists = json.loads(http_get(td.port, "/v1/lists")[2])
    assert s["connections"] == 0
    assert set(s["by_lang"]) == set(lists["languages"]) | {"*"}
    assert set(s["by_region"]) == set(lists["regions"]) | {"*"}
    assert set(LANGS) <= set(lists["languages"]) and set(REGIONS) <= set(lists["regions"])

    async def main():
        filters = [([], []), (["en"], []), (["en", "ar"], ["mena", "palestine"]),
                   ([], ["europe"]), (["es"], ["latin-america"])]
        clients = []
        for langs, regions in filters:
            ws = await WS.connect(td, query(langs, regions))
            await ws.start()
            clients.append(ws)
        sse = SSE(td.port, "/v1/events?lang=ar&replay=0")
        filters_now = filters + [(["ar"], [])]
        check(td, filters_now, {"websocket": 5, "sse": 1})
        # a subscribe replaces the filter, and its count moves with it
        await clients[1].send({"type": "subscribe", "lang": "es,ar", "region": "mena"})
        assert (await clients[1].recv())["type"] == "hello"
        filters_now[1] = (["es", "ar"], ["mena"])
        check(td, filters_now)
        # a bad subscribe keeps the old filter and the old count
        await clients[1].send({"type": "subscribe", "lang": "klingon"})
        assert (await clients[1].recv())["type"] == "error"
        check(td, filters_now)
        # leaving takes the client out
        await clients[2].close()
        sse.close()
        del filters_now[5], filters_now[2]
        check(td, filters_now, {"websocket": 4})
        for ws in clients[:2] + clients[3:]:
            await ws.close()
        check(td, [])

    run(main())


def test_stats_release_a_killed_worker(make_tickerd):
    import os
    import signal
    td = make_tickerd({"server": {"workers": 2}})
    n = 12

    async def main():
        clients = []
        for _ in range(n):
            ws = await WS.connect(td, "lang=en&replay=0")
            await ws.start()
            clients.append(ws)
        check(td, [(["en"], [])] * n)
        children = [int(p) for p in open(f"/proc/{td.proc.pid}/task/{td.proc.pid}/children")
                    .read().split()]
        os.kill(children[0], signal.SIGKILL)
        # The kernel spreads connections over the workers' sockets, so which
        # clients the killed worker held is learnt from their connections
        # ending (a 1 in 2**11 chance that it held none).
        await asyncio.sleep(0.5)
        alive = sum(1 for ws in clients if not ws.conn.closed)
        # what that worker counted is released with it; the rest stays
        wait_until(lambda: stats(td)["connections"] == alive, 5,
                   what=f"connections == {alive} clients still open")
        s = stats(td)
        assert s["by_lang"]["en"] == alive
        assert s["by_region"]["*"] == alive
        for ws in clients:
            await ws.close()

    run(main())


def test_lists_come_from_the_config(make_tickerd):
    td = make_tickerd({"lists": {"languages": "en, ar, es, fr", "regions": "mena, europe",
                                 "default_lang": "ar"},
                       "stream": {"max_text_bytes": 500}, "replay": {"max": 150}})
    status, headers, body = http_get(td.port, "/v1/lists")
    assert status == 200 and headers["content-type"].startswith("application/json")
    lists = json.loads(body)
    # in the daemon's name-table order: the defaults first, then the new
    assert lists["languages"] == ["en", "ar", "es", "fr"]
    assert sorted(lists["regions"]) == ["europe", "mena"]
    assert lists["priorities"] == ["normal", "breaking", "urgent", "flash"]
    assert lists["default_lang"] == "ar"
    assert lists["limits"] == {"max_text_bytes": 500, "max_source_bytes": 200,
                               "max_url_bytes": 2048, "max_ttl_s": 2592000, "replay_max": 150,
                               "default_ttl_s": 21600}
    assert len(lists["categories"]) == 8


def test_lists_and_stats_answer_head(tickerd):
    import socket
    for path in ("/v1/lists", "/v1/stats"):
        with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as s:
            s.sendall(b"HEAD " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == b"", reply[:200]
