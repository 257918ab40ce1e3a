"""A fault-injecting HTTP proxy in front of moto's DynamoDB, for the fault-injection tests.

Point a process at it with `AWS_ENDPOINT_URL_DYNAMODB=<proxy.url>`. Every request is forwarded
to moto unless a rule matches it: a rule names the DynamoDB operation (`X-Amz-Target`), an
optional text the request body must contain, what to do, and how many requests it applies to.

Actions:
  throttle     answer 400 ProvisionedThroughputExceededException (nothing applied)
  error500     answer 500 InternalServerError (nothing applied)
  delay        wait `delay` seconds, then forward (a slow answer; the client may give up first)
  lose_answer  forward (the write is applied), then close the connection unanswered
  hold_before  signal `hit`, wait until released, then drop the request unapplied
               (the caller is killed while its request is on the way)
  hold_after   forward (applied), signal `hit`, wait until released, then drop the answer
               (the caller is killed after its write was applied, before it heard so)
  pass         forward, and signal `hit` (to know when a request went through)
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACTIONS = {"throttle", "error500", "delay", "lose_answer", "hold_before", "hold_after", "pass"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


@dataclass
class Rule:
    operation: str
    action: str
    contains: str | None = None
    times: int = 1
    delay: float = 0.0
    hits: int = 0
    hit: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_hit(self, timeout: float = 30.0) -> None:
        if not self.hit.wait(timeout):
            raise TimeoutError(f"no {self.operation} request containing {self.contains!r} reached the proxy in {timeout}s")

    def release(self) -> None:
        self.released.set()


class DynamoFaultProxy:
    def __init__(self, target: str):
        parsed = urllib.parse.urlparse(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, str]] = []  # (operation, action taken)
        # With `record = True`: (operation, request body, answer body) of each forwarded
        # request, for benchmarks that compute capacity units (moto does not report them).
        self.record = False
        self.exchanges: list[tuple[str, bytes, bytes]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The status line and headers, then the body, are two writes: with Nagle's
            # algorithm on, the second waits for the client's delayed ACK (~40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
                rule = proxy._match(operation, body)
                action = rule.action if rule else "forward"
                with proxy._lock:
                    proxy.seen.append((operation, action))
                if rule is None:
                    answer = proxy._forward("POST", self.path, self.headers, body)
                    if proxy.record:
                        with proxy._lock:
                            proxy.exchanges.append((operation, body, answer[2]))
                    return self._relay(*answer)
                if action == "throttle":
                    return self._error(400, "ProvisionedThroughputExceededException", "Injected throttle")
                if action == "error500":
                    return self._error(500, "InternalServerError", "Injected internal error")
                if action == "delay":
                    time.sleep(rule.delay)
                    return self._relay(*proxy._forward("POST", self.path, self.headers, body))
                if action == "hold_before":
                    rule.hit.set()
                    rule.released.wait()
                    return self._drop()
                answer = proxy._forward("POST", self.path, self.headers, body)
                if action == "lose_answer":
                    return self._drop()
                if action == "hold_after":
                    rule.hit.set()
                    rule.released.wait()
                    return self._drop()
                rule.hit.set()  # pass
                return self._relay(*answer)

            def _relay(self, status, headers, body):
                try:
                    self.send_response(status)
                    for k, v in headers:
                        if k.lower() not in HOP_BY_HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True

            def _error(self, status, kind, message):
                body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": message}).encode()
                self._relay(status, [("Content-Type", "application/x-amz-json-1.0")], body)

            def _drop(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def add(self, operation: str, action: str, contains: str | None = None, times: int = 1, delay: float = 0.0) -> Rule:
        """Apply `action` to the next `times` `operation` requests whose body contains `contains`."""
        assert action in ACTIONS, action
        rule = Rule(operation, action, contains, times, delay)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            for rule in self.rules:
                rule.release()
            self.rules.clear()

    def count(self, operation: str, action: str | None = None) -> int:
        with self._lock:
            return sum(1 for op, a in self.seen if op == operation and (action is None or a == action))

    def close(self) -> None:
        self.clear()
        self._server.shutdown()
        self._server.server_close()

    def _match(self, operation: str, body: bytes) -> Rule | None:
        text = body.decode("utf-8", "replace")
        with self._lock:
            for rule in self.rules:
                if rule.hits >= rule.times or rule.operation != operation:
                    continue
                if rule.contains is not None and rule.contains not in text:
                    continue
                rule.hits += 1
                return rule
        return None

    def _forward(self, method: str, path: str, headers, body: bytes):
        conn = http.client.HTTPConnection(*self.target, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(method, path, body=body, headers=forwarded)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()
