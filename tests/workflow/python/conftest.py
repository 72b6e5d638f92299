"""A `qstash dev` server and a workflow app (upstash-workflow's serve() on http.server), both on
127.0.0.1, for the Python workflow suite."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from qstash import QStash, Receiver
from upstash_workflow import serve
from upstash_workflow.workflow_types import _SyncRequest

for k in ("QSTASH_URL", "QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY", "UPSTASH_WORKFLOW_URL"):
    os.environ.pop(k, None)

TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
CURRENT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("QSTASH_BIN", str(REPO / "target" / "debug" / "qstash"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_env() -> dict:
    if os.environ.get("QSTASH_TEST_BACKEND", "").lower() != "postgres":
        return {}
    base = os.environ.get("QSTASH_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    prefix = os.environ.get("QSTASH_TEST_SCHEMA_PREFIX", "qt_")
    schema = f"{prefix}wfpy_{secrets.token_hex(6)}"
    sep = "&" if "?" in base else "?"
    return {"QSTASH_DATABASE_URL": f"{base}{sep}options=-csearch_path%3D{schema}"}


@pytest.fixture(scope="session")
def server():
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="qstash-workflow-py-")
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen(
        [BIN, "dev", "--port", str(port), "--data-dir", os.path.join(tmp, "data")],
        stdout=log,
        stderr=log,
        env={"RUST_LOG": "info", **os.environ, **database_env()},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/v2/keys", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(open(os.path.join(tmp, "server.log")).read()[-4000:])
    yield base
    proc.terminate()
    proc.wait(10)
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


class App:
    """Serves workflow routes and plain routes; counts hits per path."""

    def __init__(self, server: str):
        self.server = server
        self.port = free_port()
        self.hits: dict = {}
        self.routes: dict = {}
        self.plain: dict = {}
        self.client = QStash(TOKEN, base_url=server)
        self.receiver = Receiver(current_signing_key=CURRENT, next_signing_key=NEXT)
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                path = self.path.split("?")[0]
                app.hits[path] = app.hits.get(path, 0) + 1
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                if path in app.plain:
                    status, out = app.plain[path](body)
                    self._reply(status, out, {"content-type": "application/json"})
                    return
                handler = app.routes.get(path)
                if handler is None:
                    self._reply(404, "no route", {})
                    return
                request = _SyncRequest(
                    body=body,
                    headers=httpx.Headers(dict(self.headers)),
                    method="POST",
                    url=app.url(path),
                )
                response = handler(request)
                self._reply(response.status, response.body, response.headers or {})

            do_GET = do_POST

            def _reply(self, status, body, headers):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, **options):
        def add(fn):
            self.routes[path] = serve(
                fn, qstash_client=self.client, receiver=self.receiver, url=self.url(path), env={}, **options
            )["handler"]
            return fn

        return add

    def start(self, path: str, payload) -> str:
        """Starts a run the way the SDK documents for Python: a QStash message to the endpoint
        (its signature is checked), which then triggers the run. Answers the run's id."""
        self.client.message.publish_json(url=self.url(path), body=payload)
        deadline = time.time() + 20
        while time.time() < deadline:
            r = httpx.get(
                f"{self.server}/v2/workflows/logs",
                params={"workflowUrl": self.url(path), "workflowUrlExactMatch": "true"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            runs = r.json()["runs"]
            if runs:
                return runs[0]["workflowRunId"]
            time.sleep(0.05)
        raise AssertionError(f"no run started at {path}")

    def run(self, run_id: str, state: str, timeout: float = 20):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            r = httpx.get(
                f"{self.server}/v2/workflows/logs",
                params={"workflowRunId": run_id},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            runs = r.json()["runs"]
            last = runs[0]["workflowState"] if runs else None
            if last == state:
                return runs[0]
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} not in {state} (last {last})")


@pytest.fixture
def app(server):
    a = App(server)
    yield a
    a.httpd.shutdown()
