"""Requests that carry a body, and POST /v1/items (SPEC §3): publishing over
HTTP with the stream's validation, tokens, Idempotency-Key across nodes,
and the limits on the body (docs/protocol.md)."""
import os
import socket
import time

import pytest

from conftest import raw_request


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_idle(td, seconds=2.0, budget=0.3):
    """The worker (workers = 1: the process itself) stays idle."""
    c0 = cpu_seconds(td.proc.pid)
    time.sleep(seconds)
    used = cpu_seconds(td.proc.pid) - c0
    assert used < budget, f"tickerd used {used:.2f} s of CPU in {seconds} s: a busy loop"


def send_then_body(port, head: bytes, body: bytes, pause=0.3, timeout=5):
    """The head, a pause, then the body: lws meets the body on the socket,
    not in what the door read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        time.sleep(pause)
        s.sendall(body)
        return s.recv(65536)


# --------------------------------------------------------------------------
# any request with a body (the spin on main: lws 4.1.6 re-read the head the
# door handed it as the body, forever)


@pytest.mark.parametrize("method,path,status", [
    ("POST", "/healthz", 405),
    ("PUT", "/v1/items", 405),
    ("POST", "/metrics", 405),
    ("GET", "/healthz", 400),
    ("HEAD", "/healthz", 400),
    ("OPTIONS", "/v1/items", 400),
])
def test_a_body_gets_an_answer_and_no_busy_loop(tickerd, method, path, status):
    req = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx").encode()
    got, headers, _ = raw_request(tickerd.port, req)
    assert got == status, (method, path, got)
    assert headers.get("connection", "").lower() == "close"
    assert_idle(tickerd)
    assert tickerd.health()[0] == 200


def test_a_body_sent_after_the_head_gets_an_answer_and_no_busy_loop(tickerd):
    head = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n"
    answer = send_then_body(tickerd.port, head, b"x")
    assert answer.startswith(b"HTTP/1.1 405 "), answer[:80]
    assert b"\r\nConnection: close\r\n" in answer
    assert_idle(tickerd)


def test_chunked_body_is_411(tickerd):
    req = (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"1\r\nx\r\n0\r\n\r\n")
    status, headers, _ = raw_request(tickerd.port, req)
    assert status == 411
    assert headers.get("connection") == "close"
    assert_idle(tickerd, 1.0)


@pytest.mark.parametrize("cl", ["x", "-1", "1, 2", "99999999999999999999999"])
def test_bad_content_length_is_400(tickerd, cl):
    req = f"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\n".encode()
    status, headers, _ = raw_request(tickerd.port, req)
    assert status == 400, cl
    assert headers.get("connection") == "close"


def test_two_content_lengths_are_400(tickerd):
    req = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"
    status, _, _ = raw_request(tickerd.port, req)
    assert status == 400


def test_a_body_on_a_later_request_of_the_connection(tickerd):
    """The door sees only a connection's first request; lws reads the
    later ones itself."""
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
        assert s.recv(65536).startswith(b"HTTP/1.1 405 ")
    assert_idle(tickerd, 1.0)
