"""Backfill and deliberate re-runs through the real `alteryx-router` binary: objects really put
into moto's S3 (versioned and unversioned buckets), rules and executions in moto's DynamoDB,
jobs at the emulator, events through the real `bootstrap`.

What they prove: an object its event already routed is a duplicate for backfill (unversioned:
by its ETag; versioned: by its version id); backfill twice submits once; a dry run writes and
submits nothing; --since/--until/--max choose the objects; a backfill killed mid-way is finished
by running it again, one job per object; `executions rerun` makes exactly one new job, recorded
as a re-run, and refuses what is not finished or whose object changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime, timezone

import boto3
import pytest
from conftest import unique
from test_lambda_e2e import SALES_WORKFLOW, Stack, eventbridge, outcomes


class S3:
    def __init__(self, stack: Stack, versioned: bool):
        self.stack = stack
        self.client = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
        # The sales rule takes buckets named acme-*.
        self.bucket = unique("acme-bf")
        self.client.create_bucket(Bucket=self.bucket)
        if versioned:
            self.client.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})

    def put(self, key: str, body: str) -> dict:
        return self.client.put_object(Bucket=self.bucket, Key=key, Body=body.encode())

    def event(self, key: str, put: dict, sequencer: str) -> dict:
        """The EventBridge event S3 sends for this upload."""
        event = eventbridge(self.bucket, key, sequencer=sequencer, etag=put["ETag"].strip('"'))
        head = self.client.head_object(Bucket=self.bucket, Key=key, **({"VersionId": put["VersionId"]} if "VersionId" in put else {}))
        event["detail"]["object"]["size"] = head["ContentLength"]
        if "VersionId" in put:
            event["detail"]["object"]["version-id"] = put["VersionId"]
        return event


def backfill(stack: Stack, *args: str, check: bool = True, extra_env: dict | None = None) -> dict:
    proc = stack.cli("--json", "backfill", *args, check=check, extra_env=extra_env)
    return json.loads(proc.stdout)


def by_id(stack: Stack, execution_id: str) -> dict:
    [record] = [e for e in stack.executions() if e["id"] == execution_id]
    return record


def jobs_for(stack: Stack, bucket: str, key: str) -> list[dict]:
    uri = f"s3://{bucket}/{key}"
    return [j for j in stack.emulator.jobs() if any(v == uri for _, v in j["questions"])]


@pytest.fixture()
def stack(moto_endpoint, emulator, router_bin, tmp_path):
    return Stack(moto_endpoint, emulator, router_bin, tmp_path)


def test_unversioned_event_then_backfill_is_a_duplicate_and_a_second_backfill_submits_nothing(stack, runtime_api, start_lambda):
    s3 = S3(stack, versioned=False)
    keys = [f"incoming/sales/2026/11/{d}/day.csv" for d in ("01", "02", "03")]
    puts = {k: s3.put(k, f"day,{i}\n") for i, k in enumerate(keys)}
    s3.put("incoming/sales/2026/11/notes.txt", "not a csv")
    s3.put("incoming/sales/2026/11/", "")  # a folder placeholder

    # The first upload was routed from its event, by the real bootstrap.
    fn = start_lambda(runtime_api, stack.env)
    try:
        [routed] = outcomes(runtime_api.invoke(s3.event(keys[0], puts[keys[0]], sequencer="0066A1")))
    finally:
        fn.stop()
    assert routed["status"] == "SUBMITTED"

    first = backfill(stack, f"s3://{s3.bucket}/incoming/sales/")
    assert (first["listed"], first["routed"], first["matched"]) == (4, 4, 3), first
    assert (first["submitted"], first["duplicates"], first["errors"]) == (2, 1, 0), first
    assert not first["versioned"] and not first["interrupted"]
    [dup] = [i for i in first["items"] if i["duplicate"]]
    assert dup["key"] == keys[0] and dup["execution_id"] == routed["execution_id"], "same id from the event and the listing"
    for key in keys:
        assert len(jobs_for(stack, s3.bucket, key)) == 1, key
    backfilled = [e for e in stack.executions() if e["key"] == keys[1]][0]
    assert backfilled["source"] == "backfill" and backfilled["etag"] == puts[keys[1]]["ETag"].strip('"')
    assert backfilled["questions"]["FileName"] == "day.csv"

    second = backfill(stack, f"s3://{s3.bucket}/incoming/sales/")
    assert (second["submitted"], second["duplicates"]) == (0, 3), second
    assert len(stack.emulator.jobs()) == 3
    assert len(stack.executions()) == 3


def test_versioned_event_then_backfill_routes_only_current_versions_once(stack):
    s3 = S3(stack, versioned=True)
    key = "incoming/sales/v/report.csv"
    s3.put(key, "old,1\n")
    latest = s3.put(key, "new,2\n")
    other = "incoming/sales/v/other.csv"
    s3.put(other, "x\n")
    gone = "incoming/sales/v/deleted.csv"
    s3.put(gone, "bye\n")
    s3.client.delete_object(Bucket=s3.bucket, Key=gone)  # its latest version is a delete marker

    event_file = stack.tmp / "event.json"
    event_file.write_text(json.dumps(s3.event(key, latest, sequencer="0077B1")))
    routed = json.loads(stack.cli("--json", "invoke", "--event", str(event_file)).stdout)
    [outcome] = [o for obj in routed["objects"] for o in obj["outcomes"]]
    assert outcome["status"] == "SUBMITTED"

    report = backfill(stack, f"s3://{s3.bucket}/incoming/sales/v/")
    assert report["versioned"]
    assert (report["listed"], report["submitted"], report["duplicates"]) == (2, 1, 1), report
    records = {e["key"]: e for e in stack.executions()}
    assert records[key]["version_id"] == latest["VersionId"]
    assert records[other]["version_id"], "the listing's version id is on the record"
    assert len(jobs_for(stack, s3.bucket, key)) == 1 and len(jobs_for(stack, s3.bucket, other)) == 1
    assert gone not in records

    # The version the execution ran is deleted: rerun says so and changes nothing.
    time.sleep(1.5)
    stack.cli("track")
    s3.client.delete_object(Bucket=s3.bucket, Key=key, VersionId=latest["VersionId"])
    refused = stack.cli("executions", "rerun", records[key]["id"], check=False)
    assert refused.returncode != 0
    assert f"no longer has version {latest['VersionId']}" in refused.stdout + refused.stderr
    assert by_id(stack, records[key]["id"])["attempt"] == 1
    assert len(jobs_for(stack, s3.bucket, key)) == 1


def test_dry_run_writes_and_submits_nothing_and_shows_the_values(stack):
    s3 = S3(stack, versioned=False)
    s3.put("incoming/sales/dry/a.csv", "a\n")
    s3.put("incoming/sales/dry/b.csv", "b\n")
    report = backfill(stack, f"s3://{s3.bucket}/incoming/sales/dry/", "--dry-run")
    assert report["dry_run"] and report["would_run"] == 2 and report["submitted"] == 0
    item = [i for i in report["items"] if i["key"] == "incoming/sales/dry/a.csv"][0]
    assert item["rule_id"] == "sales-csv" and item["workflow"] == SALES_WORKFLOW and item["would"] == "run"
    assert item["questions"]["InputPath"] == f"s3://{s3.bucket}/incoming/sales/dry/a.csv"
    assert stack.emulator.jobs() == [] and stack.executions() == []
    text = stack.cli("backfill", f"s3://{s3.bucket}/incoming/sales/dry/", "--dry-run").stdout
    assert "would run 2" in text and "nothing was written or submitted" in text and "a.csv" in text

    # After a real run, the dry run says they are duplicates.
    backfill(stack, f"s3://{s3.bucket}/incoming/sales/dry/")
    again = backfill(stack, f"s3://{s3.bucket}/incoming/sales/dry/", "--dry-run")
    assert (again["would_run"], again["duplicates"]) == (0, 2)
    assert len(stack.emulator.jobs()) == 2


def test_since_until_max_and_rule_choose_the_objects(stack):
    s3 = S3(stack, versioned=False)
    s3.put("incoming/sales/t/early.csv", "e\n")
    time.sleep(2.1)
    middle = datetime.now(timezone.utc).replace(microsecond=0)
    time.sleep(1.1)
    s3.put("incoming/sales/t/late-1.csv", "l1\n")
    s3.put("incoming/sales/t/late-2.csv", "l2\n")
    s3.put("incoming/sales/t/late-3.csv", "l3\n")
    location = f"s3://{s3.bucket}/incoming/sales/t/"
    stamp = middle.isoformat().replace("+00:00", "Z")

    early = backfill(stack, location, "--until", stamp, "--dry-run")
    assert [i["key"] for i in early["items"]] == ["incoming/sales/t/early.csv"], early
    late = backfill(stack, location, "--since", stamp, "--max", "2")
    assert (late["listed"] >= 2, late["routed"], late["submitted"]) == (True, 2, 2), late
    assert all(i["key"].startswith("incoming/sales/t/late-") for i in late["items"])
    rest = backfill(stack, location, "--since", stamp)
    assert (rest["submitted"], rest["duplicates"]) == (1, 2), rest
    assert len(stack.emulator.jobs()) == 3

    other_rule = backfill(stack, location, "--rule", "partner-feed")
    assert other_rule["matched"] == 0 and other_rule["submitted"] == 0
    unknown = stack.cli("backfill", location, "--rule", "nope", check=False)
    assert unknown.returncode != 0 and "no rule `nope`" in unknown.stderr
    bad = stack.cli("backfill", "acme/incoming", check=False)
    assert bad.returncode != 0 and "s3://" in bad.stderr


def test_a_backfill_killed_mid_way_is_finished_by_running_it_again(stack):
    s3 = S3(stack, versioned=False)
    keys = [f"incoming/sales/k/{i}.csv" for i in range(4)]
    for k in keys:
        s3.put(k, k)
    # Short deadlines so the dead process's claims end soon; the two first job requests are
    # answered slowly, so the kill lands after one job and in the middle of the second.
    env = {
        "INVOCATION_TIMEOUT_SECONDS": "10",
        "ALTERYX_REQUEST_TIMEOUT_SECONDS": "5",
        "OUTCOME_WRITE_RESERVE_SECONDS": "1",
        "CLAIM_LEASE_MARGIN_SECONDS": "1",
        "RECONCILE_GRACE_SECONDS": "0",
    }
    stack.emulator.slow_submit(2000, count=2)
    cmd = [str(stack.router_bin), "backfill", f"s3://{s3.bucket}/incoming/sales/k/", "--concurrency", "1"]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}
    child_env.update(stack.env)
    child_env.update(env)
    proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stack.emulator.wait_for_jobs(2, timeout=20)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    statuses = sorted(e["status"] for e in stack.executions())
    assert "SUBMITTING" in statuses, f"killed while a job request was out: {statuses}"

    # The dead claims' leases (deadline + margin) end, and the unknown request's window closes.
    ends = [max(e.get("lease_until") or 0, (e.get("reconcile_after") or 0) / 1000) for e in stack.executions()]
    time.sleep(max(0.0, max(ends) + 1.5 - time.time()))
    report = backfill(stack, f"s3://{s3.bucket}/incoming/sales/k/", "--concurrency", "1", extra_env=env)
    assert report["errors"] == 0 and report["in_progress"] == 0, report
    for k in keys:
        assert len(jobs_for(stack, s3.bucket, k)) == 1, f"one job for {k}"
    assert all(e["status"] == "SUBMITTED" for e in stack.executions())
    adopted = [i for i in report["items"] if "adopted" in (i.get("message") or "")]
    assert len(adopted) == 1, "the job the killed request queued was adopted, not sent again"


def test_rerun_makes_one_new_job_recorded_as_such_and_refuses_what_is_not_finished(stack):
    s3 = S3(stack, versioned=False)
    key = "incoming/sales/r/again.csv"
    s3.put(key, "a,b\n")
    report = backfill(stack, f"s3://{s3.bucket}/incoming/sales/r/")
    [item] = report["items"]
    execution_id = item["execution_id"]
    first_job = item["job_id"]

    # Still SUBMITTED (its job runs): refused.
    running = stack.cli("executions", "rerun", execution_id, check=False)
    assert running.returncode != 0 and "queued or running" in running.stdout + running.stderr

    time.sleep(1.5)
    stack.cli("track")
    assert by_id(stack, execution_id)["status"] == "COMPLETED"
    [result] = json.loads(stack.cli("--json", "executions", "rerun", execution_id).stdout)
    outcome = result["outcome"]
    assert outcome["status"] == "SUBMITTED" and outcome["attempt"] == 2 and outcome["job_id"] != first_job
    assert len(jobs_for(stack, s3.bucket, key)) == 2
    record = by_id(stack, execution_id)
    assert record["reruns"] == 1 and record["rerun_at"] >= time.time() - 60
    assert record["history"] == [
        {"attempt": 1, "status": "COMPLETED", "job_id": first_job, "disposition": "Success",
         "finished_at": record["history"][0]["finished_at"]}
    ]
    assert stack.job_owners() == {first_job: execution_id, outcome["job_id"]: execution_id}
    shown = stack.cli("executions", "show", execution_id).stdout
    assert "reruns" in shown and first_job in shown

    # An event redelivered now is still a duplicate; backfill too.
    assert backfill(stack, f"s3://{s3.bucket}/incoming/sales/r/")["duplicates"] == 1
    assert len(jobs_for(stack, s3.bucket, key)) == 2

    # By rule and time: listed without --yes, run with it.
    time.sleep(1.5)
    stack.cli("track")
    listed = stack.cli("executions", "rerun", "--rule", "sales-csv", "--since", "1h", check=False)
    assert listed.returncode != 0 and "--yes" in listed.stderr and execution_id in listed.stderr
    assert len(jobs_for(stack, s3.bucket, key)) == 2
    dry = json.loads(stack.cli("--json", "executions", "rerun", "--rule", "sales-csv", "--since", "1h", "--dry-run").stdout)
    assert dry == [execution_id]
    stack.cli("executions", "rerun", "--rule", "sales-csv", "--since", "1h", "--yes")
    assert len(jobs_for(stack, s3.bucket, key)) == 3
    assert by_id(stack, execution_id)["reruns"] == 2

    # The object was overwritten: its new bytes are another execution; rerun refuses.
    time.sleep(1.5)
    stack.cli("track")
    s3.put(key, "changed\n")
    changed = stack.cli("executions", "rerun", execution_id, check=False)
    assert changed.returncode != 0 and "was overwritten since" in changed.stdout + changed.stderr
    assert len(jobs_for(stack, s3.bucket, key)) == 3


def test_rerun_is_refused_on_a_live_claim(stack):
    s3 = S3(stack, versioned=False)
    key = "incoming/sales/live/claimed.csv"
    s3.put(key, "x\n")
    # A job request that takes long holds a live claim (SUBMITTING) while the rerun comes.
    stack.emulator.slow_submit(4000, count=1)
    proc = subprocess.Popen(
        [str(stack.router_bin), "backfill", f"s3://{s3.bucket}/incoming/sales/live/"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}, **stack.env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        stack.emulator.wait_for_jobs(1, timeout=20)
        [record] = stack.executions()
        assert record["status"] == "SUBMITTING"
        refused = stack.cli("executions", "rerun", record["id"], check=False)
        assert refused.returncode != 0
        assert "with a live claim until" in refused.stdout + refused.stderr
    finally:
        assert proc.wait(30) == 0, proc.stderr.read()
    assert len(stack.emulator.jobs()) == 1
    assert by_id(stack, record["id"])["status"] == "SUBMITTED"
