"""Shared helpers for the Python SDK compatibility suite.

Everything here talks to 127.0.0.1 only:
- QStashServer starts `$QSTASH_BIN dev --port P --data-dir D` and waits for GET /v2/keys.
- Sink is a local HTTP server that records every delivery and can be scripted to fail.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import httpx

# WIRE.md section 11: the four fixed dev users.
DEFAULT_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
DEFAULT_CURRENT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEFAULT_NEXT = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"

USER1_TOKEN = "eyJVc2VySUQiOiJ0ZXN0VXNlcjEiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9"
USER1_CURRENT = "sig_7GVPjvuwsfqF65iC8fSrs1dfYruM"
USER1_NEXT = "sig_5NoELc3EFnZn4DVS5bDs2Nk4b7Ua"

USER2_TOKEN = "eyJVc2VySUQiOiJ0ZXN0VXNlcjIiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9"
USER2_CURRENT = "sig_6jWGaWRxHsw4vMSPJprXadyvrybF"
USER2_NEXT = "sig_7qHbvhmahe5GwfePDiS5Lg3pi6Qx"

USER3_TOKEN = "eyJVc2VySUQiOiJ0ZXN0VXNlcjMiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9"
USER3_CURRENT = "sig_5T8FcSsynBjn9mMLBsXhpacRovJf"
USER3_NEXT = "sig_7GFR4YaDshFcqsxWRZpRB161jguD"

# Which dev user is used for what, so tests never step on each other:
#   defaultUser: almost everything
#   testUser1:   "user B" in the isolation tests (never publishes)
#   testUser2:   cancel_all (exact count over the whole account)
#   testUser3:   signing-key rotation

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "qstash"

SIG_KEY_RE = re.compile(r"^sig_[1-9A-HJ-NP-Za-km-z]{28}$")
STATUS_RE = re.compile(r"Request failed with status: (\d{3})")


def now_ms() -> int:
    return int(time.time() * 1000)


def uid() -> str:
    return uuid.uuid4().hex[:16]


def error_status(exc: BaseException) -> int:
    """Extract the HTTP status from a qstash.errors.QStashError raised by the PY SDK."""
    m = STATUS_RE.search(str(exc))
    assert m, f"SDK error does not carry an HTTP status: {exc!r}"
    return int(m.group(1))


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_jwt(token: str) -> Tuple[dict, dict]:
    """Decode (without verifying) a JWT into (header, claims)."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a JWT: {token!r}"
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))


# --------------------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port P such that P+1 is free too (the dev server may open a log server on P+1)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65535 and _port_free(port + 1):
            return port
    raise RuntimeError("could not find two consecutive free ports")


class QStashServer:
    def __init__(self, bin_path: Optional[str] = None) -> None:
        self.bin_path = bin_path or os.environ.get("QSTASH_BIN") or str(DEFAULT_BIN)
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.tmp = ""
        self.log_path = ""
        self.schema = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def database_env(self) -> Dict[str, str]:
        """With QSTASH_TEST_BACKEND=postgres, the server's database: QSTASH_TEST_DATABASE_URL (default the
        local server) with a schema of its own, kept across restarts (the server creates it)."""
        if os.environ.get("QSTASH_TEST_BACKEND", "").lower() != "postgres":
            return {}
        if not self.schema:
            prefix = os.environ.get("QSTASH_TEST_SCHEMA_PREFIX", "qt_")
            self.schema = prefix + "py_" + os.urandom(6).hex()
        base = os.environ.get("QSTASH_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        sep = "&" if "?" in base else "?"
        return {"QSTASH_DATABASE_URL": f"{base}{sep}options=-csearch_path%3D{self.schema}"}

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return "<no log>"

    def start(self, timeout: float = 20.0) -> "QStashServer":
        if not os.path.isfile(self.bin_path) or not os.access(self.bin_path, os.X_OK):
            raise RuntimeError(
                f"qstash server binary not found at {self.bin_path} (set QSTASH_BIN or build it first)"
            )
        # A restart keeps the port and the data directory.
        if not self.tmp:
            self.port = free_port_pair()
            self.tmp = tempfile.mkdtemp(prefix="qstash-compat-py-")
            os.makedirs(os.path.join(self.tmp, "data"))
        data_dir = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "server.log")
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.update(self.database_env())
        self.proc = subprocess.Popen(
            [self.bin_path, "dev", "--port", str(self.port), "--data-dir", data_dir],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"qstash dev exited early with code {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(
                    f"{self.base_url}/v2/keys",
                    headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
                    timeout=1.0,
                )
                last = r.status_code
                if r.status_code == 200:
                    return self
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"qstash dev did not answer GET /v2/keys with 200 within {timeout}s (last: {last})")

    def kill9(self) -> None:
        """Kills the server without warning, keeping its data for a restart."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.tmp and not os.environ.get("QSTASH_COMPAT_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def raw(
        self,
        method: str,
        path: str,
        *,
        token: Optional[str] = DEFAULT_TOKEN,
        headers: Optional[Dict[str, str]] = None,
        content: Optional[bytes] = None,
    ) -> httpx.Response:
        """A raw API call (for checks the SDK cannot express). `path` is sent unencoded."""
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.base_url + path, headers=h, content=content, timeout=10.0)


# --------------------------------------------------------------------------------------
# Sink
# --------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    sleep: float = 0.0


@dataclass
class Record:
    method: str
    target: str  # path + query exactly as received
    path: str
    query: str
    header_list: List[Tuple[str, str]]
    body: bytes
    t: float  # arrival time (time.time())

    def header(self, name: str) -> Optional[str]:
        vals = self.headers_all(name)
        return vals[-1] if vals else None

    def headers_all(self, name: str) -> List[str]:
        n = name.lower()
        return [v for k, v in self.header_list if k.lower() == n]

    def header_names_lower(self) -> List[str]:
        return [k.lower() for k, _ in self.header_list]


class Sink:
    """Records every request; per-path scripts decide the replies (default: 200 "ok")."""

    def __init__(self) -> None:
        self.records: List[Record] = []
        self.cond = threading.Condition()
        self.scripts: Dict[str, List[Reply]] = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # silence
                pass

            def _read_body(self) -> bytes:
                te = (self.headers.get("Transfer-Encoding") or "").lower()
                if "chunked" in te:
                    out = b""
                    while True:
                        line = self.rfile.readline().strip()
                        size = int(line.split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self) -> None:
                t = time.time()
                body = self._read_body()
                parsed = urllib.parse.urlsplit(self.path)
                rec = Record(
                    method=self.command,
                    target=self.path,
                    path=parsed.path,
                    query=parsed.query,
                    header_list=list(self.headers.items()),
                    body=body,
                    t=t,
                )
                with sink.cond:
                    sink.records.append(rec)
                    script = sink.scripts.get(parsed.path)
                    reply = script.pop(0) if script else Reply()
                    sink.cond.notify_all()
                if reply.sleep:
                    time.sleep(reply.sleep)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(reply.body)
                except OSError:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, replies: List[Reply]) -> None:
        with self.cond:
            self.scripts[path] = list(replies)

    def requests(self, path: str) -> List[Record]:
        with self.cond:
            return [r for r in self.records if r.path == path]

    def wait_for(self, path: str, n: int = 1, timeout: float = 10.0) -> List[Record]:
        deadline = time.time() + timeout
        with self.cond:
            while True:
                got = [r for r in self.records if r.path == path]
                if len(got) >= n:
                    return got
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(
                        f"sink: expected >= {n} request(s) on {path} within {timeout}s, got {len(got)}"
                    )
                self.cond.wait(left)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(pred, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
