"""The HTTP service, started on a free localhost port: answers, 4xx errors, graceful stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(port: int, path: str, body: object = None, raw: bytes | None = None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def server(tiny_bundle):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "recbole_sasrec_ext", "serve", "--bundle", str(tiny_bundle[1]),
         "--port", str(port), "--max-wait-ms", "5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _call(port, "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_answers(server):
    _, port = server
    status, one = _call(port, "/recommend", {"sequence": ["1", "2", "zz"], "k": 3})
    assert status == 200 and len(one["items"]) == 3 and one["unknown"] == ["zz"]
    status, many = _call(port, "/recommend", [{"sequence": ["1", "2"], "k": 3},
                                              {"sequence": [], "k": 2}])
    assert status == 200 and many[0]["items"] == one["items"]
    assert many[1]["fallback"] == "popular" and len(many[1]["items"]) == 2
    status, similar = _call(port, "/similar", {"item": "3", "k": 2})
    assert status == 200 and len(similar["items"]) == 2
    assert _call(port, "/health")[1]["status"] == "ok"
    assert _call(port, "/model")[1]["dataset"]["name"] == "tiny"


@pytest.mark.parametrize("path, body, raw, status, message", [
    ("/recommend", None, b"{not json", 400, "body is not valid JSON"),
    ("/recommend", {"sequence": "1,2"}, None, 422, "'sequence' must be a list of item tokens"),
    ("/recommend", {"sequence": ["1"], "k": 10**9}, None, 422, "'k' must be in [1, 1000]"),
    ("/recommend", {"sequence": ["1"], "k": "5"}, None, 422, "'k' must be an integer"),
    ("/recommend", {"sequence": ["1"] * 10_001}, None, 422, "more than the limit 10000"),
    ("/recommend", {"seq": ["1"]}, None, 422, "unknown key 'seq'"),
    ("/recommend", [{"sequence": ["1"]}] * 300, None, 413, "more than the limit 256"),
    ("/similar", {"item": "zz"}, None, 404, "unknown item token: 'zz'"),
    ("/nowhere", {}, None, 404, "Not Found"),
])
def test_bad_requests_are_4xx_with_one_message(server, path, body, raw, status, message):
    proc, port = server
    got_status, got = _call(port, path, body, raw)
    assert got_status == status and set(got) == {"error"} and message in got["error"]
    assert "Traceback" not in got["error"] and proc.poll() is None


def test_too_large_body_is_413_from_the_headers(server):
    """The server answers from Content-Length alone, before the client sends the body (a client
    that keeps writing may see the connection closed, as with any server that refuses a body)."""
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n")
        head, _, body = conn.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert json.loads(body) == {"error": "request body larger than 1048576 bytes"}


def test_graceful_shutdown(server):
    proc, port = server
    assert _call(port, "/health")[0] == 200
    proc.send_signal(signal.SIGTERM)
    # uvicorn finishes the requests in flight, runs the shutdown (the batcher drains), then
    # re-raises the signal it caught: the exit status is that of SIGTERM
    assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Traceback" not in proc.stderr.read()
    with pytest.raises(OSError):
        _call(port, "/health")
