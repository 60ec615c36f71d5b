"""Pins (SPEC §1 `pin`, issue 14): a pinned item carries "pinned":true, and
replay=N (and /v1/items) includes the matching pinned items on top of the
N newest others, however old; unpin (an update with pin 0, no text needed),
retract and expiry take it out. tickerctl publish --pin, pin, unpin."""
import json
import time

from conftest import WS, http_get, run, wait_until
from test_tickerctl import ctl


def test_pinned_item_rides_on_top_of_the_replay(tickerd, redis_server, xadd):
    r = ctl(redis_server, "publish", "--text", "top story", "--pin", "--region", "mena")
    assert r.returncode == 0, r.stderr
    top = r.stdout.strip()
    others = [xadd(text=f"other {i}") for i in range(10)]
    tickerd.wait_ingested(others[-1])

    async def replay(query):
        ws = await WS.connect(tickerd, query)
        hello, frames, marker = await ws.start()
        await ws.close()
        return frames, marker

    frames, marker = run(replay("replay=3"))
    assert [f["id"] for f in frames] == [top] + others[-3:]
    assert frames[0]["pinned"] is True and all("pinned" not in f for f in frames[1:])
    assert marker["count"] == 4
    # replay=0: the pinned item alone; a filter it does not match: none
    frames, _ = run(replay("replay=0"))
    assert [f["id"] for f in frames] == [top]
    frames, _ = run(replay("replay=0&region=europe"))
    assert frames == []
    # /v1/items too
    items = json.loads(http_get(tickerd.port, "/v1/items?limit=2")[2])["items"]
    assert [i["id"] for i in items] == [top] + others[-2:]

    # unpin: the update frame reaches the client that shows it, without pinned
    async def unpin():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        r = ctl(redis_server, "unpin", top)
        assert r.returncode == 0, r.stderr
        frame = await ws.recv()
        await ws.close()
        return frame
    frame = run(unpin())
    assert frame["type"] == "update" and frame["ref"] == top and "pinned" not in frame
    assert frame["text"] == "top story"  # the rest of the item kept
    frames, _ = run(replay("replay=0"))
    assert frames == []
    # pin again, then retract: gone from the replay
    assert ctl(redis_server, "pin", top).returncode == 0
    wait_until(lambda: len(run(replay("replay=0"))[0]) == 1, 5, what="pinned again")
    assert ctl(redis_server, "retract", top).returncode == 0
    wait_until(lambda: run(replay("replay=0"))[0] == [], 5, what="the retract")


def test_bad_pin_is_rejected(tickerd, rds, xadd):
    before = tickerd.metric("tickerd_items_rejected_total", reason="bad_pin") or 0
    rds.xadd("ticker:breaking", {"text": "t", "pin": "yes"})
    wait_until(lambda: (tickerd.metric("tickerd_items_rejected_total", reason="bad_pin") or 0)
               == before + 1, 5, what="bad_pin counted")
    assert "pin 'yes' is not 0 or 1" in tickerd.log()
