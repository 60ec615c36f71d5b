"""The HTTP side (SPEC §3): SSE at /v1/events, /v1/items, /healthz,
/metrics and the static files."""

import json
import os
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (SSE, WS, http_get, item_frame, raw_request, run, wait_until)


# --------------------------------------------------------------------------
# Server-Sent Events


def test_sse_format_hello_replay_and_live(make_tickerd, xadd):
    td = make_tickerd({"server": {"heartbeat_s": 30}})
    ids = [xadd(text=f"s{i}", region="mena") for i in range(3)]
    sse = SSE(td.port, "/v1/events?replay=2&region=mena")
    try:
        assert sse.status == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.headers.get("cache-control") == "no-cache"
        assert sse.read_block() == {"retry": "2000"}
        hello = sse.read_block()
        assert hello["event"] == "hello" and "id" not in hello
        assert hello["data"]["type"] == "hello" and hello["data"]["protocol"] == 1
        assert hello["data"]["filter"]["region"] == ["mena"]
        assert hello["data"]["epoch"] == td.health()[1]["epoch"]
        for i in (1, 2):
            assert sse.read_block() == {"id": ids[i], "event": "item",
                                        "data": item_frame(ids[i], f"s{i}", region=["mena"],
                                                           replay=True)}
        assert sse.read_block() == {"event": "replay",
                                    "data": {"type": "replay", "count": 2, "gap": False}}
        xadd(text="elsewhere", region="asia")
        live = xadd(text="live", region="mena")
        # the raw lines, exactly
        sse.sock.settimeout(5)
        while b"\n\n" not in sse.buf:
            sse.buf += sse.sock.recv(65536)
        raw, _, sse.buf = sse.buf.partition(b"\n\n")
        lines = raw.decode().split("\n")
        assert lines[0] == f"id: {live}"
        assert lines[1] == "event: item"
        assert lines[2].startswith("data: ") and len(lines) == 3
        assert json.loads(lines[2][6:]) == item_frame(live, "live", region=["mena"])
        # an update and a retract are events of their own type
        u = xadd(op="update", ref=live, text="live2")
        r = xadd(op="retract", ref=live)
        b = sse.read_event()
        assert (b["id"], b["event"], b["data"]["ref"], b["data"]["text"]) == \
            (u, "update", live, "live2")
        assert sse.read_event() == {"id": r, "event": "retract",
                                    "data": {"type": "retract", "id": r, "ref": live}}
    finally:
        sse.close()


def test_sse_last_event_id_resumes(tickerd, xadd):
    ids = [xadd(text=f"r{i}") for i in range(4)]
    sse = SSE(tickerd.port, "/v1/events", headers={"Last-Event-ID": ids[1]})
    try:
        assert sse.status == 200
        assert sse.read_event()["event"] == "hello"
        assert [sse.read_event()["id"] for _ in (2, 3)] == ids[2:]
        assert sse.read_event()["data"] == {"type": "replay", "count": 2, "gap": False}
        live = xadd(text="next")
        b = sse.read_event()
        assert b["id"] == live and "replay" not in b["data"]
    finally:
        sse.close()


def test_sse_heartbeat_comment(make_tickerd):
    td = make_tickerd({"server": {"heartbeat_s": 1}})
    sse = SSE(td.port, "/v1/events?replay=0")
    try:
        sse.read_event()  # hello
        sse.read_event()  # replay marker
        t0 = time.monotonic()
        b = sse.read_block(timeout=3)
        assert "comment" in b and set(b) == {"comment"}, b
        b = sse.read_block(timeout=3)
        assert "comment" in b
        assert time.monotonic() - t0 < 2.9
    finally:
        sse.close()


@pytest.mark.parametrize("path, headers", [
    ("/v1/events?region=atlantis", {}),
    ("/v1/events?since=x", {}),
    ("/v1/events?replay=1000", {}),
    ("/v1/events", {"Last-Event-ID": "not-an-id"}),
])
def test_sse_bad_request_is_400_with_reason(tickerd, path, headers):
    status, _, body = http_get(tickerd.port, path, headers=headers)
    assert status == 400
    text = body.decode()
    assert text.endswith("\n") and text.count("\n") == 1 and len(text) > 1


def test_sse_counts_as_a_connection(make_tickerd):
    td = make_tickerd({"server": {"heartbeat_s": 1}})
    sse = SSE(td.port, "/v1/events")
    try:
        sse.read_event()
        assert td.metric("tickerd_connections", transport="sse") == 1
    finally:
        sse.close()
    # found gone at the latest by the next heartbeat's write
    wait_until(lambda: td.metric("tickerd_connections", transport="sse") == 0, 5,
               what="sse connection gone")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sse_client_gone_is_noticed_without_spinning(make_tickerd):
    td = make_tickerd({"server": {"heartbeat_s": 25}})
    sse = SSE(td.port, "/v1/events")
    sse.read_event()
    sse.close()
    c0 = cpu_seconds(td.proc.pid)
    time.sleep(1)
    assert cpu_seconds(td.proc.pid) - c0 < 0.2, "busy loop after an SSE client left"
    wait_until(lambda: td.metric("tickerd_connections", transport="sse") == 0, 3,
               what="sse connection gone")


# --------------------------------------------------------------------------
# /v1/items


def items(td, query="", headers=None):
    status, hdrs, body = http_get(td.port, "/v1/items" + (f"?{query}" if query else ""),
                                  headers=headers)
    return status, hdrs, (json.loads(body) if status == 200 else body)


def test_items_filters_and_limit(tickerd, xadd):
    ids = [xadd(text=f"i{i}", region="mena" if i % 3 == 0 else "europe",
                lang="ar" if i % 2 else "en") for i in range(30)]
    status, hdrs, body = items(tickerd)
    assert status == 200 and hdrs["content-type"].startswith("application/json")
    assert body["epoch"] == tickerd.health()[1]["epoch"]
    assert body["last_id"] == ids[-1]
    # default limit 20, the newest, oldest first
    assert [i["id"] for i in body["items"]] == ids[-20:]
    assert body["items"][-1] == item_frame(ids[29], "i29", region=["europe"], lang="ar")
    _, _, body = items(tickerd, "limit=3")
    assert [i["id"] for i in body["items"]] == ids[-3:]
    _, _, body = items(tickerd, "limit=200")
    assert [i["id"] for i in body["items"]] == ids
    _, _, body = items(tickerd, "limit=0")
    assert body["items"] == []
    _, _, body = items(tickerd, "region=mena&lang=en&limit=100")
    assert [i["id"] for i in body["items"]] == [ids[i] for i in range(30) if i % 6 == 0]
    for bad in ("limit=201", "limit=-1", "region=atlantis", "lang=xx", "priority=high"):
        status, _, body = items(tickerd, bad)
        assert status == 400, bad
        assert body.decode().count("\n") == 1


def test_items_etag_and_304(tickerd, xadd):
    xadd(text="a")
    status, hdrs, body = items(tickerd)
    etag = hdrs["etag"]
    assert status == 200 and etag
    status, hdrs2, raw = http_get(tickerd.port, "/v1/items", headers={"If-None-Match": etag})
    assert status == 304 and raw == b"" and hdrs2["etag"] == etag
    status, _, _ = items(tickerd, headers={"If-None-Match": '"something-else"'})
    assert status == 200
    xadd(text="b")
    wait_until(lambda: items(tickerd)[1]["etag"] != etag, 5, what="a new ETag")
    status, _, body = items(tickerd, headers={"If-None-Match": etag})
    assert status == 200 and [i["text"] for i in body["items"]] == ["a", "b"]


# --------------------------------------------------------------------------
# /healthz


def test_healthz_follows_redis_with_grace(make_tickerd, redis_server):
    td = make_tickerd({"redis": {"grace_s": 1}})
    status, body = td.health()
    assert status == 200 and body["status"] == "ok" and body["redis"] == "up"
    redis_server.stop()
    wait_until(lambda: td.health()[1]["redis"] == "down", 5, what="redis down")
    down_at = time.monotonic()
    status, body = td.health()
    if time.monotonic() - down_at < 0.8:
        assert status == 200  # within grace_s
    wait_until(lambda: td.health()[0] == 503, 5, what="503 after grace_s")
    assert time.monotonic() - down_at >= 0.8
    assert td.health()[1]["redis"] == "down"
    assert td.metric("tickerd_redis_up") == 0
    redis_server.start()
    wait_until(lambda: td.health()[0] == 200, 10, what="200 once redis is back")
    status, body = td.health()
    assert body["status"] == "ok" and body["redis"] == "up"
    assert td.metric("tickerd_redis_up") == 1


# --------------------------------------------------------------------------
# /metrics

SPEC_METRICS = {
    # family name as the parser reports it: type
    "tickerd_connections": "gauge",
    "tickerd_connections_total": "counter",
    "tickerd_items_ingested_total": "counter",
    "tickerd_items_rejected_total": "counter",
    "tickerd_messages_sent_total": "counter",
    "tickerd_bytes_sent_total": "counter",
    "tickerd_slow_consumer_disconnects_total": "counter",
    "tickerd_redis_up": "gauge",
    "tickerd_redis_reconnects_total": "counter",
    "tickerd_fanout_seconds": "histogram",
    "tickerd_replay_events_sent_total": "counter",
}


def test_metrics_parse_and_cover_the_spec(tickerd, xadd, rds):
    xadd(text="one")
    xadd(text="two")
    rds.xadd("ticker:breaking", {"lang": "en"})  # missing_text

    async def main():
        ws = await WS.connect(tickerd, "replay=5")
        _, replayed, _ = await ws.start()
        assert len(replayed) == 2
        sse = SSE(tickerd.port, "/v1/events?replay=0")
        sse.read_event()
        xadd(text="three")
        await ws.recv()
        sse.read_event()  # marker
        sse.read_event()  # three
        status, hdrs, body = http_get(tickerd.port, "/metrics")
        sse.close()
        await ws.close()
        return status, hdrs, body.decode()

    status, hdrs, text = run(main())
    assert status == 200 and hdrs["content-type"].startswith("text/plain")
    families = {}
    samples = {}
    for fam in text_string_to_metric_families(text):
        # a counter's family name loses _total; the samples keep it
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
            base = s.name
            for suffix in ("_bucket", "_sum", "_count"):
                if fam.type == "histogram" and base.endswith(suffix):
                    base = base[: -len(suffix)]
            families.setdefault(base, fam.type)
    for name, typ in SPEC_METRICS.items():
        assert families.get(name) == typ, (name, families.get(name))

    def v(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    assert v("tickerd_connections", transport="websocket") == 1
    assert v("tickerd_connections", transport="sse") == 1
    assert v("tickerd_connections_total") == 2
    assert v("tickerd_items_ingested_total") == 3
    assert v("tickerd_items_rejected_total", reason="missing_text") == 1
    assert v("tickerd_messages_sent_total") >= 5
    assert v("tickerd_bytes_sent_total") > 0
    assert v("tickerd_slow_consumer_disconnects_total") == 0
    assert v("tickerd_redis_up") == 1
    assert v("tickerd_replay_events_sent_total") == 2
    assert v("tickerd_fanout_seconds_count") >= 1
    assert v("tickerd_fanout_seconds_bucket", le="+Inf") == v("tickerd_fanout_seconds_count")
    assert v("tickerd_fanout_seconds_sum") >= 0


# --------------------------------------------------------------------------
# static files


@pytest.fixture
def static_td(make_tickerd):
    td = make_tickerd(start=False)
    with open(os.path.join(td.static_dir, "index.html"), "w") as f:
        f.write("<!doctype html><title>ticker</title>")
    with open(os.path.join(td.static_dir, "app.js"), "w") as f:
        f.write("console.log('ticker');")
    os.makedirs(os.path.join(td.static_dir, "sub"))
    with open(os.path.join(td.dir, "secret.txt"), "w") as f:
        f.write("top secret")
    os.symlink(os.path.join(td.dir, "secret.txt"), os.path.join(td.static_dir, "link.txt"))
    os.symlink(td.dir, os.path.join(td.static_dir, "up"))
    return td.start()


def test_static_files_are_served(static_td):
    status, hdrs, body = http_get(static_td.port, "/")
    assert status == 200 and body == b"<!doctype html><title>ticker</title>"
    assert hdrs["content-type"].startswith("text/html")
    status, hdrs, body = http_get(static_td.port, "/index.html")
    assert status == 200 and body.startswith(b"<!doctype html>")
    status, hdrs, body = http_get(static_td.port, "/app.js")
    assert status == 200 and body == b"console.log('ticker');"
    assert "javascript" in hdrs["content-type"]


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/static/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/.%2e/secret.txt",
    "/sub/../../secret.txt",
    "/..\\secret.txt",
    "/link.txt",
    "/up/secret.txt",
    "/up/tickerd.conf",
    "/missing.html",
    "/sub",
    "/sub/",
    "//etc/passwd",
])
def test_static_traversal_is_404(static_td, path):
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    status, _, body = raw_request(static_td.port, req)
    assert status == 404, (path, status)
    assert b"secret" not in body and b"[server]" not in body
    assert static_td.health()[0] == 200


def test_other_methods_and_plain_get_of_ws(tickerd):
    req = b"PUT /v1/items HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    status, _, body = raw_request(tickerd.port, req)
    assert status == 405
    status, _, body = http_get(tickerd.port, "/v1/ws")
    assert status == 426
