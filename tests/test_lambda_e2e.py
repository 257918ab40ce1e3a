"""End to end: the real `bootstrap` binary, driven through the Lambda Runtime API, with AWS
APIs on moto's server and Alteryx Server emulated by `alteryx-router emulator`.

Each test builds its own stack (tables, secret, rules, emulator) with unique names, so the
tests share one moto server without seeing each other's data."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from conftest import ROOT, unique

EVENTS = ROOT / "tests" / "events"
SALES_WORKFLOW = "5f3c0e5a2c1b0a0001d1e001"
PARTNER_WORKFLOW = "5f3c0e5a2c1b0a0001d1e003"  # the emulator ends its jobs in Error

RULES_YAML = f"""
- id: sales-csv
  description: Clean up daily sales files
  priority: 10
  bucket: "acme-*"
  key: "incoming/sales/**/*.csv"
  exclude: ["**/_tmp/**"]
  workflow: "{SALES_WORKFLOW}"
  questions:
    InputPath: "{{s3_uri}}"
    FileName: "{{key.name}}"
    ReportDate: "{{event_date}}"
- id: partner-feed
  priority: 20
  key: "partners/*/*.json"
  workflow: "{PARTNER_WORKFLOW}"
  questions:
    InputPath: "{{s3_uri}}"
    Partner: "{{key.dir}}"
"""


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def eventbridge(bucket: str, key: str, sequencer: str = "0065F1A2B3C4D5E6F7", size: int = 1024,
                etag: str | None = None) -> dict:
    """An unversioned upload's event. Each upload (sequencer) has its own bytes, so its own ETag
    unless one is given: the ETag is what identifies an unversioned object (docs/executions.md)."""
    event = load_event("eventbridge-object-created.json")
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    event["detail"]["object"]["size"] = size
    event["detail"]["object"]["sequencer"] = sequencer
    event["detail"]["object"]["etag"] = etag or hashlib.md5(sequencer.encode()).hexdigest()
    event["detail"]["object"].pop("version-id", None)
    return event


class Stack:
    """Tables, a secret and rules in moto; the emulator; helpers to run CLI and bootstrap."""

    def __init__(self, moto_endpoint, emulator, router_bin, tmp_path: Path):
        self.endpoint = moto_endpoint
        self.emulator = emulator
        self.router_bin = router_bin
        self.tmp = tmp_path
        self.rules_table = unique("rules")
        self.executions_table = unique("executions")
        self.secret_id = unique("alteryx/test")
        self.ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
        self.sm = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
        self.sm.create_secret(
            Name=self.secret_id,
            SecretString=json.dumps(
                {"ALTERYX_URL": emulator.gallery_url, "ALTERYX_KEY": "demo-key", "ALTERYX_SECRET": "demo-secret"}
            ),
        )
        self.cli("tables", "create")
        self.put_rules(RULES_YAML)

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "RULES_TABLE": self.rules_table,
            "EXECUTIONS_TABLE": self.executions_table,
            "ALTERYX_SECRET_ID": self.secret_id,
            "RULES_CACHE_SECONDS": "0",
            "ALTERYX_ROUTER_HOME": str(self.tmp / "home"),
        }

    def cli(self, *args: str, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}
        env.update(self.env)
        env.update(extra_env or {})
        proc = subprocess.run([str(self.router_bin), *args], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"alteryx-router {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def put_rules(self, text: str) -> None:
        path = self.tmp / f"{unique('rules')}.yaml"
        path.write_text(text)
        self.cli("rules", "put", str(path))

    def executions(self) -> list[dict]:
        items = self.ddb.scan(TableName=self.executions_table, ConsistentRead=True)["Items"]
        # Job ownership items (`job#…`) share the table; they have no status.
        return [{k: _plain(v) for k, v in item.items()} for item in items if "status" in item]

    def job_owners(self) -> dict[str, str]:
        """job id → execution id, from the job ownership items."""
        items = self.ddb.scan(TableName=self.executions_table, ConsistentRead=True)["Items"]
        return {i["job_id"]["S"]: i["execution_id"]["S"] for i in items if i["id"]["S"].startswith("job#")}

    def execution(self, rule_id: str) -> dict:
        matches = [e for e in self.executions() if e["rule_id"] == rule_id]
        assert len(matches) == 1, f"expected one execution of {rule_id}, got {matches}"
        return matches[0]


def _plain(value: dict):
    """A DynamoDB attribute value as plain Python."""
    (kind, v), = value.items()
    if kind == "S":
        return v
    if kind == "N":
        return int(v) if v.lstrip("-").isdigit() else float(v)
    if kind == "BOOL":
        return v
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: _plain(x) for k, x in v.items()}
    if kind == "L":
        return [_plain(x) for x in v]
    return v


@pytest.fixture()
def stack(moto_endpoint, emulator, router_bin, tmp_path):
    return Stack(moto_endpoint, emulator, router_bin, tmp_path)


@pytest.fixture()
def function(stack, runtime_api, start_lambda):
    fn = start_lambda(runtime_api, stack.env)
    yield fn


def outcomes(result) -> list[dict]:
    assert result.ok, f"invocation failed: {result.body}"
    return [o for obj in result.body["objects"] for o in obj["outcomes"]]


def test_eventbridge_event_submits_the_exact_job_and_records_it(stack, runtime_api, function):
    event = load_event("eventbridge-object-created.json")
    bucket, key = event["detail"]["bucket"]["name"], event["detail"]["object"]["key"]
    assert (bucket, key) == ("acme-landing", "incoming/sales/2026/11/24/sales-eu.csv")

    result = runtime_api.invoke(event)

    [outcome] = outcomes(result)
    assert outcome["rule_id"] == "sales-csv"
    assert outcome["status"] == "SUBMITTED" and outcome["duplicate"] is False
    [job] = stack.emulator.jobs()
    assert job["workflow_id"] == SALES_WORKFLOW
    assert job["api"] == "v1"
    assert [tuple(q) for q in job["questions"]] == [
        ("FileName", "sales-eu.csv"),
        ("InputPath", f"s3://{bucket}/{key}"),
        ("ReportDate", event["time"][:10]),
    ]
    record = stack.execution("sales-csv")
    assert record["status"] == "SUBMITTED"
    assert record["job_id"] == job["id"] == outcome["job_id"]
    assert record["questions"] == {"FileName": "sales-eu.csv", "InputPath": f"s3://{bucket}/{key}", "ReportDate": event["time"][:10]}
    assert record["attempt"] == 1
    assert record["expires_at"] > time.time() + 80 * 86400  # TTL attribute set, ~90 days out
    assert stack.job_owners() == {job["id"]: record["id"]}, "the job is owned by its execution"
    assert record["lease_until"] is None and record["claim_token"]
    # JSON logs, one line per rule outcome, and no secret anywhere.
    logs = function.logs()
    assert '"rule outcome"' in logs or "rule outcome" in logs
    assert "demo-secret" not in logs


def test_same_event_twice_submits_one_job(stack, runtime_api, function):
    event = eventbridge("acme-landing", "incoming/sales/2026/11/25/sales-us.csv")
    first = outcomes(runtime_api.invoke(event))
    second = outcomes(runtime_api.invoke(event))
    assert first[0]["status"] == "SUBMITTED" and not first[0]["duplicate"]
    assert second[0]["duplicate"] is True and second[0]["job_id"] == first[0]["job_id"]
    assert len(stack.emulator.jobs()) == 1


def test_concurrent_delivery_to_two_processes_submits_one_job(stack, start_lambda):
    from lambda_runtime_api import RuntimeApi

    apis = [RuntimeApi(), RuntimeApi()]
    try:
        for api in apis:
            start_lambda(api, stack.env)
        for api in apis:
            api.wait_for_next_calls(1)
        # Warm both processes (rules cache, clients) so the two claims really race.
        for i, api in enumerate(apis):
            api.invoke(eventbridge("acme-landing", f"incoming/sales/warm/{i}.csv", sequencer=f"00AA{i}"))
        event = eventbridge("acme-landing", "incoming/sales/2026/11/26/race.csv", sequencer="00BB01")
        ids = [api.submit(copy.deepcopy(event)) for api in apis]
        results = [api.wait(i) for api, i in zip(apis, ids)]
        # One submits; the other finds it done (a duplicate) or still in progress — then it is
        # not acknowledged (ExecutionInProgress) and its redelivery finds it done.
        won = [o for r in results if r.ok for o in outcomes(r) if not o["duplicate"]]
        assert len(won) == 1 and won[0]["status"] == "SUBMITTED", results
        for api, r in zip(apis, results):
            if not r.ok:
                assert r.body["errorType"] == "ExecutionInProgress", r.body
                assert outcomes(api.invoke(copy.deepcopy(event)))[0]["duplicate"] is True
        race_jobs = [j for j in stack.emulator.jobs() if j["questions"] and "race.csv" in json.dumps(j["questions"])]
        assert len(race_jobs) == 1
    finally:
        for api in apis:
            api.close()


def test_malformed_event_fails_the_invocation_with_a_clear_message_and_the_process_survives(stack, runtime_api, function):
    bad = {"version": "0", "source": "aws.s3", "detail-type": "Object Created", "time": "2026-11-24T09:15:02Z",
           "detail": {"bucket": {"name": "acme-landing"}, "object": {"size": 3}}}
    result = runtime_api.invoke(bad)
    assert not result.ok
    assert "key" in json.dumps(result.body)
    assert stack.executions() == []
    # The same process handles the next event normally.
    good = outcomes(runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/ok.csv")))
    assert good[0]["status"] == "SUBMITTED"


def test_keys_and_bucket_names_beyond_s3_limits_are_refused_naming_the_field_and_the_good_records_run(stack, runtime_api, function):
    # EventBridge: a 1,300-byte key is a malformed event; the message names the field, the size
    # and the limit, and shows only the start of the key.
    long_key = "incoming/sales/" + "k" * 1285
    result = runtime_api.invoke(eventbridge("acme-landing", long_key))
    assert not result.ok and result.body["errorType"] == "MalformedEvent", result.body
    message = result.body["errorMessage"]
    assert "detail.object.key is 1,300 bytes; S3 keys are at most 1024" in message, message
    assert len(message) < 400 and long_key not in message, message
    result = runtime_api.invoke(eventbridge("ab", "incoming/sales/short-bucket.csv"))
    assert not result.ok and "detail.bucket.name is 2 characters; S3 bucket names are 3 to 63" in result.body["errorMessage"]
    assert stack.executions() == [] and stack.emulator.jobs() == []
    # A classic notification: the key is measured after URL-decoding (1,024 bytes exactly runs),
    # the record over the limit is named by its index, the others run.
    notification = load_event("s3-put.json")
    template = notification["Records"][0]
    template["s3"]["bucket"]["name"] = "acme-landing"
    records = []
    for key in ["incoming/sales/" + "%C3%A9" * 504 + "a.csv",  # 15 + 1008 + 5 = 1,028 bytes decoded
                "incoming/sales/" + "%C3%A9" * 502 + "a.csv",  # 1,024 bytes decoded
                "incoming/sales/neighbour.csv"]:
        record = copy.deepcopy(template)
        record["s3"]["object"]["key"] = key
        records.append(record)
    notification["Records"] = records
    result = runtime_api.invoke(notification)
    assert not result.ok and result.body["errorType"] == "MalformedRecords", result.body
    message = result.body["errorMessage"]
    assert "1 record(s) could not be read" in message, message
    assert "record 0: s3.object.key is 1,028 bytes after URL-decoding; S3 keys are at most 1024" in message, message
    assert len(message) < 600, message
    routed = sorted(e["key"] for e in stack.executions())
    assert routed == sorted(["incoming/sales/" + "é" * 502 + "a.csv", "incoming/sales/neighbour.csv"]), routed
    assert len(stack.emulator.wait_for_jobs(2)) == 2


def test_events_that_are_not_object_creation_are_skipped_with_a_reason(stack, runtime_api, function):
    deleted = load_event("eventbridge-object-deleted.json")
    result = runtime_api.invoke(deleted)
    assert result.ok and result.body["objects"] == [] and result.body["skipped"]
    folder = eventbridge("acme-landing", "incoming/sales/2026/")
    result = runtime_api.invoke(folder)
    assert result.ok and result.body["objects"] == [] and result.body["skipped"]
    assert stack.emulator.jobs() == []


def test_alteryx_down_puts_the_upload_in_line_and_the_tracker_submits_it_once_when_due(stack, runtime_api, function):
    """An outage drains instead of piling into the DLQ: the invocation succeeds, the execution
    waits (`WAITING`, `wait_reason: outage`) until its next attempt, honouring Retry-After, and
    `alteryx-router track` submits it then, once."""
    stack.emulator.fault(unavailable=1000, retry_after=90)
    event = eventbridge("acme-landing", "incoming/sales/2026/11/27/outage.csv")
    result = runtime_api.invoke(event)
    assert result.ok, f"an outage is a wait, not a failure: {result.body}"
    record = stack.execution("sales-csv")
    assert record["status"] == "WAITING" and record["wait_reason"] == "outage", record
    assert "503" in record["message"]
    assert record["next_attempt_at"] >= int(time.time()) + 88, "Retry-After: 90 is honoured"
    assert [o["duplicate"] for o in outcomes(runtime_api.invoke(event))] == [True]
    stack.emulator.reset()
    # Not due: the tracker leaves it.
    report, _ = json.JSONDecoder().raw_decode(stack.cli("track", "--json").stdout)
    assert (report["waiting"], report["dispatched"]) == (1, 0), report
    # Due (time made to pass): submitted once.
    stack.ddb.update_item(TableName=stack.executions_table, Key={"id": {"S": record["id"]}},
                          UpdateExpression="SET next_attempt_at = :past", ExpressionAttributeValues={":past": {"N": "1"}})
    report, _ = json.JSONDecoder().raw_decode(stack.cli("track", "--json").stdout)
    assert report["dispatched"] == 1, report
    assert len(stack.emulator.jobs()) == 1
    record = stack.execution("sales-csv")
    assert record["status"] == "SUBMITTED" and record["attempt"] == 2, record


def test_alteryx_rejecting_a_question_is_recorded_and_not_retried(stack, runtime_api, function):
    stack.put_rules(f"""
- id: typo-rule
  key: "typo/**"
  workflow: "{SALES_WORKFLOW}"
  questions:
    InputPth: "{{s3_uri}}"
""")
    result = runtime_api.invoke(eventbridge("acme-landing", "typo/file.csv"))
    [outcome] = outcomes(result)
    assert outcome["status"] == "ERROR" and outcome["retryable"] is False
    record = stack.execution("typo-rule")
    assert record["status"] == "ERROR" and "400" in record["message"] and "InputPth" in record["message"]
    assert stack.emulator.jobs() == []


def test_missing_secret_is_recorded_with_the_secret_named(stack, runtime_api, start_lambda):
    env = dict(stack.env, ALTERYX_SECRET_ID="alteryx/does-not-exist")
    start_lambda(runtime_api, env)
    result = runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/nosecret.csv"))
    record = stack.execution("sales-csv")
    assert record["status"] == "ERROR"
    assert "alteryx/does-not-exist" in record["message"]
    assert stack.emulator.jobs() == []
    assert result.ok, "a missing secret will not fix itself on redelivery; it is recorded, not retried"


def test_an_invalid_rule_in_the_table_is_skipped_and_the_others_keep_working(stack, runtime_api, function):
    stack.ddb.put_item(
        TableName=stack.rules_table,
        Item={"id": {"S": "broken"}, "key": {"S": "incoming/[sales/**"}, "workflow": {"S": SALES_WORKFLOW},
              "surprise": {"S": "unknown field"}},
    )
    [outcome] = outcomes(runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/still-works.csv")))
    assert outcome["rule_id"] == "sales-csv" and outcome["status"] == "SUBMITTED"
    assert "broken" in function.logs()


def test_sqs_batch_reports_only_the_bad_message(stack, runtime_api, function):
    batch = load_event("sqs-s3.json")
    good = batch["Records"][0]
    body = json.loads(good["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = "acme-landing"
    body["Records"][0]["s3"]["object"]["key"] = "incoming/sales/2026/11/28/via+sqs.csv"
    good["body"] = json.dumps(body)
    bad = copy.deepcopy(good)
    bad["messageId"] = "bad-message-1"
    bad["body"] = "this is not an S3 notification {"
    batch["Records"] = [good, bad]
    result = runtime_api.invoke(batch)
    assert result.ok
    assert result.body == {"batchItemFailures": [{"itemIdentifier": "bad-message-1"}]}
    [job] = stack.emulator.jobs()
    # Classic notifications URL-encode keys: `+` is a space.
    assert ("FileName", "via sqs.csv") in [tuple(q) for q in job["questions"]]


def test_tracker_records_success_and_failure_and_publishes_the_failure(stack, runtime_api, function, start_lambda):
    from lambda_runtime_api import RuntimeApi

    outcomes(runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/2026/11/29/done.csv")))
    outcomes(runtime_api.invoke(eventbridge("acme-landing", "partners/globex/feed.json", sequencer="00CC01")))
    sns = boto3.client("sns", endpoint_url=stack.endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint, region_name="us-east-1")
    topic = sns.create_topic(Name=unique("failures"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique("failures-inbox"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    time.sleep(1.5)  # the emulator's jobs take 1 s

    tracker_api = RuntimeApi()
    try:
        start_lambda(tracker_api, dict(stack.env, ROUTER_MODE="tracker", FAILURE_TOPIC_ARN=topic))
        scheduled = {"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
                     "time": "2026-11-24T10:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}
        report = tracker_api.invoke(scheduled)
        assert report.ok, report.body
        assert report.body["completed"] == 1 and report.body["failed"] == 1
    finally:
        tracker_api.close()
    done = stack.execution("sales-csv")
    assert done["status"] == "COMPLETED" and done["disposition"] == "Success" and done["finished_at"]
    failed = stack.execution("partner-feed")
    assert failed["status"] == "FAILED" and failed["disposition"] == "Error" and failed["message"]
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    # The facts as message attributes; the body is for people (tests/test_metrics_e2e.py).
    envelope = json.loads(messages[0]["Body"])
    notice = {name: a["Value"] for name, a in envelope["MessageAttributes"].items()}
    assert notice["rule_id"] == "partner-feed" and notice["key"] == "partners/globex/feed.json"
    assert notice["workflow"] == PARTNER_WORKFLOW and notice["job_id"] == failed["job_id"]
    assert "Error: Input Data (1): File not found" in envelope["Message"]


def test_retry_of_a_failed_execution_submits_a_new_attempt_once(stack, runtime_api, function):
    outcomes(runtime_api.invoke(eventbridge("acme-landing", "partners/initech/feed.json", sequencer="00DD01")))
    time.sleep(1.5)
    stack.cli("track")
    failed = stack.execution("partner-feed")
    assert failed["status"] == "FAILED"
    out = stack.cli("--json", "executions", "retry", failed["id"])
    [result] = json.loads(out.stdout)
    assert result["outcome"]["attempt"] == 2 and result["outcome"]["status"] == "SUBMITTED"
    again = stack.cli("executions", "retry", failed["id"], check=False)
    assert again.returncode != 0 and "SUBMITTED" in (again.stdout + again.stderr)
    assert len(stack.emulator.jobs()) == 2
    record = stack.execution("partner-feed")
    assert record["attempt"] == 2 and record["job_id"] == result["outcome"]["job_id"]
    assert json.loads(stack.cli("--json", "executions", "show", failed["id"]).stdout)["attempt"] == 2
    missing = stack.cli("executions", "show", "sales-csv:0000000000000000", check=False)
    assert missing.returncode != 0 and "no execution" in missing.stderr
    unknown = stack.cli("executions", "retry", "sales-csv:0000000000000000", check=False)
    assert unknown.returncode != 0 and "sales-csv:0000000000000000 not found" in unknown.stdout + unknown.stderr, unknown
    assert len(stack.emulator.jobs()) == 2  # nothing submitted for it


def test_drain_dlq_routes_dead_lettered_events_and_deletes_them(stack):
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName=unique("router-dlq"), Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    # As EventBridge dead-letters an event, and as Lambda's on-failure destination does.
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(eventbridge("acme-landing", "incoming/sales/dlq.csv")))
    wrapped = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
               "requestPayload": eventbridge("acme-landing", "incoming/sales/dlq-2.csv", sequencer="00EE01"),
               "responseContext": {"statusCode": 200, "functionError": "Unhandled"}, "responsePayload": {"errorMessage": "503"}}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(wrapped))
    sqs.send_message(QueueUrl=queue_url, MessageBody="not an event")
    out = stack.cli("--json", "executions", "drain-dlq", "--queue-url", queue_url)
    drained = json.loads(out.stdout)
    assert drained["received"] == 3 and drained["routed"] == 2 and drained["kept"] == 1, drained
    assert len(stack.emulator.jobs()) == 2
    # What could not be routed stays in the queue, nothing is lost.
    time.sleep(1.5)
    left = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in left] == ["not an event"]


def test_cli_invoke_and_rules_test_use_the_same_configuration(stack):
    event_file = stack.tmp / "event.json"
    event_file.write_text(json.dumps(eventbridge("acme-landing", "incoming/sales/cli/x.csv")))
    out = stack.cli("--json", "invoke", "--event", str(event_file))
    summary = json.loads(out.stdout)
    assert summary["objects"][0]["outcomes"][0]["status"] == "SUBMITTED"
    test = stack.cli("--json", "rules", "test", "--bucket", "acme-landing", "--key", "incoming/sales/a/b.csv")
    assert "sales-csv" in test.stdout and "s3://acme-landing/incoming/sales/a/b.csv" in test.stdout


def build_csv_header_plugin(router_bin) -> Path:
    """The Python example built from source (componentize-py) and compiled ahead of time: the
    build scripts/test made for this run (BUILT_PLUGINS_DIR), or, when run on its own, one
    built here and cached by the hash of its sources."""
    import hashlib

    built = os.environ.get("BUILT_PLUGINS_DIR")
    if built and (Path(built) / "csv-header.cwasm").exists():
        return Path(built) / "csv-header.cwasm"

    src = ROOT / "plugins/examples/csv-header"
    digest = hashlib.sha256((src / "app.py").read_bytes() + (ROOT / "plugins/wit/0.1.0/plugin.wit").read_bytes()).hexdigest()[:16]
    out = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/alteryx-router/target")) / "plugin-cache-e2e" / digest
    cwasm = out / "csv-header.cwasm"
    if not cwasm.exists():
        subprocess.run(["bash", str(src / "build.sh"), str(out)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(router_bin), "plugin", "compile", str(out / "csv-header.wasm"), "-o", str(cwasm)], check=True, capture_output=True, timeout=300)
    return cwasm


def test_a_plugin_from_s3_reads_the_object_and_adds_question_values(stack, runtime_api, start_lambda, router_bin):
    cwasm = build_csv_header_plugin(router_bin)
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    plugins_bucket, landing = unique("plugins"), unique("landing")
    for b in (plugins_bucket, landing):
        s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=plugins_bucket, Key="prod/csv-header.cwasm", Body=cwasm.read_bytes())
    eu_body = b"Region,Amount,Currency\nEU,1200.50,EUR\n" + b"x,1,EUR\n" * 5000
    bad_body = b"Amount,Currency\n1,EUR\n"
    eu_put = s3.put_object(Bucket=landing, Key="daily/2026-11-24/eu.csv", Body=eu_body)
    bad_put = s3.put_object(Bucket=landing, Key="daily/2026-11-24/bad.csv", Body=bad_body)
    stack.put_rules(f"""
- id: csv-with-plugin
  bucket: "{landing}"
  key: "daily/**/*.csv"
  workflow: "{SALES_WORKFLOW}"
  questions:
    InputPath: "{{s3_uri}}"
    Columns: "from the template, overridden by the plugin"
  plugin:
    name: csv-header
    read_bytes: 4096
    timeout_ms: 2000
    config: {{required: [Region]}}
    sha256: "{hashlib.sha256(cwasm.read_bytes()).hexdigest()}"
""")
    start_lambda(runtime_api, dict(stack.env, PLUGIN_S3_URI=f"s3://{plugins_bucket}/prod/"))
    good = load_event("eventbridge-object-created.json")
    good["detail"]["bucket"]["name"] = landing
    # The event of this upload: the plugin reads exactly the object it announces.
    good["detail"]["object"].update(key="daily/2026-11-24/eu.csv", size=len(eu_body), etag=eu_put["ETag"].strip('"'))
    good["detail"]["object"].pop("version-id", None)
    [outcome] = outcomes(runtime_api.invoke(good, timeout=120))
    assert outcome["status"] == "SUBMITTED", outcome
    [job] = stack.emulator.jobs()
    assert dict(map(tuple, job["questions"])) == {
        "InputPath": f"s3://{landing}/daily/2026-11-24/eu.csv",
        "Columns": "3",
        "ColumnNames": "Region,Amount,Currency",
        "ReportDate": "2026-11-24",
    }
    bad = copy.deepcopy(good)
    bad["detail"]["object"].update(key="daily/2026-11-24/bad.csv", size=len(bad_body), etag=bad_put["ETag"].strip('"'))
    [skipped] = outcomes(runtime_api.invoke(bad, timeout=60))
    assert skipped["status"] == "SKIPPED" and "Region" in skipped["message"]
    record = [e for e in stack.executions() if e["key"].endswith("bad.csv")][0]
    assert record["status"] == "SKIPPED" and "missing required column" in record["message"]
    assert len(stack.emulator.jobs()) == 1
