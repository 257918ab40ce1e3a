"""A Lambda Runtime API server on loopback, for driving real Lambda binaries in tests.

It implements the runtime side of https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html:
`GET /2018-06-01/runtime/invocation/next` hands out queued events (with the
`Lambda-Runtime-*` headers), and `POST .../invocation/{id}/response|error` and
`POST .../init/error` record what the function answered. Start the function process with
`AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>` and call `invoke(payload)`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Result:
    request_id: str
    ok: bool
    body: Any
    raw: bytes
    received_at: float = field(default_factory=time.monotonic)


class RuntimeApi:
    def __init__(self, function_name: str = "alteryx-router", timeout_ms: int = 60_000):
        self.function_name = function_name
        self.timeout_ms = timeout_ms
        self._events: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
        self._results: dict[str, Result] = {}
        self._cond = threading.Condition()
        self.init_error: Any = None
        self.next_calls = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self._send(404, b'{"errorMessage":"not found"}')
                with api._cond:
                    api.next_calls += 1
                    api._cond.notify_all()
                request_id, body = api._events.get()
                deadline = int(time.time() * 1000) + api.timeout_ms
                self._send(
                    200,
                    body,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:us-east-1:111122223333:function:{api.function_name}",
                        "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                    },
                )

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if parts == ["init", "error"]:
                    with api._cond:
                        api.init_error = body
                        api._cond.notify_all()
                    return self._send(202, b'{"status":"OK"}')
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    result = Result(parts[1], parts[2] == "response", body, raw)
                    with api._cond:
                        api._results[parts[1]] = result
                        api._cond.notify_all()
                    return self._send(202, b'{"status":"OK"}')
                return self._send(404, b'{"errorMessage":"not found"}')

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def submit(self, payload: Any) -> str:
        """Queue an event; returns its request id."""
        request_id = str(uuid.uuid4())
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._events.put((request_id, body))
        return request_id

    def wait(self, request_id: str, timeout: float = 60.0) -> Result:
        deadline = time.monotonic() + timeout
        with self._cond:
            while request_id not in self._results:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer for invocation {request_id} in {timeout}s (init error: {self.init_error})")
                self._cond.wait(left)
            return self._results[request_id]

    def invoke(self, payload: Any, timeout: float = 60.0) -> Result:
        return self.wait(self.submit(payload), timeout)

    def wait_for_next_calls(self, n: int, timeout: float = 30.0) -> None:
        """Wait until the function(s) have asked for `n` events in total (they are ready)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.next_calls < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"functions asked for {self.next_calls} of {n} events (init error: {self.init_error})")
                self._cond.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
