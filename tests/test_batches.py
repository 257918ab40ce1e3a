"""Batches end to end through the real binaries: `bootstrap` processes on a Lambda Runtime API,
`alteryx-router track` for the timers, moto's DynamoDB and SNS/SQS, and the Alteryx emulator.

- a `require` batch closes with its completing member and submits one job whose question
  values list the members (the job body is checked at the emulator); the completing member
  delivered several times at once from several processes, and duplicates after the close, add
  nothing; a new version after the close opens the next batch;
- a quiet batch is closed by the tracker once its quiet period passed, not before;
- `max_files` closes at the n-th member;
- a batch rule's 0.3.0 plugin (batch-manifest) runs once at the close over every member;
- timeouts: `on_timeout: notify` expires the batch with a `batch_expired` SNS notice (seen
  through an SQS subscription), `run` closes it and starts its job;
- a closer killed (SIGKILL) right after its close transaction was applied: the tracker starts
  the batch's job, once; killed after its dispatch's claim: the tracker's stale sweep puts the
  batch's execution back in line and submits its job, once;
- metrics: the router's EMF documents count the members that joined and the batch the
  completing member closed, the tracker's the batches its timers closed and expired, per rule
  (each line checked against the EMF specification, tests/emf.py).

The concurrent cases run against moto answering one request at a time (tests/moto_serial.py):
moto's cancelled transactions restore a snapshot of the whole table."""

from __future__ import annotations

import copy
import json
import time

import boto3
import emf
import pytest
from conftest import unique
from dynamo_fault_proxy import DynamoFaultProxy
from lambda_runtime_api import RuntimeApi
from test_caps import serial_moto  # noqa: F401 - fixture
from test_lambda_e2e import SALES_WORKFLOW, Stack, eventbridge
from test_lambda_e2e import stack  # noqa: F401 - fixture
from test_metrics_e2e import Stdout, by_rule, counts

FAST = {
    "ALTERYX_REQUEST_TIMEOUT_SECONDS": "3",
    "OUTCOME_WRITE_RESERVE_SECONDS": "2",
    "CLAIM_LEASE_MARGIN_SECONDS": "1",
    "TRACK_BUDGET_SECONDS": "20",
}
RULES = f"""
- id: month-end
  key: "closing/<period>/*.csv"
  workflow: "{SALES_WORKFLOW}"
  batch:
    by: "{{key.dir}}"
    require: ["orders.csv", "customers.csv", "ledger-*.csv"]
  questions:
    InputPath: "{{batch.uris:,}}"
    FileName: "{{batch.count}}"
    Region: "{{period}}"
- id: drops
  key: "drops/**"
  workflow: "{SALES_WORKFLOW}"
  batch: {{by: "{{key.dir}}", quiet_seconds: 2}}
  questions:
    InputPath: "{{batch.keys:;}}"
    FileName: "{{key.name}}"
    Region: "{{batch.group}}"
- id: tens
  key: "tens/**"
  workflow: "{SALES_WORKFLOW}"
  batch: {{by: "{{key.dir}}", max_files: 3}}
  questions:
    InputPath: "{{batch.keys:,}}"
- id: expiring
  key: "expiring/**"
  workflow: "{SALES_WORKFLOW}"
  batch: {{by: "{{key.dir}}", require: ["never.csv"], max_wait_seconds: 2, on_timeout: notify}}
  questions:
    InputPath: "{{batch.keys}}"
- id: running-late
  key: "late/**"
  workflow: "{SALES_WORKFLOW}"
  batch: {{by: "{{key.dir}}", require: ["never.csv"], max_wait_seconds: 2, on_timeout: run}}
  questions:
    InputPath: "{{batch.keys:,}}"
"""


def cli_json(stack: Stack, *args: str):
    done = stack.cli("--json", *args, extra_env=FAST)
    value, _ = json.JSONDecoder().raw_decode(done.stdout)
    return value


def track(stack: Stack, **env) -> dict:
    done = stack.cli("track", "--json", extra_env=dict(FAST, **env))
    report, _ = json.JSONDecoder().raw_decode(done.stdout)
    assert report["errors"] == [], report
    return report


def outcome(result) -> dict:
    assert result.ok, result.body
    [o] = [o for obj in result.body["objects"] for o in obj["outcomes"]]
    return o


def questions(job: dict) -> dict:
    return {name: value for name, value in job["questions"]}


def batches(stack: Stack, rule: str) -> list[dict]:
    return cli_json(stack, "batches", "list", "--rule", rule)


@pytest.fixture()
def batching(serial_moto, emulator, router_bin, tmp_path):  # noqa: F811 - fixture
    stack = Stack(serial_moto, emulator, router_bin, tmp_path)
    stack.put_rules(RULES)
    return stack


def test_a_complete_batch_runs_one_job_however_often_and_wherever_its_last_file_arrives(batching, start_lambda):
    stack = batching
    api = RuntimeApi(timeout_ms=30_000)
    try:
        for _ in range(3):
            start_lambda(api, dict(stack.env, **FAST))
        api.wait_for_next_calls(3, timeout=60)
        for i, name in enumerate(["orders.csv", "customers.csv", "notes.csv"]):
            o = outcome(api.invoke(eventbridge("acme-landing", f"closing/2026-11/{name}", sequencer=f"00C{i:03}")))
            assert o["status"] == "BATCHED" and not o["duplicate"], o
        assert stack.emulator.jobs() == []
        # The completing member six times at once, through three processes.
        completing = eventbridge("acme-landing", "closing/2026-11/ledger-eu.csv", sequencer="00C100")
        ids = [api.submit(copy.deepcopy(completing)) for _ in range(6)]
        results = [api.wait(i, timeout=60) for i in ids]
        assert all(r.ok for r in results), [r.body for r in results]
        outcomes = [outcome(r) for r in results]
        assert sum(o["duplicate"] for o in outcomes) == 5, outcomes
        [job] = stack.emulator.wait_for_jobs(1)
        time.sleep(1)
        assert len(stack.emulator.jobs()) == 1, "one job for the batch"
        uri = "s3://acme-landing/closing/2026-11/"
        got = questions(job)
        assert got["FileName"] == "4" and got["Region"] == "2026-11", got
        assert sorted(got["InputPath"].split(",")) == sorted(
            uri + n for n in ["orders.csv", "customers.csv", "notes.csv", "ledger-eu.csv"]), got
        # Duplicates after the close add nothing; a new version opens the next batch.
        again = outcome(api.invoke(eventbridge("acme-landing", "closing/2026-11/orders.csv", sequencer="00C000")))
        assert again["duplicate"], again
        newer = outcome(api.invoke(eventbridge("acme-landing", "closing/2026-11/orders.csv", sequencer="00C200")))
        assert newer["status"] == "BATCHED" and not newer["duplicate"], newer
    finally:
        api.close()
    listed = batches(stack, "month-end")
    assert [(b["state"], b["member_count"]) for b in listed] == [("OPEN", 1), ("CLOSED", 4)], listed
    closed = listed[1]
    assert closed["close_reason"] == "require" and closed["satisfied"] == [0, 1, 2], closed
    shown = cli_json(stack, "executions", "show", closed["id"])
    assert shown["status"] == "SUBMITTED" and shown["job_id"] == job["id"], shown
    assert shown["batch"]["member_count"] == 4 and shown["key"] == "closing/2026-11/ledger-eu.csv", shown
    members = [e for e in stack.executions() if e.get("status") == "BATCHED" and e["rule_id"] == "month-end"]
    assert len(members) == 5, members
    table = stack.cli("batches", "show", closed["id"]).stdout
    assert "closing/2026-11/notes.csv" in table and "CLOSED" in table, table


def test_quiet_max_files_and_timeouts_are_driven_by_the_tracker(stack, runtime_api, start_lambda):  # noqa: F811
    stack.put_rules(RULES)
    sns = boto3.client("sns", endpoint_url=stack.endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint, region_name="us-east-1")
    topic = sns.create_topic(Name=unique("failures"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique("notices"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    start_lambda(runtime_api, dict(stack.env, **FAST))
    deliver = lambda key, seq: outcome(runtime_api.invoke(eventbridge("acme-landing", key, sequencer=seq)))  # noqa: E731

    # max_files: the third member closes the batch at once.
    for i in range(3):
        o = deliver(f"tens/t1/{i}.csv", f"00D{i:03}")
    assert o["status"] == "SUBMITTED", o
    [job] = stack.emulator.wait_for_jobs(1)
    assert questions(job)["InputPath"] == "tens/t1/0.csv,tens/t1/1.csv,tens/t1/2.csv"

    # Quiet and timeouts: members now, timers later.
    assert deliver("drops/p1/a.csv", "00E001")["status"] == "BATCHED"
    assert deliver("drops/p1/b.csv", "00E002")["status"] == "BATCHED"
    assert deliver("expiring/x/a.csv", "00E003")["status"] == "BATCHED"
    assert deliver("late/y/a.csv", "00E004")["status"] == "BATCHED"
    report = track(stack, FAILURE_TOPIC_ARN=topic)
    assert (report["batches_closed"], report["batches_expired"]) == (0, 0), report
    assert len(stack.emulator.jobs()) == 1
    time.sleep(2.5)
    report = track(stack, FAILURE_TOPIC_ARN=topic)
    assert (report["batches_closed"], report["batches_expired"]) == (2, 1), report
    jobs = stack.emulator.wait_for_jobs(3)
    inputs = sorted(questions(j)["InputPath"] for j in jobs[1:])
    assert inputs == ["drops/p1/a.csv;drops/p1/b.csv", "late/y/a.csv"], inputs
    drops = [j for j in jobs if questions(j)["InputPath"].startswith("drops/")][0]
    assert questions(drops)["FileName"] == "b.csv" and questions(drops)["Region"] == "drops/p1"
    [expired] = batches(stack, "expiring")
    assert (expired["state"], expired["close_reason"]) == ("EXPIRED", "timeout"), expired
    [late] = batches(stack, "running-late")
    assert (late["state"], late["close_reason"]) == ("CLOSED", "timeout"), late
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", [])
    notices = [json.loads(m["Body"]) for m in messages]
    assert [n["MessageAttributes"]["kind"]["Value"] for n in notices] == ["batch_expired"], notices
    attrs = notices[0]["MessageAttributes"]
    assert attrs["rule_id"]["Value"] == "expiring" and attrs["execution_id"]["Value"] == expired["id"], attrs
    body = notices[0]["Message"]
    assert "no member matched: never.csv" in body and f"alteryx-router batches close {expired['id']}" in body, body
    # Nothing more happens on later passes; an operator may still run the expired batch.
    report = track(stack, FAILURE_TOPIC_ARN=topic)
    assert (report["batches_closed"], report["batches_expired"]) == (0, 0), report
    closed = cli_json(stack, "batches", "close", expired["id"])
    assert closed["batch"]["close_reason"] == "operator" and closed["outcome"]["status"] == "SUBMITTED", closed
    assert len(stack.emulator.wait_for_jobs(4)) == 4


BATCH_METRICS = {"BatchMembersJoined", "BatchesClosed", "BatchesExpired"}


def test_batch_metrics_count_joins_and_closes_in_the_router_and_closes_and_expiries_in_the_tracker(stack, runtime_api, start_lambda):  # noqa: F811
    stack.put_rules(RULES + f"""
- id: plain
  key: "plain/**"
  workflow: "{SALES_WORKFLOW}"
  questions:
    InputPath: "{{s3_uri}}"
""")
    fn = start_lambda(runtime_api, dict(stack.env, **FAST))
    out = Stdout(fn)
    deliver = lambda key, seq: outcome(runtime_api.invoke(eventbridge("acme-landing", key, sequencer=seq)))  # noqa: E731

    # Two members join (max_files: 3): joined, nothing closed.
    for i in range(2):
        assert deliver(f"tens/m1/{i}.csv", f"00G{i:03}")["status"] == "BATCHED"
        docs = by_rule(out.new_documents())
        assert set(docs) == {"tens"}, docs
        tens = counts(docs["tens"])
        assert (tens["RulesMatched"], tens["BatchMembersJoined"], tens["BatchesClosed"], tens["JobsSubmitted"]) == (
            1, 1, 0, 0), tens
    # The third completes it: its invocation joins, closes and submits the batch's job.
    closing = eventbridge("acme-landing", "tens/m1/2.csv", sequencer="00G002")
    o = outcome(runtime_api.invoke(closing))
    assert o["status"] == "SUBMITTED" and o["batch"]["closed"] == [o["execution_id"]], o
    docs = by_rule(out.new_documents())
    tens = counts(docs["tens"])
    assert (tens["BatchMembersJoined"], tens["BatchesClosed"], tens["JobsSubmitted"]) == (1, 1, 1), tens
    assert docs["tens"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Deployment", "Rule"], ["Deployment"]]
    assert emf.units(docs["tens"])["BatchesClosed"] == "Count"
    # Its redelivery is a duplicate: no join, no close.
    assert outcome(runtime_api.invoke(copy.deepcopy(closing)))["duplicate"]
    tens = counts(by_rule(out.new_documents())["tens"])
    assert (tens["Duplicates"], tens["BatchMembersJoined"], tens["BatchesClosed"]) == (1, 0, 0), tens
    # A rule that does not batch has no batch series.
    assert deliver("plain/x.csv", "00G100")["status"] == "SUBMITTED"
    plain = by_rule(out.new_documents())["plain"]
    assert not emf.metric_names(plain) & BATCH_METRICS, plain
    assert len(stack.emulator.wait_for_jobs(2)) == 2

    # The tracker (the real bootstrap, ROUTER_MODE=tracker): a quiet batch closed, one expired.
    assert deliver("drops/m2/a.csv", "00G200")["status"] == "BATCHED"
    assert deliver("expiring/m3/a.csv", "00G201")["status"] == "BATCHED"
    out.new_documents()
    time.sleep(2.5)
    tracker_api = RuntimeApi()
    try:
        tracker = start_lambda(tracker_api, dict(stack.env, ROUTER_MODE="tracker", **FAST))
        scheduled = {"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
                     "time": "2026-11-26T07:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}
        report = tracker_api.invoke(scheduled)
        assert report.ok and (report.body["batches_closed"], report.body["batches_expired"]) == (1, 1), report.body
        tracker_docs = Stdout(tracker).new_documents()
    finally:
        tracker_api.close()
    rules = by_rule(tracker_docs)
    assert (counts(rules["drops"])["BatchesClosed"], counts(rules["drops"])["BatchesExpired"]) == (1, 0), rules
    assert (counts(rules["expiring"])["BatchesClosed"], counts(rules["expiring"])["BatchesExpired"]) == (0, 1), rules
    assert emf.total(tracker_docs, "BatchesClosed") == 1 and emf.total(tracker_docs, "BatchesExpired") == 1
    # With tests/test_metrics_e2e.py (every other metric), every metric is written somewhere.
    written = set().union(*(emf.metric_names(d) for d in emf.documents(fn.stdout_lines()) + tracker_docs))
    assert BATCH_METRICS <= written, written


def test_a_closer_killed_right_after_the_close_leaves_the_job_to_the_tracker_once(stack, start_lambda):  # noqa: F811
    stack.put_rules(RULES)
    proxy = DynamoFaultProxy(stack.endpoint)
    api = RuntimeApi(timeout_ms=8000)
    try:
        env = dict(stack.env, AWS_ENDPOINT_URL_DYNAMODB=proxy.url, **FAST)
        fn = start_lambda(api, env)
        api.wait_for_next_calls(1)
        for i, name in enumerate(["orders.csv", "customers.csv"]):
            assert outcome(api.invoke(eventbridge("acme-landing", f"closing/2026-12/{name}", sequencer=f"00F{i:03}")))["status"] == "BATCHED"
        closed = proxy.add("TransactWriteItems", "hold_after", contains='"CLOSED"')
        completing = eventbridge("acme-landing", "closing/2026-12/ledger-eu.csv", sequencer="00F100")
        api.submit(copy.deepcopy(completing))
        closed.wait_hit()
        fn.kill()
        closed.release()
        [batch] = batches(stack, "month-end")
        assert (batch["state"], batch["member_count"]) == ("CLOSED", 3), batch
        waiting = cli_json(stack, "executions", "show", batch["id"])
        assert (waiting["status"], waiting["wait_reason"]) == ("WAITING", "batch"), waiting
        assert stack.emulator.jobs() == []
        # The redelivered event is a duplicate; the tracker starts the batch's job, once.
        calls = api.next_calls
        start_lambda(api, env)
        api.wait_for_next_calls(calls + 1)
        assert outcome(api.invoke(copy.deepcopy(completing)))["duplicate"]
        report = track(stack)
        assert report["dispatched"] == 1, report
        track(stack)
        [job] = stack.emulator.wait_for_jobs(1)
        time.sleep(0.5)
        assert len(stack.emulator.jobs()) == 1
        assert questions(job)["FileName"] == "3", job
        record = cli_json(stack, "executions", "show", batch["id"])
        assert record["status"] in ("SUBMITTED", "COMPLETED") and record["job_id"] == job["id"], record
    finally:
        proxy.close()
        api.close()


def test_a_dispatch_killed_after_its_claim_is_put_back_in_line_and_submitted_once(stack, start_lambda):  # noqa: F811
    """The completing member's invocation closes the batch and claims its execution, then is
    killed before the intent. No event brings a batch's execution back, so the tracker's stale
    sweep puts it back in the waiting line (`stale`) and the same pass submits its job, once."""
    stack.put_rules(RULES)
    proxy = DynamoFaultProxy(stack.endpoint)
    api = RuntimeApi(timeout_ms=8000)
    try:
        env = dict(stack.env, AWS_ENDPOINT_URL_DYNAMODB=proxy.url, **FAST)
        fn = start_lambda(api, env)
        api.wait_for_next_calls(1)
        for i, name in enumerate(["orders.csv", "customers.csv"]):
            assert outcome(api.invoke(eventbridge("acme-landing", f"closing/2027-01/{name}", sequencer=f"00E{i:03}")))["status"] == "BATCHED"
        # Members and the close are transactions: the first CLAIMED PutItem is the dispatch's.
        claimed = proxy.add("PutItem", "hold_after", contains='"CLAIMED"')
        api.submit(eventbridge("acme-landing", "closing/2027-01/ledger-eu.csv", sequencer="00E100"))
        claimed.wait_hit()
        fn.kill()
        claimed.release()
        [batch] = batches(stack, "month-end")
        assert (batch["state"], batch["member_count"]) == ("CLOSED", 3), batch
        record = cli_json(stack, "executions", "show", batch["id"])
        assert (record["status"], record["attempt"]) == ("CLAIMED", 1), record
        assert stack.emulator.jobs() == []
        time.sleep(max(0.0, record["lease_until"] + 1.05 - time.time()))
        report = track(stack, TRACK_STALE_AFTER_SECONDS="0")
        swept = (report["stale_claims"], report["stale_requeued"], report["released"], report["dispatched"])
        assert swept == (1, 1, 0, 1), report
        [job] = stack.emulator.wait_for_jobs(1)
        track(stack, TRACK_STALE_AFTER_SECONDS="0")
        time.sleep(0.5)
        assert len(stack.emulator.jobs()) == 1
        assert questions(job)["FileName"] == "3", job
        record = cli_json(stack, "executions", "show", batch["id"])
        assert record["status"] in ("SUBMITTED", "COMPLETED") and record["job_id"] == job["id"], record
        assert record["attempt"] == 3, record
    finally:
        proxy.close()
        api.close()


def test_a_batch_rules_plugin_runs_once_at_the_close_and_reads_every_member(moto_endpoint, router_bin, tmp_path, start_lambda):
    """Interface 0.3.0 (the batch-manifest example plugin, compiled for the bootstrap): one call
    when the batch closes, over the members in join order, its values in the one job."""
    from conftest import start_emulator
    import os
    import subprocess
    from pathlib import Path
    from conftest import ROOT

    built = os.environ.get("BUILT_PLUGINS_DIR")
    if built and (Path(built) / "batch-manifest.wasm").exists():
        wasm = Path(built) / "batch-manifest.wasm"
    elif os.environ.get("RUST_PLUGIN_SKIP_REASON"):
        pytest.skip(os.environ["RUST_PLUGIN_SKIP_REASON"])
    else:
        out = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "plugin-cache-e2e" / "rust"
        subprocess.run(["bash", str(ROOT / "plugins/build-rust.sh"), str(out)], check=True, timeout=900)
        wasm = out / "batch-manifest.wasm"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    subprocess.run([str(router_bin), "plugin", "compile", str(wasm), "-o", str(plugins / "batch-manifest.cwasm")],
                   check=True, capture_output=True, timeout=600)
    workflows = tmp_path / "workflows.json"
    workflows.write_text(json.dumps({"job_seconds": 1, "workflows": [
        {"id": "batchwf", "name": "Closing", "outcome": "Success",
         "questions": [{"name": q} for q in ["Files", "Matching", "MatchCount", "MemberCount", "Group"]]}]}))
    emu = start_emulator(router_bin, "--workflows", str(workflows))
    try:
        stack = Stack(moto_endpoint, emu, router_bin, tmp_path)
        stack.put_rules("""
- id: manifest
  key: "manifest/*/*.csv"
  workflow: batchwf
  batch: {by: "{key.dir}", require: ["orders.csv", "customers.csv"]}
  questions: {Files: "{batch.keys:,}"}
  plugin:
    name: batch-manifest
    read_bytes: 0
    read_budget_bytes: 65536
    config: {columns: [customer_id]}
""")
        objects = tmp_path / "objects"
        contents = {
            "manifest/p1/notes.csv": "topic,text\nx,y\n",
            "manifest/p1/orders.csv": "order_id,customer_id,amount\n1,7,9.5\n",
            "manifest/p1/customers.csv": "customer_id,name\n7,Ada\n",
        }
        api = RuntimeApi(timeout_ms=30_000)
        try:
            start_lambda(api, dict(stack.env, PLUGIN_DIR=str(plugins), LOCAL_OBJECTS_DIR=str(objects), **FAST))
            api.wait_for_next_calls(1)
            for i, (key, text) in enumerate(contents.items()):
                path = objects / "acme-landing" / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                o = outcome(api.invoke(eventbridge("acme-landing", key, sequencer=f"00G{i:03}", size=len(text))))
            assert o["status"] == "SUBMITTED", o
        finally:
            api.close()
        [job] = emu.wait_for_jobs(1)
        assert questions(job) == {
            "Files": "manifest/p1/notes.csv,manifest/p1/orders.csv,manifest/p1/customers.csv",
            "Matching": "manifest/p1/orders.csv\nmanifest/p1/customers.csv",
            "MatchCount": "2",
            "MemberCount": "3",
            "Group": "manifest/p1",
        }, job
    finally:
        emu.proc.terminate()
        emu.proc.wait(10)
