"""Metrics and failure notices end to end: the real `bootstrap` binary through the Lambda Runtime
API, AWS on moto's server, Alteryx emulated.

Metrics are read from what the process writes to stdout (kept apart from its stderr, where the
logs go), each line checked against the embedded metric format specification (tests/emf.py),
and the numbers compared with what the invocations did. Notices are read from an SQS queue
subscribed to the SNS topic: the subject, the body a person reads, and the message attributes
a machine filters on; the retry command the body prints is then run as printed."""

from __future__ import annotations

import json
import re
import shlex
import time

import boto3
import emf
from conftest import unique
from test_lambda_e2e import (  # noqa: F401 - `stack` and `function` are fixtures used below
    PARTNER_WORKFLOW,
    SALES_WORKFLOW,
    eventbridge,
    function,
    load_event,
    outcomes,
    stack,
)

TYPO_RULE = f"""
- id: typo-rule
  key: "typo/**"
  workflow: "{SALES_WORKFLOW}"
  questions:
    InputPth: "{{s3_uri}}"
"""


class Stdout:
    """The lines a bootstrap process writes to stdout, read in steps."""

    def __init__(self, fn):
        self.fn = fn
        self.seen = 0

    def new_documents(self) -> list[dict]:
        lines = self.fn.stdout_lines()
        fresh, self.seen = lines[self.seen :], len(lines)
        return emf.documents(fresh)


def by_rule(docs: list[dict]) -> dict[str | None, dict]:
    out: dict[str | None, dict] = {}
    for doc in docs:
        key = doc.get("Rule")
        assert key not in out, f"two documents for {key!r} in one invocation: {docs}"
        out[key] = doc
    return out


def counts(doc: dict) -> dict[str, float]:
    """The metrics of `doc`'s first directive (per rule, or the totals without rules)."""
    return {m["Name"]: doc[m["Name"]] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def deployment_only(docs: list[dict]) -> dict[str, float]:
    """The metrics that have the Deployment dimension alone: one directive per invocation."""
    found = [
        {m["Name"]: doc[m["Name"]] for m in d["Metrics"]}
        for doc in docs
        for d in doc["_aws"]["CloudWatchMetrics"]
        if d["Dimensions"] == [["Deployment"]]
    ]
    assert len(found) == 1, docs
    return found[0]


def test_router_metrics_are_one_valid_emf_document_per_rule_per_invocation(stack, runtime_api, start_lambda):
    stack.put_rules(TYPO_RULE)
    deployment = unique("prod")
    fn = start_lambda(runtime_api, dict(stack.env, METRICS_DEPLOYMENT=deployment))
    out = Stdout(fn)

    first = eventbridge("acme-landing", "incoming/sales/2026/11/24/a.csv", sequencer="00A1")
    assert outcomes(runtime_api.invoke(first))[0]["status"] == "SUBMITTED"
    # One document for the one rule; the deployment-only metric rides in it.
    docs = by_rule(out.new_documents())
    assert set(docs) == {"sales-csv"}, docs
    sales = docs["sales-csv"]
    assert counts(sales) == {"RulesMatched": 1, "JobsSubmitted": 1, "Duplicates": 0, "Errors": 0, "Waiting": 0,
                              "OutcomesUnknown": 0, "Uncertain": 0}
    assert deployment_only([sales]) == {"ObjectsUnmatched": 0}
    assert sales["Deployment"] == deployment
    per_rule, deployment_wide = sales["_aws"]["CloudWatchMetrics"]
    assert per_rule["Namespace"] == deployment_wide["Namespace"] == "AlteryxRouter"
    # Per rule and, from the same numbers, the deployment's totals.
    assert per_rule["Dimensions"] == [["Deployment", "Rule"], ["Deployment"]]
    assert deployment_wide["Dimensions"] == [["Deployment"]]
    assert emf.units(sales) == {name: emf.METRICS[name] for name in emf.metric_names(sales)}

    # The same event again: a duplicate, counted as such.
    outcomes(runtime_api.invoke(first))
    docs = by_rule(out.new_documents())
    assert counts(docs["sales-csv"])["Duplicates"] == 1 and counts(docs["sales-csv"])["JobsSubmitted"] == 0

    # A question Alteryx rejects: an ERROR; a key no rule matches: unmatched.
    outcomes(runtime_api.invoke(eventbridge("acme-landing", "typo/file.csv", sequencer="00A2")))
    docs = by_rule(out.new_documents())
    assert counts(docs["typo-rule"])["Errors"] == 1
    assert outcomes(runtime_api.invoke(eventbridge("acme-landing", "nowhere/x.bin", sequencer="00A3"))) == []
    docs = by_rule(out.new_documents())
    assert set(docs) == {None} and deployment_only(list(docs.values())) == {"ObjectsUnmatched": 1}

    # One SQS batch of three uploads, two rules: one document per rule, the counts summed.
    batch = load_event("sqs-s3.json")
    template = batch["Records"][0]
    records = []
    for i, key in enumerate(["incoming/sales/b/1.csv", "incoming/sales/b/2.csv", "partners/acme/feed.json"]):
        record = json.loads(json.dumps(template))
        body = json.loads(record["body"])
        body["Records"][0]["s3"]["bucket"]["name"] = "acme-landing"
        body["Records"][0]["s3"]["object"]["key"] = key
        body["Records"][0]["s3"]["object"]["sequencer"] = f"00B{i}"
        record["body"] = json.dumps(body)
        record["messageId"] = f"m{i}"
        records.append(record)
    batch["Records"] = records
    assert runtime_api.invoke(batch).body == {"batchItemFailures": []}
    docs = by_rule(out.new_documents())
    assert set(docs) == {"sales-csv", "partner-feed"}
    assert deployment_only(list(docs.values())) == {"ObjectsUnmatched": 0}
    assert counts(docs["sales-csv"])["RulesMatched"] == 2 and counts(docs["sales-csv"])["JobsSubmitted"] == 2
    assert counts(docs["partner-feed"])["JobsSubmitted"] == 1

    # Alteryx unavailable: the upload waits in line (the tracker submits it later), the
    # invocation succeeds, and it counts as Waiting.
    stack.emulator.fault(status=503, count=1000)
    waited = runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/2026/11/24/outage.csv", sequencer="00A4"))
    assert waited.ok and outcomes(waited)[0]["status"] == "WAITING", waited.body
    docs = by_rule(out.new_documents())
    assert counts(docs["sales-csv"])["Waiting"] == 1 and counts(docs["sales-csv"])["Errors"] == 0
    stack.emulator.reset()

    # stdout carried metrics and nothing else; the logs are on stderr and carry no metrics.
    logs = fn.logs()
    assert "rule outcome" in logs and '"_aws"' not in logs
    assert all(line.startswith('{"_aws"') or '"_aws"' in line for line in fn.stdout_lines())


def test_metrics_off_writes_nothing_to_stdout(stack, runtime_api, start_lambda):
    fn = start_lambda(runtime_api, dict(stack.env, METRICS="off"))
    outcomes(runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/off.csv", sequencer="00C1")))
    assert fn.stdout_lines() == []
    assert "rule outcome" in fn.logs()


def test_without_the_rule_dimension_an_invocation_is_one_document_of_totals(stack, runtime_api, start_lambda):
    fn = start_lambda(runtime_api, dict(stack.env, METRICS_BY_RULE="false"))
    event = eventbridge("acme-landing", "incoming/sales/totals.csv", sequencer="00C2")
    outcomes(runtime_api.invoke(event))
    outcomes(runtime_api.invoke(eventbridge("acme-landing", "partners/x/feed.json", sequencer="00C3")))
    docs = emf.documents(fn.stdout_lines())
    assert len(docs) == 2, "one per invocation"
    for doc in docs:
        assert "Rule" not in doc
        [directive] = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["Deployment"]]
        assert counts(doc) == {"RulesMatched": 1, "JobsSubmitted": 1, "Duplicates": 0, "Errors": 0, "Waiting": 0,
                               "OutcomesUnknown": 0, "Uncertain": 0, "ObjectsUnmatched": 0}


def test_the_cli_never_writes_metrics_into_its_json_output(stack):
    event_file = stack.tmp / "event.json"
    event_file.write_text(json.dumps(eventbridge("acme-landing", "incoming/sales/cli/metrics.csv")))
    out = stack.cli("--json", "invoke", "--event", str(event_file), extra_env={"METRICS": "emf"})
    summary = json.loads(out.stdout)  # one JSON document, nothing after it
    assert summary["objects"][0]["outcomes"][0]["status"] == "SUBMITTED"
    assert "_aws" not in out.stdout


def test_tracker_metrics_and_a_failure_notice_a_person_can_act_on(stack, runtime_api, function, start_lambda):
    from lambda_runtime_api import RuntimeApi

    outcomes(runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/2026/11/29/done.csv", sequencer="00D1")))
    [failing] = outcomes(runtime_api.invoke(eventbridge("acme-landing", "partners/globex/feed.json", sequencer="00D2")))
    sns = boto3.client("sns", endpoint_url=stack.endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint, region_name="us-east-1")
    topic = sns.create_topic(Name=unique("failures"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique("failures-inbox"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    time.sleep(1.5)  # the emulator's jobs take 1 s

    tracker_api = RuntimeApi()
    try:
        tracker = start_lambda(tracker_api, dict(stack.env, ROUTER_MODE="tracker", FAILURE_TOPIC_ARN=topic))
        scheduled = {"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
                     "time": "2026-11-24T10:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}
        report = tracker_api.invoke(scheduled)
        assert report.ok and (report.body["completed"], report.body["failed"]) == (1, 1), report.body
        docs = Stdout(tracker).new_documents()
    finally:
        tracker_api.close()

    # Metrics: per rule, the outcome and how long the job took; the pass's own errors.
    rules = by_rule(docs)
    assert set(rules) == {"sales-csv", "partner-feed"}
    assert counts(rules["sales-csv"])["JobsCompleted"] == 1 and counts(rules["sales-csv"])["JobsFailed"] == 0
    assert counts(rules["partner-feed"])["JobsFailed"] == 1
    [duration] = emf.values(docs, "JobDurationSeconds", rule="sales-csv")
    assert 1 <= duration <= 60, duration
    assert emf.units(rules["sales-csv"])["JobDurationSeconds"] == "Seconds"
    deployment = deployment_only(docs)
    assert {k: deployment.pop(k) for k in ("StaleClaims", "TrackerErrors", "Uncertain", "Dispatched")} == {
        "StaleClaims": 0, "TrackerErrors": 0, "Uncertain": 0, "Dispatched": 0}
    # Two jobs of two workflows: each read on its own (no list); the pass read and wrote DynamoDB.
    assert (deployment.pop("JobPolls"), deployment.pop("JobListCalls")) == (2, 0), deployment
    assert deployment.pop("DynamoDBReads") >= 1 and deployment.pop("DynamoDBWrites") >= 2 and not deployment

    # The execution keeps what Alteryx said.
    record = stack.execution("partner-feed")
    assert record["status"] == "FAILED"
    report_ = record["job_report"]
    assert report_["job_id"] == record["job_id"] and report_["disposition"] == "Error"
    assert report_["messages"][0] == {"level": "error", "text": "Error: Input Data (1): File not found", "tool_id": 1}
    assert [o["name"] for o in report_["outputs"]] == ["Output.csv"]
    assert record["message"].startswith("Error: Input Data (1): File not found")
    assert "job_report" in stack.execution("sales-csv")
    shown = stack.cli("executions", "show", failing["execution_id"]).stdout
    assert "error: Error: Input Data (1): File not found" in shown and "Output.csv" in shown, shown

    # The notice.
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10,
                                   MessageAttributeNames=["All"]).get("Messages", [])
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    subject = envelope["Subject"]
    assert subject == f"Alteryx job failed: rule partner-feed, file feed.json, workflow {PARTNER_WORKFLOW}"
    assert len(subject) <= 100 and subject.isascii()
    attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {
        "kind": "failed",
        "rule_id": "partner-feed",
        "execution_id": failing["execution_id"],
        "status": "FAILED",
        "bucket": "acme-landing",
        "key": "partners/globex/feed.json",
        "workflow": PARTNER_WORKFLOW,
        "job_id": record["job_id"],
        "disposition": "Error",
        "attempt": "1",
    }
    assert envelope["MessageAttributes"]["attempt"]["Type"] == "Number"
    body = envelope["Message"]
    assert body.startswith("The Alteryx job for s3://acme-landing/partners/globex/feed.json failed.\n"), body
    assert "  Error: Input Data (1): File not found\n" in body
    assert "Outputs: Output.csv" in body
    assert "demo-secret" not in body

    # The retry command, run exactly as printed, with the settings printed under it.
    command = re.search(r"^  (alteryx-router executions retry \S+)$", body, re.M).group(1)
    assert command == f"alteryx-router executions retry {failing['execution_id']}"
    settings_line = re.search(r"^\(with this deployment's settings: (.*)\)$", body, re.M).group(1)
    settings = dict(pair.split("=", 1) for pair in shlex.split(settings_line))
    assert settings["RULES_TABLE"] == stack.rules_table and settings["EXECUTIONS_TABLE"] == stack.executions_table
    assert settings["ALTERYX_SECRET_ID"] == stack.secret_id and settings["AWS_REGION"] == "us-east-1"
    retried = stack.cli("--json", *shlex.split(command)[1:], extra_env=settings)
    [result] = json.loads(retried.stdout)
    assert result["outcome"]["status"] == "SUBMITTED" and result["outcome"]["attempt"] == 2
    assert stack.execution("partner-feed")["attempt"] == 2

    # Between them, the router and the tracker wrote every metric the dashboard and the
    # alarms use (tests/test_template.py checks those against the same list), but the batch
    # metrics: only batch rules write those (tests/test_batches.py).
    router_docs = emf.documents(function.stdout_lines())
    written = set().union(*(emf.metric_names(d) for d in router_docs + docs))
    assert written == set(emf.METRICS) - {"BatchMembersJoined", "BatchesClosed", "BatchesExpired"}


def test_the_emf_checker_rejects_what_cloudwatch_would_drop():
    now = int(time.time() * 1000)

    def doc(**over):
        d = {"_aws": {"Timestamp": now, "CloudWatchMetrics": [{"Namespace": "AlteryxRouter", "Dimensions": [["Rule"]],
                                                                "Metrics": [{"Name": "Errors", "Unit": "Count"}]}]},
             "Rule": "r", "Errors": 1}
        d.update(over)
        return json.dumps(d)

    assert emf.problems(doc()) == []
    assert emf.problems(doc(Errors=[1, 2.5])) == []
    bad = {
        "no metadata": json.dumps({"Errors": 1}),
        "seconds, not milliseconds": doc(_aws={"Timestamp": now // 1000, "CloudWatchMetrics": [
            {"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "Errors"}]}]}),
        "a dimension without its value": doc(Rule=None),
        "a numeric dimension value": doc(Rule=7),
        "a metric without its value": doc(Errors="1"),
        "101 values": doc(Errors=list(range(101))),
        "an unknown unit": doc(_aws={"Timestamp": now, "CloudWatchMetrics": [
            {"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "Errors", "Unit": "Things"}]}]}),
        "no dimension sets": doc(_aws={"Timestamp": now, "CloudWatchMetrics": [
            {"Namespace": "N", "Dimensions": [], "Metrics": [{"Name": "Errors"}]}]}),
        "a log line": '{"level":"INFO","message":"rule outcome"}',
        "two documents on one line": doc() + doc(),
    }
    for why, line in bad.items():
        assert emf.problems(line), f"accepted {why}: {line}"
