"""Embargo (SPEC §1 `publish_at`): an item held until its time reaches no
client, replay, since=, /v1/items or feed before it; it goes live at
publish_at on every node (ts = publish_at) as a release whose key sorts at
publish_at (docs/protocol.md "Embargo"); an update or retract while it is
held changes or cancels it, unseen; a restart rebuilds the same state from
the stream; bad times are rejected and counted (bad_publish_at), and so is a
publish over the number held (embargo_full)."""
import asyncio
import json
import os
import subprocess
import time

import pytest

from conftest import BUILD, SSE, STREAM, WS, http_get, item_frame, run, wait_until

TICKERCTL = os.path.join(BUILD, "tickerctl")
DAY_MS = 24 * 3600 * 1000
HELD_MAX = 10000  # TK_EMBARGO_MAX


def now_ms():
    return int(time.time() * 1000)


def release_key(at, entry_id):
    """The key of entry_id's release at `at` (tk_history_release_key)."""
    ms, seq = (int(x) for x in entry_id.split("-"))
    order = (ms & ((1 << 40) - 1)) << 23 | (seq & ((1 << 23) - 1))
    return f"{at - 1}-{1 << 63 | order}"


def released_frame(entry_id, text, at, ttl=21600, **kw):
    f = item_frame(entry_id, text, ttl=ttl, **kw)
    f.update(ts=at, expires=at + ttl * 1000, key=release_key(at, entry_id))
    return f


def items(td, query=""):
    status, _, body = http_get(td.port, "/v1/items" + query)
    assert status == 200
    return json.loads(body)["items"]


def item_ids(td, query=""):
    return [i["id"] for i in items(td, query)]


def feeds_mention(td, entry_id):
    """Whether either feed or the long-poll endpoint (when served) names
    entry_id."""
    for path in ("/v1/feed.json", "/v1/feed.rss", "/v1/poll?wait_s=0"):
        status, _, body = http_get(td.port, path)
        if path.startswith("/v1/poll") and status == 404:
            continue  # not served by this build
        assert status == 200, (path, status)
        if entry_id.encode() in body:
            return True
    return False


def rejected(td, reason):
    return td.metric("tickerd_items_rejected_total", reason=reason) or 0


async def connect(td, query):
    c = await WS.connect(td, query)
    _, replayed, marker = await c.start()
    return c, replayed, marker


def sse_start(td, path, headers=None):
    """An SSE client past its hello; returns (client, replayed events)."""
    s = SSE(td.port, path, headers=headers)
    assert s.read_event()["event"] == "hello"
    replayed = []
    while True:
        b = s.read_event()
        if b["event"] == "replay":
            return s, replayed
        replayed.append(b)


def test_invisible_everywhere_until_release(tickerd, xadd):
    async def main():
        live, _, _ = await connect(tickerd, "replay=0")
        sse, _ = sse_start(tickerd, "/v1/events?replay=0")
        before = xadd(text="before")
        at = now_ms() + 1500
        held = xadd(text="embargoed", publish_at=str(at))
        after = xadd(text="after")
        assert [f["id"] for f in await live.recv_n(2)] == [before, after]
        assert [sse.read_event()["id"] for _ in range(2)] == [before, after]
        # not yet anywhere: items, feeds, poll, a replay, since=
        assert item_ids(tickerd) == [before, after]
        assert not feeds_mention(tickerd, held)
        for q in ("replay=10", f"since={before}", "since=0-0"):
            c, replayed, _ = await connect(tickerd, q)
            assert held not in [f["id"] for f in replayed], q
            await c.close()
        _, replayed = sse_start(tickerd, "/v1/events", {"Last-Event-ID": before})
        assert [b["id"] for b in replayed] == [after]
        # released at its time, with ts = publish_at
        f = await live.recv(timeout=5)
        assert f == released_frame(held, "embargoed", at)
        b = sse.read_event()
        assert b["id"] == f["key"] and b["event"] == "item" and b["data"] == f
        assert item_ids(tickerd) == [before, after, held]
        assert items(tickerd)[-1]["ts"] == at
        assert feeds_mention(tickerd, held)
        c, replayed, _ = await connect(tickerd, "replay=10")
        state = released_frame(held, "embargoed", at, replay=True)
        del state["key"]  # the current state is not a position to resume from
        assert replayed[-1] == state
        await c.close()
        await live.close()
        sse.close()
    run(main())


def test_two_nodes_release_within_100ms_of_publish_at(make_tickerd, xadd):
    nodes = [make_tickerd(name="a"), make_tickerd(name="b")]

    async def main():
        clients = [(await connect(td, "replay=0"))[0] for td in nodes]
        at = now_ms() + 2000
        held = xadd(text="on the hour", publish_at=str(at))

        async def arrival(c):
            f = await c.recv(timeout=6)
            return f, now_ms()
        got = await asyncio.gather(*(arrival(c) for c in clients))
        for f, t in got:
            assert f == released_frame(held, "on the hour", at)
            assert abs(t - at) <= 100, f"released {t - at} ms from publish_at"
        print("release offsets (ms):", [t - at for _, t in got])
        for c in clients:
            await c.close()
    run(main())


def test_update_and_retract_while_held(tickerd, xadd):
    async def main():
        live, _, _ = await connect(tickerd, "replay=0")
        at = now_ms() + 1200
        a = xadd(text="a", publish_at=str(at))
        b = xadd(text="b", publish_at=str(at))
        moved = at + 1200
        xadd(op="update", ref=a, text="a corrected", priority="urgent", publish_at=str(moved))
        xadd(op="retract", ref=b)
        # neither the update nor the retract, nor b, nor a at its old time
        await live.expect_silence(timeout=max(0.1, (at - now_ms()) / 1000 + 0.4))
        assert item_ids(tickerd) == []
        f = await live.recv(timeout=5)
        assert f == released_frame(a, "a corrected", moved, priority="urgent")
        assert now_ms() >= moved
        # live now: an update is sent; moving its publish_at is refused
        before = rejected(tickerd, "bad_publish_at")
        upd = xadd(op="update", ref=a, text="a again")
        g = await live.recv()
        assert (g["type"], g["id"], g["ref"], g["text"], g["ts"]) == ("update", upd, a, "a again", moved)
        xadd(op="update", ref=a, text="later", publish_at=str(now_ms() + 5000))
        wait_until(lambda: rejected(tickerd, "bad_publish_at") == before + 1, 5,
                   what="bad_publish_at counted")
        # b was never anywhere; an update of it knows no such item
        xadd(op="update", ref=b, text="b again")
        await live.expect_silence(0.3)
        assert item_ids(tickerd) == [a] and not feeds_mention(tickerd, b)
        await live.close()
    run(main())


def test_restart_rebuilds_released_and_held(make_tickerd, xadd):
    td = make_tickerd()
    first = xadd(text="first")
    at_x, at_y = now_ms() + 800, now_ms() + 3500
    x = xadd(text="x", publish_at=str(at_x))
    y = xadd(text="y", publish_at=str(at_y))
    wait_until(lambda: x in item_ids(td), 5, what="x released")

    async def since_first():
        c, replayed, _ = await connect(td, f"since={first}")
        await c.close()
        return replayed
    before_items, before_since = items(td), run(since_first())
    assert [f["id"] for f in before_since] == [x] and before_since[0]["key"] == release_key(at_x, x)
    td.stop()
    td.start()
    # the same state from the stream alone: x live with ts = publish_at, y held
    assert items(td) == before_items and items(td)[-1]["ts"] == at_x
    assert run(since_first()) == before_since
    assert y not in item_ids(td)

    async def main():
        live, _, _ = await connect(td, "replay=0")
        f = await live.recv(timeout=6)
        assert f == released_frame(y, "y", at_y)
        await live.close()
    run(main())
    assert item_ids(td) == [first, x, y]


def test_since_across_the_release(tickerd, xadd):
    async def main():
        at = now_ms() + 1200
        held = xadd(text="held", publish_at=str(at))
        e1 = xadd(text="e1")
        # a client that saw e1 (newer than the held item), then went away
        c, replayed, _ = await connect(tickerd, "replay=10")
        assert [f["id"] for f in replayed] == [e1]
        await c.close()
        wait_until(lambda: held in item_ids(tickerd), 5, what="release")
        e2 = xadd(text="e2")
        key = release_key(at, held)
        # it gets the release once, in place, then e2
        c, replayed, marker = await connect(tickerd, f"since={e1}")
        assert [(f["id"], f.get("key")) for f in replayed] == [(held, key), (e2, None)]
        assert marker["gap"] is False
        await c.close()
        # one that saw the release resumes from its key: e2 alone
        c, replayed, _ = await connect(tickerd, f"since={key}")
        assert [f["id"] for f in replayed] == [e2]
        await c.close()
        # hello's last_id is where a replay=N client resumes from
        c = await WS.connect(tickerd, "replay=0")
        hello, _, _ = await c.start()
        assert hello["last_id"] == e2
        await c.close()
        # SSE: the id: line is the key; Last-Event-ID resumes from it
        _, replayed = sse_start(tickerd, f"/v1/events?since={e1}")
        assert [b["id"] for b in replayed] == [key, e2]
        _, replayed = sse_start(tickerd, "/v1/events", {"Last-Event-ID": key})
        assert [b["id"] for b in replayed] == [e2]
    run(main())


def test_bad_times_are_rejected_and_counted(tickerd, rds):
    base = now_ms()
    cases = [  # (publish_at, accepted)
        (str(base - 60001), False), (str(base - 60000), True),
        (str(base + 7 * DAY_MS + 1), False), (str(base + 7 * DAY_MS), True),
        ("2026-13-01T00:00:00Z", False), ("2026-12-01T18:00:00", False), ("soon", False),
    ]
    ids = []
    for n, (at, _) in enumerate(cases):
        ids.append(rds.xadd(STREAM, {"text": f"t{n}", "publish_at": at}, id=f"{base}-{n + 1}").decode())
    ids.append(rds.xadd(STREAM, {"json": json.dumps({"text": "j", "publish_at": base + 7 * DAY_MS + 1})},
                        id=f"{base}-20").decode())
    ids.append(rds.xadd(STREAM, {"op": "retract", "ref": ids[1], "publish_at": str(base)},
                        id=f"{base}-21").decode())
    wait_until(lambda: rejected(tickerd, "bad_publish_at") == 7, 5, what="7 rejects")
    # 60 s before its ID time: published at once, ts its ID time; 7 days after: held
    assert item_ids(tickerd) == [ids[1]] and items(tickerd)[0]["ts"] == base
    assert "bad_publish_at" in tickerd.log()


def test_held_items_are_bounded(tickerd, rds):
    far = now_ms() + DAY_MS
    pipe = rds.pipeline(transaction=False)
    for n in range(HELD_MAX):
        pipe.xadd(STREAM, {"text": f"h{n}", "publish_at": str(far)})
    ids = [i.decode() for i in pipe.execute()]
    wait_until(lambda: (tickerd.metric("tickerd_items_ingested_total") or 0) == HELD_MAX, 20,
               what="every held item ingested")
    assert rejected(tickerd, "embargo_full") == 0  # at the bound
    rds.xadd(STREAM, {"text": "one over", "publish_at": str(far)})
    wait_until(lambda: rejected(tickerd, "embargo_full") == 1, 5, what="one over rejected")
    rds.xadd(STREAM, {"op": "retract", "ref": ids[0]})  # one under again
    rds.xadd(STREAM, {"text": "room again", "publish_at": str(far)})
    wait_until(lambda: (tickerd.metric("tickerd_items_ingested_total") or 0) == HELD_MAX + 2, 5,
               what="retract and the new hold ingested")
    assert rejected(tickerd, "embargo_full") == 1
    assert item_ids(tickerd) == []


def ctl(redis_server, *args):
    return subprocess.run([TICKERCTL, "--redis", redis_server.url, *args],
                          capture_output=True, text=True, timeout=10)


def entry(rds, entry_id):
    [(_, fields)] = rds.xrange(STREAM, entry_id, entry_id)
    return {k.decode(): v.decode() for k, v in fields.items()}


def test_tickerctl_at_and_in(tickerd, redis_server, rds):
    r = ctl(redis_server, "publish", "--text", "at", "--at", "2099-01-01T00:00:00Z")
    assert r.returncode == 2 and "bad_publish_at" in r.stderr  # over 7 days ahead
    iso = time.strftime("%Y-%m-%dT%H:%M:%S.250Z", time.gmtime(time.time() + 3600))
    r = ctl(redis_server, "publish", "--text", "at", "--at", iso)
    assert r.returncode == 0, r.stderr
    assert entry(rds, r.stdout.strip()) == {"text": "at", "publish_at": iso}
    t0 = now_ms()
    r = ctl(redis_server, "publish", "--text", "soon", "--in", "1s")
    assert r.returncode == 0, r.stderr
    soon = r.stdout.strip()
    at = int(entry(rds, soon)["publish_at"])
    assert t0 + 1000 <= at <= now_ms() + 1000
    r = ctl(redis_server, "publish", "--text", "x", "--in", "10m")
    assert r.returncode == 0 and 590000 <= int(entry(rds, r.stdout.strip())["publish_at"]) - t0 <= 610000
    for bad in (["--in", "10"], ["--in", "m"], ["--in", "-5s"], ["--in", "8d"], ["--at", "tomorrow"],
                ["--in", "1m", "--at", iso]):
        r = ctl(redis_server, "publish", "--text", "x", *bad)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
    wait_until(lambda: soon in item_ids(tickerd), 5, what="--in 1s released")
    assert [i["ts"] for i in items(tickerd) if i["id"] == soon] == [at]


def test_post_v1_items_takes_and_checks_publish_at(make_tickerd):
    from test_publish import AUTH, post, token
    td = make_tickerd(AUTH)
    auth = {"Authorization": "Bearer " + token()}

    def ids():
        status, _, body = http_get(td.port, "/v1/items", auth)
        assert status == 200
        return [i["id"] for i in json.loads(body)["items"]]
    for at in (now_ms() - 61000, now_ms() + 7 * DAY_MS + 1000, "2026-12-01T18:00:00+01:00"):
        status, _, got = post(td.port, {"text": "x", "publish_at": at})
        assert status == 400 and "bad_publish_at" in json.dumps(got), (at, status, got)
    at = now_ms() + 1000
    status, _, got = post(td.port, {"text": "embargoed over HTTP", "publish_at": at})
    assert status == 201, got
    assert got["id"] not in ids()
    wait_until(lambda: got["id"] in ids(), 5, what="release")
    status, _, body = http_get(td.port, "/v1/items", auth)
    assert json.loads(body)["items"][-1]["ts"] == at
