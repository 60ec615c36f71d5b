"""Kill confirmation (SPEC §7, docs/protocol.md): the `client` label at its
edges on every transport, the `ack` frame, the record every node writes to
Redis under <stream>:kill:<retract id>, GET /v1/items/<id>/screens over it,
and `tickerctl retract ID --wait S`."""

import json
import os
import subprocess
import time

import pytest

from conftest import BUILD, SSE, STREAM, WS, http_get, raw_request, run, wait_until, \
    ws_handshake_request

TICKERCTL = os.path.join(BUILD, "tickerctl")
LABEL_OK = "A" * 64


def screens(td, ref):
    status, _, body = http_get(td.port, f"/v1/items/{ref}/screens")
    return status, (json.loads(body) if status == 200 else body.decode())


def kill_record(rds, retract_id):
    return {k.decode(): v.decode() for k, v in rds.hgetall(f"{STREAM}:kill:{retract_id}").items()}


async def labelled(td, label, query="replay=0"):
    ws = await WS.connect(td, f"{query}&client={label}" if label else query)
    await ws.start()
    return ws


async def next_of(ws, kind, timeout=5):
    while True:
        f = await ws.recv(timeout)
        if f["type"] == kind:
            return f


# --------------------------------------------------------------------------
# the label


@pytest.mark.parametrize("label, ok", [
    ("a", True), (LABEL_OK, True), ("studio-a_1.overlay", True),
    ("", False), ("A" * 65, False), ("studio%20a", False), ("studio/a", False),
    ("caf%C3%A9", False), ("a%2Cb", False),
])
def test_label_edges_at_the_handshake(tickerd, label, ok):
    """1 and 64 bytes of [A-Za-z0-9._-] are labels; 0, 65 and any other
    character are refused 400 by WebSocket and SSE alike."""
    path = f"/v1/ws?client={label}"
    status, _, body = raw_request(tickerd.port, ws_handshake_request(tickerd.port, path))
    assert status == (101 if ok else 400), body
    if not ok:
        assert b"client label" in body
    sse = SSE(tickerd.port, f"/v1/events?client={label}")
    try:
        assert sse.status == (200 if ok else 400)
    finally:
        sse.close()


def test_label_edges_in_subscribe_frames(tickerd):
    async def go():
        ws = await labelled(tickerd, None)
        for label, ok in [("a", True), (LABEL_OK, True), ("", False), ("A" * 65, False),
                          ("st udio", False), (["a"], False)]:
            await ws.send({"type": "subscribe", "client": label})
            f = await ws.recv()
            assert f["type"] == ("hello" if ok else "error"), (label, f)
            if not ok:
                assert f["code"] == "bad_request" and "client" in f["message"]
        await ws.close()
    run(go())


# --------------------------------------------------------------------------
# the ack frame


def test_malformed_ack_is_an_error_and_stray_acks_are_ignored(tickerd, xadd):
    """A malformed ack gets an error frame; an ack from an unlabelled client,
    of a ref never sent to the client, or before any retract, is ignored
    without an answer (and a ping right after is answered first)."""
    async def go():
        item = xadd(text="still on", region="mena")
        plain = await labelled(tickerd, None)
        screen = await labelled(tickerd, "studio-a")
        for bad in [{"type": "ack"}, {"type": "ack", "ref": 5}, {"type": "ack", "ref": "x-1"},
                    {"type": "ack", "ref": ""}]:
            await screen.send(bad)
            f = await screen.recv()
            assert f["type"] == "error" and f["code"] == "bad_request", (bad, f)
        for ws in (plain, screen):
            await ws.send({"type": "ack", "ref": item})  # before any retract
            await ws.send({"type": "ack", "ref": "1-0"})  # never sent
            await ws.send({"type": "ping"})
            assert (await ws.recv())["type"] == "pong"
        await plain.close()
        await screen.close()
    run(go())


# --------------------------------------------------------------------------
# the record and the endpoint


def test_screens_endpoint_edges(tickerd, xadd):
    """A malformed ID is 400, an item never retracted 404, a retract with no
    labelled screen 200 with sent 0."""
    item = xadd(text="to be killed")
    for bad in ["x", "1-", "-1", "1-2-3", "%20"]:
        status, _ = screens(tickerd, bad)
        assert status == 400, bad
    assert screens(tickerd, item)[0] == 404
    rid = xadd(op="retract", ref=item)
    status, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(screens(tickerd, item)),
                              2, what="the record")
    assert body == {"ref": item, "retract_id": rid, "sent": 0, "acked": 0, "screens": []}


def test_two_nodes_one_answer_acks_counted_once(make_tickerd, rds, xadd):
    """Screens on two nodes sharing one Redis appear in one answer from
    either node; a screen that acks twice counts once; an unlabelled client
    and a labelled one whose filter missed the original are not in it."""
    a = make_tickerd(name="node-a")
    b = make_tickerd(name="node-b")

    async def go():
        s1 = await labelled(a, "studio-a")
        s2 = await labelled(b, "studio-b")
        s3 = await labelled(b, "studio-c")
        other = await labelled(a, "sports-desk", "replay=0&region=europe")
        plain = await labelled(a, None)
        item = xadd(text="wrong", region="mena")
        for ws in (s1, s2, s3, plain):
            assert (await next_of(ws, "item"))["id"] == item
        rid = xadd(op="retract", ref=item)
        for ws in (s1, s2, s3, plain):
            assert (await next_of(ws, "retract"))["ref"] == item

        def sent_everywhere():
            return len(kill_record(rds, rid)) == 4  # ref + three screens
        wait_until(sent_everywhere, 2, what="both nodes' records")
        status, body = screens(a, item)
        assert status == 200 and body["sent"] == 3 and body["acked"] == 0, body
        t0 = time.time()
        await s1.send({"type": "ack", "ref": item})
        await s1.send({"type": "ack", "ref": item})
        await s2.send({"type": "ack", "ref": item})

        def two_acked():
            st, bd = screens(b, item)
            return bd if st == 200 and bd["acked"] == 2 else None
        body = wait_until(two_acked, 2, what="two acks")
        assert body["ref"] == item and body["retract_id"] == rid and body["sent"] == 3
        by = {s["client"]: s for s in body["screens"]}
        assert sorted(by) == ["studio-a", "studio-b", "studio-c"]
        assert by["studio-c"]["acked_ms"] is None
        assert by["studio-a"]["node"] != by["studio-b"]["node"]
        rid_ms = int(rid.split("-")[0])
        for k in ("studio-a", "studio-b"):
            assert 0 <= by[k]["acked_ms"] <= (time.time() - t0) * 1000 + (t0 * 1000 - rid_ms) + 50
        assert screens(a, item)[1] == body  # the same from either node
        assert rds.ttl(f"{STREAM}:kill:{rid}") > 86400 - 60
        for ws in (s1, s2, s3, other, plain):
            await ws.close()
    run(go())


def test_reconnecting_screen(tickerd, rds, xadd):
    """A screen that drops before it acks and comes back with since= gets
    the retract in its replay and acks it there: it counts once, acked."""
    async def go():
        s = await labelled(tickerd, "studio-a")
        item = xadd(text="wrong")
        await next_of(s, "item")
        rid = xadd(op="retract", ref=item)
        await next_of(s, "retract")
        wait_until(lambda: len(kill_record(rds, rid)) == 2, 2, what="the record")
        await s.close()
        s = await WS.connect(tickerd, f"since={item}&client=studio-a")
        _, replayed, _ = await s.start()
        assert [f["type"] for f in replayed] == ["retract"]
        await s.send({"type": "ack", "ref": item})
        body = wait_until(lambda: (lambda r: r[1] if r[1]["acked"] == 1 else None)(
            screens(tickerd, item)), 2, what="the ack")
        assert body["sent"] == 1 and body["screens"][0]["client"] == "studio-a"
        await s.close()
    run(go())


# --------------------------------------------------------------------------
# tickerctl retract --wait


def ctl(redis_server, *args, timeout=20):
    return subprocess.run([TICKERCTL, "--redis", redis_server.url, *args],
                          capture_output=True, text=True, timeout=timeout)


def test_tickerctl_wait_exit_codes(tickerd, redis_server, xadd):
    """--wait exits 0 and prints the endpoint's answer when every labelled
    screen acked within S seconds, 1 when one did not; bad S is usage (2)."""
    async def go():
        a = await labelled(tickerd, "studio-a")
        b = await labelled(tickerd, "studio-b")
        item = xadd(text="wrong")
        await next_of(a, "item")
        await next_of(b, "item")
        proc = subprocess.Popen([TICKERCTL, "--redis", redis_server.url, "retract", item,
                                 "--wait", "5"], stdout=subprocess.PIPE, text=True)
        for ws in (a, b):
            await next_of(ws, "retract")
            await ws.send({"type": "ack", "ref": item})
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out
        body = json.loads(out)
        assert body["sent"] == 2 and body["acked"] == 2
        assert body == screens(tickerd, item)[1]

        second = xadd(text="wrong too")
        await next_of(a, "item")
        await next_of(b, "item")
        t0 = time.monotonic()
        proc = subprocess.Popen([TICKERCTL, "--redis", redis_server.url, "retract", second,
                                 "--wait", "1"], stdout=subprocess.PIPE, text=True)
        await next_of(a, "retract")
        await a.send({"type": "ack", "ref": second})  # b never does
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 1, out
        assert time.monotonic() - t0 >= 1
        body = json.loads(out)
        assert body["sent"] == 2 and body["acked"] == 1
        assert [s["acked_ms"] is None for s in body["screens"]] == [False, True]
        await a.close()
        await b.close()
    run(go())
    for bad in ["0", "-1", "x", "86401"]:
        assert ctl(redis_server, "retract", "1-0", "--wait", bad).returncode == 2, bad
    assert ctl(redis_server, "publish", "--text", "t", "--wait", "1").returncode == 2


def test_tickerctl_wait_with_no_node(redis_server):
    """No node ever records the retract: --wait S gives up after S, exit 1."""
    r = ctl(redis_server, "retract", "1-0", "--wait", "0.5")
    assert r.returncode == 1
    assert json.loads(r.stdout)["sent"] == 0


def test_sse_screen_is_sent_and_stays_pending(tickerd, rds, xadd):
    """A labelled SSE client is sent the retract but cannot ack: it is
    listed, pending (docs/protocol.md)."""
    sse = SSE(tickerd.port, "/v1/events?replay=0&client=studio-sse")
    try:
        assert sse.status == 200
        item = xadd(text="wrong")
        rid = xadd(op="retract", ref=item)
        wait_until(lambda: len(kill_record(rds, rid)) == 2, 2, what="the record")
        status, body = screens(tickerd, item)
        assert status == 200 and body["sent"] == 1 and body["acked"] == 0, body
        assert body["screens"][0]["client"] == "studio-sse"
        assert body["screens"][0]["acked_ms"] is None
    finally:
        sse.close()
