"""The editors' console at /console/ (SPEC §3): the directory "console"
beside [server] static_dir (clients/console beside clients/web), with the
demo's headers (CORS, Cache-Control, nosniff) and a Content-Security-Policy
of its own; nothing outside that directory is reachable through it."""
import os

import pytest

from conftest import http_get, raw_request

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.abspath(os.path.join(HERE, "..", "..", "clients"))


@pytest.fixture
def shipped(make_tickerd):
    """tickerd serving the repository's clients/web, so /console/ is clients/console."""
    return make_tickerd(config={"server": {"static_dir": os.path.join(CLIENTS, "web")}})


@pytest.mark.parametrize("path,ctype,name", [
    ("/console/", "text/html", "index.html"),
    ("/console/index.html", "text/html", "index.html"),
    ("/console/console.js", "text/javascript", "console.js"),
    ("/console/validate.js", "text/javascript", "validate.js"),
    ("/console/console.css", "text/css", "console.css"),
])
def test_console_and_its_assets_are_served(shipped, path, ctype, name):
    status, hdrs, body = http_get(shipped.port, path)
    assert status == 200, (path, status, body[:200])
    with open(os.path.join(CLIENTS, "console", name), "rb") as f:
        assert body == f.read()
    assert hdrs["content-type"].startswith(ctype)
    assert hdrs["cache-control"] == "no-cache"
    assert hdrs["x-content-type-options"] == "nosniff"
    assert hdrs["access-control-allow-origin"] == "*"
    csp = hdrs["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert hdrs["referrer-policy"] == "no-referrer"


def test_console_has_the_demos_headers_and_its_imports_resolve(shipped):
    _, demo, _ = http_get(shipped.port, "/ticker.js")
    _, cons, _ = http_get(shipped.port, "/console/console.js")
    for h in ("cache-control", "x-content-type-options", "access-control-allow-origin"):
        assert demo[h] == cons[h], h
    assert "content-security-policy" not in demo  # the demo is embedded elsewhere
    # what the console page loads from beside it: ../ticker.js and ../ticker.css
    for path in ("/ticker.js", "/ticker.css", "/favicon.svg"):
        assert http_get(shipped.port, path)[0] == 200, path


def test_console_without_slash_redirects_and_head_works(shipped):
    status, hdrs, _ = raw_request(shipped.port, b"GET /console HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 301 and hdrs["location"] == "/console/"
    status, hdrs, body = raw_request(shipped.port, b"HEAD /console/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == b"" and hdrs["content-type"].startswith("text/html")
    assert http_get(shipped.port, "/consolex/")[0] == 404  # a prefix, not a path
    assert http_get(shipped.port, "/console.html")[0] == 404


@pytest.fixture
def console_td(make_tickerd):
    """A console directory beside static_dir, secrets around it."""
    td = make_tickerd(start=False)
    cdir = os.path.join(td.dir, "console")
    os.makedirs(os.path.join(cdir, "sub"))
    with open(os.path.join(cdir, "index.html"), "w") as f:
        f.write("<!doctype html><title>console</title>")
    with open(os.path.join(td.dir, "secret.txt"), "w") as f:
        f.write("top secret")
    with open(os.path.join(td.static_dir, "demo-only.txt"), "w") as f:
        f.write("secret of the demo dir")
    os.symlink(os.path.join(td.dir, "secret.txt"), os.path.join(cdir, "link.txt"))
    os.symlink(td.dir, os.path.join(cdir, "up"))
    return td.start()


def test_console_dir_is_the_sibling_of_static_dir(console_td):
    status, _, body = http_get(console_td.port, "/console/")
    assert status == 200 and body == b"<!doctype html><title>console</title>"


@pytest.mark.parametrize("path", [
    "/console/../../etc/passwd",
    "/console/../secret.txt",
    "/console/%2e%2e/secret.txt",
    "/console/%2E%2E/%2e%2e/etc/passwd",
    "/console/..%2fsecret.txt",
    "/console/%2e%2e%2fsecret.txt",
    "/console/.%2e/secret.txt",
    "/console/sub/../../secret.txt",
    "/console/..\\secret.txt",
    "/console/%5c..%5csecret.txt",
    "/console/link.txt",
    "/console/up/secret.txt",
    "/console/up/tickerd.conf",
    "/console/missing.js",
    "/console/sub",
    "/console/sub/",
    "/console//etc/passwd",
    "/console/../static/demo-only.txt",
    "/console/%2e%2e/static/demo-only.txt",
])
def test_console_traversal_is_404(console_td, path):
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    status, _, body = raw_request(console_td.port, req)
    assert status == 404, (path, status)
    assert b"secret" not in body and b"[server]" not in body and b"root:" not in body
    assert console_td.health()[0] == 200
