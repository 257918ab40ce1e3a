"""Fault injection: the delivery guarantees of the real `bootstrap` binary, driven through the
Lambda Runtime API against moto and the Alteryx emulator, when functions are killed (SIGKILL)
at each step, Alteryx is slow or loses requests, DynamoDB throttles, fails or loses answers,
and secrets rotate.

Deterministic kill points come from real parts, not from code in the binary: a DynamoDB proxy
that holds a request or its answer (tests/dynamo_fault_proxy.py), the emulator's slow and lost
answers, and a plugin that takes its time. Each case asserts the final state: exactly one job at
Alteryx per (rule, object version), the execution SUBMITTED with that job's id (or UNCERTAIN
with a notification where attribution is impossible), and no event acknowledged while its job's
fate is unknown.

Short leases and timeouts come from environment variables (an 8 s function timeout, a 1 s lease
margin, a 2 s Alteryx request timeout), so a kill costs seconds, not minutes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path

import boto3
import emf
import pytest
from conftest import ROOT, unique
from dynamo_fault_proxy import DynamoFaultProxy
from lambda_runtime_api import RuntimeApi
from test_lambda_e2e import SALES_WORKFLOW, Stack, eventbridge
from test_lambda_e2e import function, stack  # noqa: F401 - fixtures shared with the end-to-end tests

FUNCTION_TIMEOUT_MS = 8000
FAST = {
    "CLAIM_LEASE_MARGIN_SECONDS": "1",
    "ALTERYX_REQUEST_TIMEOUT_SECONDS": "2",
    "OUTCOME_WRITE_RESERVE_SECONDS": "2",
    "RECONCILE_GRACE_SECONDS": "1",
    "DYNAMODB_ATTEMPT_TIMEOUT_SECONDS": "1",
}
RULES = f"""
- id: faulty
  key: "faults/**"
  workflow: "{SALES_WORKFLOW}"
  questions:
    InputPath: "{{s3_uri}}"
- id: slow-plugin
  key: "slow/**"
  workflow: "{SALES_WORKFLOW}"
  questions:
    InputPath: "{{s3_uri}}"
  plugin:
    name: python-slow
    timeout_ms: 10000
    config: {{spin_seconds: 4}}
"""


def build_slow_plugin(router_bin) -> Path:
    """The python-slow fixture as a compiled plugin: the one scripts/test built, or built here."""
    built = os.environ.get("BUILT_PLUGINS_DIR")
    if built and (Path(built) / "python-slow.cwasm").exists():
        return Path(built)
    import hashlib

    src = ROOT / "plugins/fixtures/python-slow"
    digest = hashlib.sha256((src / "app.py").read_bytes() + (ROOT / "plugins/wit/0.1.0/plugin.wit").read_bytes()).hexdigest()[:16]
    out = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/alteryx-router/target")) / "plugin-cache-faults" / digest
    if not (out / "python-slow.cwasm").exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(ROOT / ".venv/bin/componentize-py"), "-d", str(ROOT / "plugins/wit/0.1.0"), "-w", "router-plugin",
                        "componentize", "app", "-o", str(out / "python-slow.wasm")], cwd=src, check=True, capture_output=True, timeout=600)
        subprocess.run([str(router_bin), "plugin", "compile", str(out / "python-slow.wasm"), "-o", str(out / "python-slow.cwasm")],
                       check=True, capture_output=True, timeout=600)
    return out


class Faults:
    """One test's world: the stack, the DynamoDB proxy, a Runtime API and the functions on it."""

    def __init__(self, stack: Stack, start_lambda, tmp_path: Path, plugins: Path | None = None):
        self.stack = stack
        self.emulator = stack.emulator
        self.proxy = DynamoFaultProxy(stack.endpoint)
        self.api = RuntimeApi(timeout_ms=FUNCTION_TIMEOUT_MS)
        self.start_lambda = start_lambda
        self.objects = tmp_path / "objects"
        self.env = dict(stack.env, AWS_ENDPOINT_URL_DYNAMODB=self.proxy.url, LOCAL_OBJECTS_DIR=str(self.objects), **FAST)
        if plugins:
            self.env["PLUGIN_DIR"] = str(plugins)
        stack.put_rules(RULES)
        self.fn = None

    def start(self, **extra):
        """A fresh `bootstrap` process (a new sandbox), ready for events."""
        calls = self.api.next_calls
        self.fn = self.start_lambda(self.api, dict(self.env, **extra))
        self.api.wait_for_next_calls(calls + 1)
        return self.fn

    def kill(self):
        self.fn.kill()

    def close(self):
        self.proxy.close()
        self.api.close()

    def record(self, key: str) -> dict:
        matches = [e for e in self.stack.executions() if e["key"] == key]
        assert len(matches) == 1, matches
        return matches[0]

    def wait_past_lease(self, key: str) -> dict:
        """Wait until the record's lease is over and its last job request has settled."""
        record = self.record(key)
        until = max(record.get("lease_until") or 0, ((record.get("reconcile_after") or 0) + 999) // 1000)
        time.sleep(max(0.0, until + 1.05 - time.time()))
        return record

    def jobs_for(self, key: str) -> list[dict]:
        return [j for j in self.emulator.jobs() if any(v.endswith("/" + key) for _, v in j["questions"])]


@pytest.fixture()
def faults(stack, start_lambda, tmp_path):
    f = Faults(stack, start_lambda, tmp_path)
    yield f
    f.close()


def assert_submitted_once(f: Faults, key: str, attempt: int | None = None) -> dict:
    """The final state: one job at Alteryx for the object, the execution SUBMITTED with it."""
    jobs = f.jobs_for(key)
    assert len(jobs) == 1, f"exactly one job for {key}: {jobs}"
    record = f.record(key)
    assert record["status"] == "SUBMITTED", record
    assert record["job_id"] == jobs[0]["id"], (record, jobs)
    if attempt is not None:
        assert record["attempt"] == attempt, record
    return record


def failed_with(result, error_type: str) -> dict:
    """The invocation failed (the event comes back) with this errorType."""
    assert not result.ok, f"acknowledged while it must come back: {result.body}"
    assert result.body["errorType"] == error_type, result.body
    return result.body


def routed(result) -> dict:
    assert result.ok, result.body
    [outcome] = [o for obj in result.body["objects"] for o in obj["outcomes"]]
    return outcome


# ------------------------------------------------------------------------------------------
# SIGKILL at each step


def test_killed_after_the_claim(faults):
    f = faults
    key = "faults/kill-after-claim.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0001")
    f.start()
    claimed = f.proxy.add("PutItem", "hold_after", contains='"CLAIMED"')
    f.api.submit(event)
    claimed.wait_hit()
    f.kill()
    claimed.release()
    assert f.record(key)["status"] == "CLAIMED"
    # A redelivery while the lease runs: in progress, not done — the event must come back.
    f.start()
    failed_with(f.api.invoke(copy.deepcopy(event)), "ExecutionInProgress")
    assert f.emulator.jobs() == []
    # After the lease: taken over, submitted once.
    f.wait_past_lease(key)
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["status"] == "SUBMITTED" and outcome["attempt"] == 2, outcome
    assert_submitted_once(f, key, attempt=2)


def test_killed_during_the_plugin(stack, start_lambda, tmp_path, router_bin):
    f = Faults(stack, start_lambda, tmp_path, plugins=build_slow_plugin(router_bin))
    try:
        key = "slow/kill-during-plugin.csv"
        (f.objects / "acme-landing" / "slow").mkdir(parents=True)
        (f.objects / "acme-landing" / key).write_text("a,b\n1,2\n")
        f.api.timeout_ms = 12000
        event = eventbridge("acme-landing", key, sequencer="00F0002", size=len("a,b\n1,2\n"))
        f.start()
        claimed = f.proxy.add("PutItem", "pass", contains='"CLAIMED"')
        f.api.submit(event)
        claimed.wait_hit()
        time.sleep(1.5)  # the plugin spins for 4 s
        f.kill()
        record = f.record(key)
        assert record["status"] == "CLAIMED" and record.get("submit_started_at") is None, record
        assert f.emulator.jobs() == []
        f.wait_past_lease(key)
        f.start()
        outcome = routed(f.api.invoke(copy.deepcopy(event), timeout=60))
        assert outcome["status"] == "SUBMITTED", (outcome, f.fn.logs()[-3000:])
        record = assert_submitted_once(f, key, attempt=2)
        assert record["questions"]["Region"] == "slow", "the plugin ran to its end"
    finally:
        f.close()


def test_killed_after_the_job_request_was_sent_before_the_answer(faults):
    f = faults
    key = "faults/kill-mid-request.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0003")
    f.start()
    f.emulator.slow_submit(60_000)
    f.api.submit(event)
    [job] = f.emulator.wait_for_jobs(1)
    f.kill()
    record = f.record(key)
    assert record["status"] == "SUBMITTING" and record["submit_started_at"], record
    f.start()
    failed_with(f.api.invoke(copy.deepcopy(event)), "ExecutionInProgress")
    f.wait_past_lease(key)
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["status"] == "SUBMITTED" and outcome["job_id"] == job["id"], outcome
    assert "adopted" in outcome["message"]
    assert_submitted_once(f, key, attempt=2)
    assert f.emulator.stats()["operations"]["submit"] == 1, "never a second job request"


def test_killed_after_the_answer_before_the_record(faults):
    f = faults
    key = "faults/kill-before-record.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0004")
    f.start()
    record_write = f.proxy.add("TransactWriteItems", "hold_before")
    f.api.submit(event)
    record_write.wait_hit()
    f.kill()
    record_write.release()
    [job] = f.emulator.jobs()
    assert f.record(key)["status"] == "SUBMITTING"
    f.start()
    failed_with(f.api.invoke(copy.deepcopy(event)), "ExecutionInProgress")
    f.wait_past_lease(key)
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["job_id"] == job["id"], outcome
    assert_submitted_once(f, key, attempt=2)


def test_killed_after_the_record_was_written_before_its_answer(faults):
    f = faults
    key = "faults/kill-after-record.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0005")
    f.start()
    record_write = f.proxy.add("TransactWriteItems", "hold_after")
    f.api.submit(event)
    record_write.wait_hit()
    f.kill()
    record_write.release()
    f.start()
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["duplicate"] is True and outcome["status"] == "SUBMITTED", outcome
    assert_submitted_once(f, key, attempt=1)


# ------------------------------------------------------------------------------------------
# Alteryx slow, answers lost, requests swallowed


def test_alteryx_answers_after_the_request_timed_out(faults):
    f = faults
    key = "faults/slow-alteryx.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0006")
    f.start()
    f.emulator.slow_submit(4000)  # queued at once, answered after the 2 s request timeout
    body = failed_with(f.api.invoke(event), "OutcomeUnknown")
    assert "reconcile" in body["errorMessage"], body
    [job] = f.emulator.jobs()
    record = f.record(key)
    assert record["status"] == "SUBMITTING" and record["lease_until"] is None, record
    assert record["retryable"] is True and "outcome is unknown" in record["message"]
    f.wait_past_lease(key)
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["job_id"] == job["id"]
    assert_submitted_once(f, key, attempt=2)


def test_alteryx_loses_the_answer_after_queueing(faults):
    f = faults
    key = "faults/lost-answer.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0007")
    f.start()
    f.emulator.lose_submit_answer()
    failed_with(f.api.invoke(event), "OutcomeUnknown")
    f.wait_past_lease(key)
    routed(f.api.invoke(copy.deepcopy(event)))
    assert_submitted_once(f, key, attempt=2)
    assert f.emulator.stats()["operations"]["submit"] == 1


def test_alteryx_swallows_the_request(faults):
    f = faults
    key = "faults/swallowed.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0008")
    f.start()
    f.emulator.swallow_submit()
    failed_with(f.api.invoke(event), "OutcomeUnknown")
    assert f.emulator.jobs() == []
    f.wait_past_lease(key)
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["status"] == "SUBMITTED"
    assert_submitted_once(f, key, attempt=2)
    assert f.emulator.stats()["operations"]["list_jobs"] >= 1, "it asked before sending again"


def test_unattributable_jobs_end_uncertain_with_a_notice_and_resolve_settles_them(faults):
    f = faults
    sns = boto3.client("sns", endpoint_url=f.stack.endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=f.stack.endpoint, region_name="us-east-1")
    topic = sns.create_topic(Name=unique("failures"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique("notices"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    key = "faults/uncertain.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0009")
    f.start(FAILURE_TOPIC_ARN=topic)
    f.emulator.lose_submit_answer()
    failed_with(f.api.invoke(event), "OutcomeUnknown")
    # Someone runs the same workflow by hand meanwhile: two jobs nobody recorded.
    env = {"ALTERYX_URL": f.emulator.gallery_url, "ALTERYX_KEY": "demo-key", "ALTERYX_SECRET": "demo-secret"}
    f.stack.cli("jobs", "submit", "--workflow", SALES_WORKFLOW, "-q", "InputPath=manual", extra_env=env)
    f.wait_past_lease(key)
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["status"] == "UNCERTAIN", outcome
    record = f.record(key)
    assert record["status"] == "UNCERTAIN" and len(record["candidates"]) == 2, record
    assert len(f.emulator.jobs()) == 2, "nothing sent on a guess"
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", [])
    notices = [json.loads(m["Body"]) for m in messages]
    assert [n["MessageAttributes"]["kind"]["Value"] for n in notices] == ["uncertain"], notices
    assert notices[0]["MessageAttributes"]["status"]["Value"] == "UNCERTAIN"
    assert notices[0]["Subject"].startswith(f"Alteryx job uncertain: rule {record['rule_id']}, file uncertain.csv"), notices[0]
    # The body names every candidate job and the commands that settle it.
    body = notices[0]["Message"]
    for j in f.emulator.jobs():
        assert f"\n  {j['id']}" in body, body
    assert f"alteryx-router executions resolve {record['id']} --job JOB_ID" in body, body
    assert f"alteryx-router executions resolve {record['id']} --resubmit" in body, body
    # A person decides: the first job was this file's.
    listed = json.loads(f.stack.cli("--json", "executions", "list", "--status", "UNCERTAIN").stdout)
    assert [e["id"] for e in listed] == [record["id"]]
    mine = f.emulator.jobs()[0]["id"]
    out = json.loads(f.stack.cli("--json", "executions", "resolve", record["id"], "--job", mine).stdout)
    assert out["status"] == "SUBMITTED" and out["job_id"] == mine
    record = f.record(key)
    assert record["status"] == "SUBMITTED" and record["job_id"] == mine
    # A second redelivery is a plain duplicate.
    assert routed(f.api.invoke(copy.deepcopy(event)))["duplicate"] is True


# ------------------------------------------------------------------------------------------
# DynamoDB throttles, fails, is slow, loses answers


def test_dynamodb_throttles_and_fails_but_the_writes_go_through(faults):
    f = faults
    key = "faults/throttled.csv"
    f.start()
    f.proxy.add("PutItem", "throttle", contains='"CLAIMED"', times=2)
    f.proxy.add("TransactWriteItems", "error500", times=2)
    outcome = routed(f.api.invoke(eventbridge("acme-landing", key, sequencer="00F0010")))
    assert outcome["status"] == "SUBMITTED", outcome
    assert f.proxy.count("PutItem", "throttle") == 2 and f.proxy.count("TransactWriteItems", "error500") == 2
    assert_submitted_once(f, key, attempt=1)


def test_a_claim_applied_whose_answer_was_lost_is_still_ours(faults):
    f = faults
    key = "faults/claim-answer-lost.csv"
    f.start()
    f.proxy.add("PutItem", "lose_answer", contains='"CLAIMED"')
    outcome = routed(f.api.invoke(eventbridge("acme-landing", key, sequencer="00F0011")))
    assert outcome["status"] == "SUBMITTED" and outcome["duplicate"] is False, outcome
    assert f.proxy.count("PutItem", "lose_answer") == 1
    assert f.proxy.count("GetItem") >= 1, "the retried claim met its own record and read it"
    assert_submitted_once(f, key, attempt=1)


def test_a_record_applied_whose_answer_was_lost_is_recognised(faults):
    f = faults
    key = "faults/record-answer-lost.csv"
    f.start()
    f.proxy.add("TransactWriteItems", "lose_answer")
    f.proxy.add("PutItem", "delay", contains='"SUBMITTING"', delay=2.5)  # the intent: slower than the attempt timeout
    outcome = routed(f.api.invoke(eventbridge("acme-landing", key, sequencer="00F0012")))
    assert outcome["status"] == "SUBMITTED", outcome
    assert f.proxy.count("TransactWriteItems", "lose_answer") == 1
    assert f.proxy.count("TransactWriteItems") >= 2, "the record was written again, and recognised"
    assert f.proxy.count("PutItem", "delay") == 1
    assert_submitted_once(f, key, attempt=1)


def test_a_record_that_keeps_failing_fails_the_invocation_and_the_job_is_adopted(faults):
    f = faults
    key = "faults/record-fails.csv"
    event = eventbridge("acme-landing", key, sequencer="00F0013")
    f.start()
    f.proxy.add("TransactWriteItems", "throttle", times=10_000)
    body = failed_with(f.api.invoke(event), "OutcomeUnknown")
    [job] = f.emulator.jobs()
    assert job["id"] in json.dumps(body) or f.record(key)["status"] == "SUBMITTING"
    logs = f.fn.logs()
    assert job["id"] in logs, "the job id is in the log even though the record failed"
    f.proxy.clear()
    f.wait_past_lease(key)
    outcome = routed(f.api.invoke(copy.deepcopy(event)))
    assert outcome["job_id"] == job["id"], outcome
    assert_submitted_once(f, key, attempt=2)


# ------------------------------------------------------------------------------------------
# Stale claims: visible, swept by the tracker, repaired by `executions retry`


def test_stale_claims_are_listed_swept_by_the_tracker_and_retried(faults):
    f = faults
    dead_key, mid_key = "faults/stale-claimed.csv", "faults/stale-submitting.csv"
    dead_event = eventbridge("acme-landing", dead_key, sequencer="00F0014")
    f.start()
    claimed = f.proxy.add("PutItem", "hold_after", contains='"CLAIMED"')
    f.api.submit(dead_event)
    claimed.wait_hit()
    f.kill()
    claimed.release()
    f.start()
    f.emulator.slow_submit(60_000)
    f.api.submit(eventbridge("acme-landing", mid_key, sequencer="00F0015"))
    [job] = f.emulator.wait_for_jobs(1)
    f.kill()
    f.wait_past_lease(mid_key)
    f.wait_past_lease(dead_key)

    listed = f.stack.cli("executions", "list", "--status", "CLAIMED").stdout
    assert "EXPIRED" in listed and dead_key in listed, listed
    listed = json.loads(f.stack.cli("--json", "executions", "list", "--status", "SUBMITTING").stdout)
    assert [e["lease"]["state"] for e in listed] == ["expired"], listed

    tracker_api = RuntimeApi()
    try:
        tracker = f.start_lambda(tracker_api, dict(f.env, ROUTER_MODE="tracker", TRACK_STALE_AFTER_SECONDS="0"))
        report = tracker_api.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
        assert report.ok, report.body
        assert report.body["stale_claims"] == 2 and report.body["adopted"] == 1 and report.body["released"] == 1, report.body
        # The stale-claim alarm's metric (embedded metric format on the tracker's stdout).
        [stale] = emf.values(emf.documents(tracker.stdout_lines()), "StaleClaims")
        assert stale == 2
    finally:
        tracker_api.close()
    mid = f.record(mid_key)
    assert mid["status"] == "SUBMITTED" and mid["job_id"] == job["id"], mid
    dead = f.record(dead_key)
    assert dead["status"] == "ERROR" and dead["retryable"] is True and "killed or timed out" in dead["message"], dead
    out = json.loads(f.stack.cli("--json", "executions", "retry", dead["id"]).stdout)
    assert out[0]["outcome"]["status"] == "SUBMITTED", out
    assert_submitted_once(f, dead_key)
    assert_submitted_once(f, mid_key)


def test_executions_retry_takes_over_a_dead_claim_and_reconciles_first(faults):
    f = faults
    key = "faults/retry-reconciles.csv"
    f.start()
    f.emulator.slow_submit(60_000)
    f.api.submit(eventbridge("acme-landing", key, sequencer="00F0016"))
    [job] = f.emulator.wait_for_jobs(1)
    f.kill()
    record = f.record(key)
    live = f.stack.cli("executions", "retry", record["id"], check=False)
    assert live.returncode != 0 and "live claim" in live.stdout + live.stderr, live
    f.wait_past_lease(key)
    out = json.loads(f.stack.cli("--json", "executions", "retry", record["id"]).stdout)
    assert out[0]["outcome"]["status"] == "SUBMITTED" and out[0]["outcome"]["job_id"] == job["id"], out
    assert_submitted_once(f, key, attempt=2)


# ------------------------------------------------------------------------------------------
# Many deliveries at once; a secret rotation in a warm process


def test_a_hundred_concurrent_deliveries_through_real_processes_give_one_job(stack, start_lambda):
    api = RuntimeApi(timeout_ms=60_000)
    try:
        for _ in range(100):
            start_lambda(api, stack.env)
        api.wait_for_next_calls(100, timeout=180)
        event = eventbridge("acme-landing", "incoming/sales/2026/11/30/hundred.csv", sequencer="00F0100")
        ids = [api.submit(copy.deepcopy(event)) for _ in range(100)]
        results = [api.wait(i, timeout=180) for i in ids]
        done = [r for r in results if r.ok]
        waiting = [r for r in results if not r.ok]
        outcomes = [routed(r) for r in done]
        assert sum(1 for o in outcomes if not o["duplicate"]) == 1, outcomes
        for r in waiting:
            failed_with(r, "ExecutionInProgress")
        # The ones that found it in progress come back, and find it done.
        again = [api.submit(copy.deepcopy(event)) for _ in waiting]
        for i in again:
            assert routed(api.wait(i, timeout=120))["duplicate"] is True
        jobs = [j for j in stack.emulator.jobs() if "hundred.csv" in json.dumps(j["questions"])]
        assert len(jobs) == 1, jobs
        assert stack.execution("sales-csv")["job_id"] == jobs[0]["id"]
    finally:
        api.close()


def test_a_secret_rotation_between_two_events_of_a_warm_process_loses_nothing(stack, runtime_api, start_lambda):
    fn = start_lambda(runtime_api, stack.env)
    first = routed(runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/rotate/1.csv", sequencer="00F0201")))
    assert first["status"] == "SUBMITTED"
    tracker_api = RuntimeApi()
    try:
        tracker = start_lambda(tracker_api, dict(stack.env, ROUTER_MODE="tracker"))
        scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        before = tracker_api.invoke(scheduled)  # the tracker caches the old credentials too
        assert before.ok, before.body
        # Rotation: Alteryx accepts only the new key, and the secret says so.
        stack.emulator.set_credentials([("rotated-key", "rotated-secret")])
        stack.sm.put_secret_value(
            SecretId=stack.secret_id,
            SecretString=json.dumps({"ALTERYX_URL": stack.emulator.gallery_url, "ALTERYX_KEY": "rotated-key", "ALTERYX_SECRET": "rotated-secret"}),
        )
        second = routed(runtime_api.invoke(eventbridge("acme-landing", "incoming/sales/rotate/2.csv", sequencer="00F0202")))
        assert second["status"] == "SUBMITTED", second
        assert len(stack.emulator.jobs()) == 2
        assert "refused the credentials" in fn.logs()
        time.sleep(1.5)  # the emulator's jobs take 1 s
        report = tracker_api.invoke(scheduled)
        assert report.ok and not report.body["errors"], report.body
        assert before.body["completed"] + report.body["completed"] == 2, (before.body, report.body)
        assert "refused the credentials" in tracker.logs()
    finally:
        tracker_api.close()
    statuses = sorted(e["status"] for e in stack.executions())
    assert statuses == ["COMPLETED", "COMPLETED"], statuses


def test_failed_invocations_say_what_kind_of_failure_they_were(stack, runtime_api, function):
    bad = {"version": "0", "source": "aws.s3", "detail-type": "Object Created", "time": "2026-11-24T09:15:02Z",
           "detail": {"bucket": {"name": "acme-landing"}, "object": {"size": 3}}}
    body = failed_with(runtime_api.invoke(bad), "MalformedEvent")
    assert "key" in body["errorMessage"]
    # Not even the time to claim and record a place in line (twice the 5 s write reserve): the
    # event must come back.
    late = eventbridge("acme-landing", "incoming/sales/down.csv", sequencer="00F0301")
    runtime_api.timeout_ms = 5_000
    body = failed_with(runtime_api.invoke(late), "RetryableFailure")
    assert "retryable error" in body["errorMessage"], body
    # Time to record, not to send a job request and record it: it waits in line, acknowledged.
    runtime_api.timeout_ms = 20_000
    waiting = runtime_api.invoke(late)
    runtime_api.timeout_ms = 60_000
    assert waiting.ok, waiting.body
    [outcome] = waiting.body["objects"][0]["outcomes"]
    assert (outcome["status"], outcome["wait_reason"]) == ("WAITING", "deadline"), outcome
    # A classic notification with one unreadable record: the other is routed, the event kept.
    notification = json.loads((ROOT / "tests/events/s3-put.json").read_text())
    good, broken = notification["Records"][0], copy.deepcopy(notification["Records"][0])
    good["s3"]["bucket"]["name"] = broken["s3"]["bucket"]["name"] = "acme-landing"
    good["s3"]["object"]["key"] = "incoming/sales/2026/11/30/neighbour.csv"
    broken["s3"]["object"]["key"] = "incoming/sales/bad%FF.csv"
    notification["Records"] = [good, broken]
    body = failed_with(runtime_api.invoke(notification), "MalformedRecords")
    assert "record 1" in body["errorMessage"], body
    assert [j for j in stack.emulator.jobs() if "neighbour.csv" in json.dumps(j["questions"])], "the good record was routed"
