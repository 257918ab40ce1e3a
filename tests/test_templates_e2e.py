"""Richer templates and job placement end to end, through the real `bootstrap` and the CLI:
objects really put into moto's S3 with user metadata; S3 reached through a counting proxy so
the test sees every HEAD the function makes; the pre-signed URL fetched over HTTP and compared
with the object's bytes; key captures and time formats; worker tag and credential id arriving
at the emulator on v3 and refused on v1; `rules validate` warning about secrets the deployed
functions may not read."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from conftest import start_emulator, unique
from test_lambda_e2e import SALES_WORKFLOW, eventbridge, function, outcomes, stack  # noqa: F401 (fixtures)

CREDENTIAL = "6543210fedcba98765430001"
QUESTIONS = ["Rule", "InputUrl", "Customer", "Batch", "Region", "Date", "Day", "InputPath", "Name"]


@pytest.fixture()
def emulator(router_bin, tmp_path):
    """The emulator with a workflow asking these rules' questions, one worker tag and one
    credential it knows (it refuses others, as a server would)."""
    workflows = tmp_path / "workflows.json"
    workflows.write_text(json.dumps({
        "job_seconds": 1,
        "worker_tags": ["gpu"],
        "credential_ids": [CREDENTIAL],
        "workflows": [{"id": SALES_WORKFLOW, "name": "Sales", "outcome": "Success", "questions": [{"name": q} for q in QUESTIONS]}],
    }))
    emu = start_emulator(router_bin, "--workflows", str(workflows))
    yield emu
    emu.proc.terminate()
    emu.proc.wait(10)


class CountingProxy:
    """Forwards every request to moto as it is (Host header included, so signatures hold) and
    counts them by method: fault injection's quieter cousin, around the real S3 API."""

    def __init__(self, upstream: str):
        target = urllib.parse.urlparse(upstream)
        self.requests: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                proxy.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                # A HEAD answer states the object's length but carries no body.
                length = answer.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.requests if m == method)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture()
def s3_proxy(stack):
    proxy = CountingProxy(stack.endpoint)
    yield proxy
    proxy.close()


def event_of(bucket: str, key: str, put: dict, size: int, sequencer: str) -> dict:
    event = eventbridge(bucket, key, sequencer=sequencer, size=size)
    event["detail"]["object"]["etag"] = put["ETag"].strip('"')
    event["time"] = "2026-11-24T23:15:02Z"
    return event


def test_metadata_captures_times_and_a_presigned_url_through_bootstrap(stack, runtime_api, start_lambda, s3_proxy):
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    landing = unique("landing")
    s3.create_bucket(Bucket=landing)
    body = b"region,amount\neu,12\n" * 500
    key = "incoming/eu-west/2026-11-24/sales.csv"
    put = s3.put_object(Bucket=landing, Key=key, Body=body, Metadata={"Customer": "ACME", "batch-id": "b-77"})
    stack.put_rules(f"""
- id: with-url
  priority: 1
  bucket: "{landing}"
  key: "incoming/<region>/<date>/*.csv"
  workflow: "{SALES_WORKFLOW}"
  presign_expiry_seconds: 600
  questions:
    Rule: with-url
    InputUrl: "{{presigned_url}}"
    Customer: "{{meta.customer}}"
    Region: "{{region}}"
    Date: "{{date}}"
    Day: "{{event_time:%d.%m.%Y %H:%M}}"
- id: batch
  priority: 2
  bucket: "{landing}"
  key: "incoming/**/*.csv"
  workflow: "{SALES_WORKFLOW}"
  questions:
    Rule: batch
    Batch: "{{meta.batch-id}}"
- id: event-only
  priority: 3
  bucket: "{landing}"
  key: "plain/*.csv"
  workflow: "{SALES_WORKFLOW}"
  questions:
    Rule: event-only
    Name: "{{key.name}}"
""")
    start_lambda(runtime_api, dict(stack.env, AWS_ENDPOINT_URL_S3=s3_proxy.url))

    result = runtime_api.invoke(event_of(landing, key, put, len(body), "0065F1A2B3C4D5E601"), timeout=60)
    got = outcomes(result)
    assert [o["status"] for o in got] == ["SUBMITTED", "SUBMITTED"], got
    assert s3_proxy.count("HEAD") == 1, f"two rules read metadata, one HEAD: {s3_proxy.requests}"
    head = [p for m, p in s3_proxy.requests if m == "HEAD"][0]
    assert head.startswith(f"/{landing}/incoming/eu-west/2026-11-24/sales.csv")

    jobs = {dict(map(tuple, j["questions"]))["Rule"]: dict(map(tuple, j["questions"])) for j in stack.emulator.jobs()}
    with_url = jobs["with-url"]
    assert (with_url["Customer"], with_url["Region"], with_url["Date"]) == ("ACME", "eu-west", "2026-11-24")
    assert with_url["Day"] == "24.11.2026 23:15"
    assert jobs["batch"]["Batch"] == "b-77"
    url = with_url["InputUrl"]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert url.startswith(s3_proxy.url) and query["X-Amz-Expires"] == ["600"] and "X-Amz-Signature" in query, url
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.read() == body, "the pre-signed URL fetches exactly the object's bytes"
    assert stack.execution("with-url")["questions"]["InputUrl"] == url

    # A rule that reads only the event makes no S3 request at all.
    before = list(s3_proxy.requests)
    plain = s3.put_object(Bucket=landing, Key="plain/a.csv", Body=b"x", Metadata={"customer": "ACME"})
    [o] = outcomes(runtime_api.invoke(event_of(landing, "plain/a.csv", plain, 1, "0065F1A2B3C4D5E602")))
    assert o["status"] == "SUBMITTED" and o["questions"]["Name"] == "a.csv"
    assert s3_proxy.requests == before

    # Overwritten between its event and routing: nothing runs, and the record says why. (A new
    # key: an execution is identified by the object's ETag, so the first key's event again
    # would be a duplicate of its SUBMITTED execution.)
    late = "incoming/eu-west/2026-11-25/sales.csv"
    first = s3.put_object(Bucket=landing, Key=late, Body=body, Metadata={"customer": "ACME", "batch-id": "b-78"})
    s3.put_object(Bucket=landing, Key=late, Body=b"newer", Metadata={"customer": "Other", "batch-id": "x"})
    again = runtime_api.invoke(event_of(landing, late, first, len(body), "0065F1A2B3C4D5E603"))
    assert {o["status"] for o in outcomes(again)} == {"SKIPPED"}
    assert all("overwritten since the event" in o["message"] for o in outcomes(again))

    # `rules test` shows the same values, the URL marked as signed only when routed.
    shown = stack.cli("--json", "rules", "test", "--bucket", landing, "--key", key, "--event-time", "2026-11-24T23:15:02Z", "--meta", "customer=ACME")
    tested = {t["rule"]: t for t in json.loads(shown.stdout)}
    questions = tested["with-url"]["questions"]
    assert questions["Customer"] == "ACME" and questions["Region"] == "eu-west" and questions["Day"] == "24.11.2026 23:15"
    assert questions["InputUrl"] == f"‹pre-signed GET of s3://{landing}/{key}, valid 600 s; signed when routed›"
    assert tested["batch"]["questions"]["Batch"] == "‹meta.batch-id: read from the object (HEAD) when routed›"


def test_worker_tag_and_credential_reach_v3_and_v1_refuses_them(stack, runtime_api, function):
    v3_secret = unique("alteryx/v3")
    stack.sm.create_secret(Name=v3_secret, SecretString=json.dumps(
        {"ALTERYX_URL": stack.emulator.webapi_url, "ALTERYX_KEY": "demo-key", "ALTERYX_SECRET": "demo-secret"}))
    stack.put_rules(f"""
- id: on-gpu
  key: "gpu/*.csv"
  workflow: "{SALES_WORKFLOW}"
  secret_id: "{v3_secret}"
  worker_tag: gpu
  credential_id: "{CREDENTIAL}"
  questions: {{InputPath: "{{s3_uri}}"}}
- id: unknown-tag
  key: "tpu/*.csv"
  workflow: "{SALES_WORKFLOW}"
  secret_id: "{v3_secret}"
  worker_tag: tpu
- id: gpu-on-v1
  key: "v1/*.csv"
  workflow: "{SALES_WORKFLOW}"
  worker_tag: gpu
""")
    [o] = outcomes(runtime_api.invoke(eventbridge("acme-landing", "gpu/a.csv")))
    assert o["status"] == "SUBMITTED", o
    [job] = stack.emulator.jobs()
    assert (job["api"], job["worker_tag"], job["credential_id"]) == ("v3", "gpu", CREDENTIAL)

    [o] = outcomes(runtime_api.invoke(eventbridge("acme-landing", "tpu/a.csv")))
    assert o["status"] == "ERROR" and o["retryable"] is False
    assert "Invalid workerTag 'tpu'" in o["message"]

    [o] = outcomes(runtime_api.invoke(eventbridge("acme-landing", "v1/a.csv")))
    assert o["status"] == "ERROR" and o["retryable"] is False
    assert o["message"].startswith("submit job: rule `gpu-on-v1` asks for `worker_tag` (workerTag), which API v1 cannot carry"), o["message"]
    record = stack.execution("gpu-on-v1")
    assert record["status"] == "ERROR" and "API v1" in record["message"]
    assert len(stack.emulator.jobs()) == 1, "nothing else reached Alteryx"

    # `rules test` says where and as whom a match runs.
    shown = json.loads(stack.cli("--json", "rules", "test", "--bucket", "acme-landing", "--key", "gpu/a.csv").stdout)
    on_gpu = [t for t in shown if t["rule"] == "on-gpu"][0]
    assert (on_gpu["worker_tag"], on_gpu["credential_id"]) == ("gpu", CREDENTIAL)


def test_rules_naming_a_secret_outside_the_prefix_are_warned_about(stack):
    rules = stack.tmp / "secrets.yaml"
    rules.write_text(f"""
- id: inside
  key: "a/*"
  workflow: "{SALES_WORKFLOW}"
  secret_id: alteryx/finance
- id: outside
  key: "b/*"
  workflow: "{SALES_WORKFLOW}"
  secret_id: team-b/alteryx
""")
    default = stack.cli("rules", "validate", str(rules))
    assert "2 rule(s) valid" in default.stdout
    assert "warning: rule `outside`: secret_id `team-b/alteryx` is outside the secret prefix `alteryx/`" in default.stderr
    assert "ALTERYX_SECRET_PREFIX is not set" in default.stderr
    assert "`inside`" not in default.stderr
    put = stack.cli("rules", "put", str(rules), extra_env={"ALTERYX_SECRET_PREFIX": "alteryx/"})
    assert "stored 2 rule(s)" in put.stdout and "rule `outside`" in put.stderr
    assert "is not set" not in put.stderr
    other = stack.cli("rules", "validate", str(rules), extra_env={"ALTERYX_SECRET_PREFIX": "team-b/"})
    assert "rule `inside`" in other.stderr and "rule `outside`" not in other.stderr
