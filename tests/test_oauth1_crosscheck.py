"""Independent cross-checks of OAuth1, both directions, so our client and our emulator cannot
agree on the same mistake:

1. requests signed by our Rust client are verified by Python's `oauthlib`;
2. requests signed by `requests_oauthlib.OAuth1(key, secret, signature_type='query')` — exactly
   the widely copied Python recipe — are accepted by our emulator, and a wrong secret is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint
from requests_oauthlib import OAuth1

KEY, SECRET = "cross-key", "cross-secret-Ω"  # non-ASCII: percent-encoding must agree too
WORKFLOW = "5f3c0e5a2c1b0a0001d1e001"


class Validator(RequestValidator):
    enforce_ssl = False
    safe_characters = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")

    @property
    def client_key_length(self):
        return (3, 50)

    @property
    def nonce_length(self):
        return (6, 64)

    def check_client_key(self, client_key):
        return True

    def check_nonce(self, nonce):
        return True

    def validate_client_key(self, client_key, request):
        return client_key == KEY

    def get_client_secret(self, client_key, request):
        return self.secret

    def validate_timestamp_and_nonce(self, client_key, timestamp, nonce, request, request_token=None, access_token=None):
        return True

    @property
    def dummy_client(self):
        return "dummy"


def oauthlib_server(secret: str):
    validator = Validator()
    validator.secret = secret
    endpoint = SignatureOnlyEndpoint(validator)
    seen: list[tuple[str, bool]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _handle(self, method: str):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            port = self.server.server_address[1]
            uri = f"http://127.0.0.1:{port}{self.path}"
            # The JSON body is not part of an OAuth1 signature: pass no body to oauthlib.
            valid, _ = endpoint.validate_request(uri, http_method=method, body=None, headers={})
            seen.append((self.path.split("?")[0], valid))
            if not valid:
                payload, status = json.dumps({"message": "oauthlib: invalid signature"}).encode(), 401
            elif method == "GET":
                payload, status = b"[]", 200
            else:
                payload = json.dumps({"id": "job-1", "appId": WORKFLOW, "status": "Queued", "disposition": "None"}).encode()
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def run_cli(router_bin, url, *args, secret=SECRET):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}
    env.update({"ALTERYX_URL": url, "ALTERYX_KEY": KEY, "ALTERYX_SECRET": secret})
    return subprocess.run([str(router_bin), *args], env=env, capture_output=True, text=True, timeout=60)


def test_our_client_signatures_are_valid_for_oauthlib(router_bin):
    server, seen = oauthlib_server(SECRET)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/gallery/api/"
        out = run_cli(router_bin, url, "--json", "workflows", "list")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == []
        out = run_cli(router_bin, url, "--json", "jobs", "submit", "--workflow", WORKFLOW, "-q", "InputPath=s3://b/a b+c.csv", "--priority", "low")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["id"] == "job-1"
        assert seen == [("/gallery/api/v1/workflows/subscription/", True), (f"/gallery/api/v1/workflows/{WORKFLOW}/jobs/", True)]
        # The check can fail: a client with the wrong secret is refused by oauthlib.
        out = run_cli(router_bin, url, "workflows", "list", secret="not-the-secret")
        assert out.returncode != 0 and "401" in out.stderr
        assert seen[-1] == ("/gallery/api/v1/workflows/subscription/", False)
        assert "not-the-secret" not in out.stderr
    finally:
        server.shutdown()


def test_the_python_recipe_is_accepted_by_our_emulator(router_bin):
    from conftest import start_emulator

    emu = start_emulator(router_bin, "--key", KEY, "--secret", SECRET)
    try:
        base = emu.gallery_url
        auth = OAuth1(KEY, SECRET, signature_type="query")
        r = requests.get(base + "v1/workflows/subscription/", auth=auth, timeout=10)
        assert r.status_code == 200, r.text
        assert WORKFLOW in [w["id"] for w in r.json()]
        questions = [{"name": "InputPath", "value": "s3://acme-landing/incoming/受信 a+b.csv"}, {"name": "FileName", "value": "受信 a+b.csv"}]
        r = requests.post(base + f"v1/workflows/{WORKFLOW}/jobs/", auth=auth, json={"questions": questions}, timeout=10)
        assert r.status_code == 200, r.text
        [job] = emu.jobs()
        assert job["id"] == r.json()["id"]
        assert [tuple(q) for q in job["questions"]] == [(q["name"], q["value"]) for q in questions]
        # And the emulator can fail: a wrong secret, or a replayed nonce, is refused.
        r = requests.get(base + "v1/workflows/subscription/", auth=OAuth1(KEY, "wrong", signature_type="query"), timeout=10)
        assert r.status_code == 401 and "invalid signature" in r.json()["message"]
        prepared = requests.Request("GET", base + "v1/workflows/subscription/", auth=auth).prepare()
        s = requests.Session()
        assert s.send(prepared, timeout=10).status_code == 200
        replay = s.send(prepared, timeout=10)
        assert replay.status_code == 401 and "nonce" in replay.json()["message"]
    finally:
        emu.proc.terminate()
        emu.proc.wait(10)


def test_fixed_vector_in_the_rust_unit_test_is_what_oauthlib_computes():
    """`alteryx/auth.rs` pins our signer to a constant for one awkward request (non-default port,
    percent-encoded path, a parameter with a space, a non-ASCII secret). Recompute it here with
    oauthlib so the constant is a reference value, not whatever our signer printed once."""
    import pathlib
    import re

    from oauthlib.oauth1 import SIGNATURE_TYPE_QUERY, Client
    from urllib.parse import parse_qs, urlsplit

    source = (pathlib.Path(__file__).parent.parent / "runtime/core/src/alteryx/auth.rs").read_text()
    match = re.search(r'OAUTHLIB_VECTOR_SIGNATURE: &str = "([^"]+)"', source)
    assert match, "OAUTHLIB_VECTOR_SIGNATURE not found in runtime/core/src/alteryx/auth.rs"
    client = Client(
        "cross-key",
        client_secret="cross-secret-\u03a9",
        signature_type=SIGNATURE_TYPE_QUERY,
        nonce="fixednonce123",
        timestamp="1700000000",
    )
    uri, _, _ = client.sign(
        "http://alteryx.example.com:8443/gallery/api/v1/workflows/5f3c%20x/jobs/"
        "?direction=desc&limit=5&sortField=create%20Date",
        http_method="GET",
    )
    [signature] = parse_qs(urlsplit(uri).query)["oauth_signature"]
    assert signature == match.group(1)
