"""A token's exp holds for the whole connection (issue 12, SPEC §2 and §6):
at exp the client is closed 1008 "token expired" within a second, unless an
auth frame (or a subscribe with a token) renewed it; an auth frame changes
nothing but the token, and a bad one leaves the old token in force."""
import json
import struct
import time

import pytest

from conftest import RawWS, SSE
from test_security import SECRET, token


def open_ws(td, tok, query="replay=0"):
    ws = RawWS(td.port, f"/v1/ws?{query}&token={tok}", timeout=8)
    assert ws.status == 101
    assert ws.read_json()["type"] == "hello"
    assert ws.read_json()["type"] == "replay"
    return ws


def close_of(ws):
    """(code, reason) of the close frame, skipping pings."""
    while True:
        op, payload = ws.read_frame()
        if op == 8:
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


@pytest.fixture
def auth_td(make_tickerd):
    return make_tickerd({"auth": {"jwt_secret": SECRET}})


def test_expired_token_closes_1008_within_a_second(auth_td):
    exp = int(time.time()) + 2
    ws = open_ws(auth_td, token(exp_in=None, claims={"exp": exp}))
    code, reason = close_of(ws)
    late = time.time() - exp
    assert (code, reason) == (1008, "token expired")
    assert -0.05 <= late <= 1.5, late
    ws.close()


def test_auth_frame_renews_the_token(auth_td):
    exp = int(time.time()) + 2
    ws = open_ws(auth_td, token(exp_in=None, claims={"exp": exp, "regions": ["mena"]}),
                 "replay=0&region=mena")
    fresh = int(time.time()) + 5
    ws.send_frame(1, json.dumps({"type": "auth",
                                 "token": token(exp_in=None, claims={"exp": fresh})}).encode())
    assert ws.read_json() == {"type": "auth", "exp": fresh}
    time.sleep(exp - time.time() + 1.2)  # past the old exp: still open
    ws.send_frame(1, b'{"type":"ping"}')
    assert ws.read_json()["type"] == "pong"
    code, reason = close_of(ws)
    assert (code, reason) == (1008, "token expired")
    assert time.time() >= fresh - 0.05
    ws.close()


@pytest.mark.parametrize("bad,code", [
    ("not-a-token", "unauthorized"),
    (None, "forbidden"),  # a valid token that does not allow the filter in force
])
def test_bad_auth_frame_keeps_the_old_token(auth_td, bad, code):
    exp = int(time.time()) + 3
    ws = open_ws(auth_td, token(exp_in=None, claims={"exp": exp}), "replay=0&region=mena")
    if bad is None:
        bad = token(exp_in=None, claims={"exp": exp + 60, "regions": ["europe"]})
    ws.send_frame(1, json.dumps({"type": "auth", "token": bad}).encode())
    err = ws.read_json()
    assert err["type"] == "error" and err["code"] == code
    assert close_of(ws) == (1008, "token expired")  # the old exp still holds
    assert abs(time.time() - exp) < 1.5
    ws.close()


def test_subscribe_with_a_token_renews_too(auth_td):
    exp = int(time.time()) + 2
    ws = open_ws(auth_td, token(exp_in=None, claims={"exp": exp}))
    fresh = int(time.time()) + 4
    ws.send_frame(1, json.dumps({"type": "subscribe", "region": "mena",
                                 "token": token(exp_in=None, claims={"exp": fresh})}).encode())
    assert ws.read_json()["type"] == "hello"
    time.sleep(exp - time.time() + 1.2)
    ws.send_frame(1, b'{"type":"ping"}')
    assert ws.read_json()["type"] == "pong"
    assert close_of(ws) == (1008, "token expired")
    ws.close()


def test_sse_stream_ends_at_exp(auth_td):
    exp = int(time.time()) + 2
    sse = SSE(auth_td.port, f"/v1/events?replay=0&token={token(exp_in=None, claims={'exp': exp})}")
    sse.read_until_eof(timeout=6)
    assert time.time() - exp < 1.5
    sse.close()


def test_auth_frame_with_auth_off_is_an_error(tickerd):
    ws = RawWS(tickerd.port, "/v1/ws?replay=0")
    ws.read_json()
    ws.read_json()
    ws.send_frame(1, b'{"type":"auth","token":"x"}')
    assert ws.read_json()["code"] == "bad_request"
    ws.close()
