"""tickerctl against a real Redis (and, for tail, a real tickerd): each
command, and each kind of rejected input with the daemon's own reason."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BUILD, STREAM

TICKERCTL = os.path.join(BUILD, "tickerctl")


def ctl(redis_server, *args, env=None):
    return subprocess.run([TICKERCTL, "--redis", redis_server.url, *args],
                          capture_output=True, text=True, timeout=10, env=env)


def entry(rds, entry_id):
    [(got_id, fields)] = rds.xrange(STREAM, entry_id, entry_id)
    return {k.decode(): v.decode() for k, v in fields.items()}


def test_publish_prints_the_id_and_writes_the_fields(redis_server, rds):
    r = ctl(redis_server, "publish", "--text", "  Drone strike in Toul  ", "--lang", "en",
            "--region", "mena,palestine", "--priority", "urgent", "--category", "politics",
            "--url", "https://example.org/a", "--source", "Correspondent", "--ttl", "600")
    assert r.returncode == 0, r.stderr
    entry_id = r.stdout.strip()
    assert rds.xlen(STREAM) == 1
    assert entry(rds, entry_id) == {
        "text": "  Drone strike in Toul  ", "lang": "en", "region": "mena,palestine",
        "priority": "urgent", "category": "politics", "url": "https://example.org/a",
        "source": "Correspondent", "ttl": "600"}


def test_update_and_retract_carry_op_and_ref(redis_server, rds):
    first = ctl(redis_server, "publish", "--text", "original").stdout.strip()
    upd = ctl(redis_server, "update", first, "--text", "corrected", "--priority", "flash")
    assert upd.returncode == 0, upd.stderr
    assert entry(rds, upd.stdout.strip()) == {"op": "update", "ref": first, "text": "corrected",
                                               "priority": "flash"}
    ret = ctl(redis_server, "retract", first, "--region", "mena")
    assert ret.returncode == 0, ret.stderr
    assert entry(rds, ret.stdout.strip()) == {"op": "retract", "ref": first, "region": "mena"}


@pytest.mark.parametrize("args, reason", [
    (["publish"], "missing_text"),
    (["publish", "--text", "   "], "missing_text"),
    (["publish", "--text", "x" * 1001], "text_too_long"),
    (["publish", "--text", "t", "--lang", "fr"], "bad_lang"),
    (["publish", "--text", "t", "--region", "mars"], "bad_region"),
    (["publish", "--text", "t", "--priority", "huge"], "bad_priority"),
    (["publish", "--text", "t", "--category", "gossip"], "bad_category"),
    (["publish", "--text", "t", "--url", "ftp://example.org"], "bad_url"),
    (["publish", "--text", "t", "--source", "s" * 201], "bad_source"),
    (["publish", "--text", "t", "--ttl", "0"], "bad_ttl"),
    (["publish", "--text", "t", "--ttl", "2592001"], "bad_ttl"),
    (["update", "not-an-id", "--text", "t"], "bad_ref"),
    (["update", "1-0"], "missing_text"),
    (["retract", "x-1"], "bad_ref"),
])
def test_rejected_input_gets_the_daemons_reason_and_exit_2(redis_server, rds, args, reason):
    r = ctl(redis_server, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"rejected: {reason}:" in r.stderr
    assert r.stdout == ""
    assert rds.exists(STREAM) == 0, "nothing written"


def test_usage_errors_exit_2(redis_server):
    assert ctl(redis_server).returncode == 2
    assert ctl(redis_server, "frobnicate").returncode == 2
    r = ctl(redis_server, "retract")
    assert r.returncode == 2 and "needs the ID" in r.stderr


def test_config_lists_apply(redis_server, rds, tmp_path):
    conf = tmp_path / "t.conf"
    conf.write_text("[lists]\nlanguages = en,fr\n[stream]\nkey = other:stream\n")
    r = ctl(redis_server, "-c", str(conf), "publish", "--text", "bonjour", "--lang", "fr")
    assert r.returncode == 0, r.stderr
    assert rds.xlen("other:stream") == 1
    bad = tmp_path / "bad.conf"
    bad.write_text("[lists]\nlanguages = en\n[nope]\nx = 1\n")
    r = ctl(redis_server, "-c", str(bad), "publish", "--text", "t")
    assert r.returncode == 2 and "unknown key" in r.stderr
    bad.write_text("[lists]\nlanguages = en,\n")  # one list rule everywhere
    r = ctl(redis_server, "-c", str(bad), "publish", "--text", "t")
    assert r.returncode == 2 and "empty element" in r.stderr


def test_redis_down_exits_1(tmp_path):
    r = subprocess.run([TICKERCTL, "--redis", "redis://127.0.0.1:1/0", "publish", "--text", "t"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "redis" in r.stderr


def test_tail_prints_items_and_json(make_tickerd, redis_server):
    td = make_tickerd()
    server = f"127.0.0.1:{td.port}"
    plain = subprocess.Popen([TICKERCTL, "tail", "--server", server, "--region", "mena"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    js = subprocess.Popen([TICKERCTL, "tail", "--server", server, "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # both subscribed
        first = ctl(redis_server, "publish", "--text", "In MENA", "--region", "mena",
                    "--priority", "urgent").stdout.strip()
        ctl(redis_server, "publish", "--text", "In Europe", "--region", "europe")
        ctl(redis_server, "retract", first)
        time.sleep(0.5)
    finally:
        for p in (plain, js):
            p.send_signal(signal.SIGINT)
    out_plain, _ = plain.communicate(timeout=5)
    out_json, _ = js.communicate(timeout=5)
    assert plain.returncode == 0 and js.returncode == 0
    lines = out_plain.splitlines()
    assert lines[0] == f"{first} item    en [mena] urgent: In MENA"
    assert lines[1].endswith(f"retract {first}")
    assert len(lines) == 2, "the europe item is filtered out"
    frames = [json.loads(l) for l in out_json.splitlines()]
    assert [f["type"] for f in frames] == ["hello", "replay", "item", "item", "retract"]
    assert frames[2]["id"] == first and frames[4]["ref"] == first


def test_tail_without_a_server_exits_1(tmp_path):
    r = subprocess.run([TICKERCTL, "tail", "--server", "127.0.0.1:1"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "cannot subscribe" in r.stderr
