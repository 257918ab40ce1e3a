"""Concurrency caps and the waiting line through the real binaries: several `bootstrap`
processes on one Lambda Runtime API take a burst of uploads for a capped rule, `alteryx-router
track` (two processes at once each round) dispatches the line, against moto's DynamoDB and the
Alteryx emulator with worker slots and 1 s jobs.

What is asserted is what can be observed from outside: every invocation succeeds (nothing goes
to a retry loop or the DLQ), the emulator never held more unfinished jobs than the cap
(`/_emulator/stats`' `max_unfinished`), every upload ran exactly once, and the group's counter
is back at zero.

moto runs here one request at a time (tests/moto_serial.py): its cancelled transactions restore
a snapshot of the whole table, which would undo the other processes' concurrent writes."""

from __future__ import annotations

import json
import os
import subprocess
import time
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ROOT, free_port, start_emulator, wait_http
from lambda_runtime_api import RuntimeApi
from test_lambda_e2e import SALES_WORKFLOW, Stack, eventbridge

CAP = 4
UPLOADS = 40
FUNCTIONS = 4
FAST = {
    "ALTERYX_REQUEST_TIMEOUT_SECONDS": "5",
    "OUTCOME_WRITE_RESERVE_SECONDS": "2",
    "CLAIM_LEASE_MARGIN_SECONDS": "1",
    "TRACK_BUDGET_SECONDS": "30",
}
RULES = f"""
- id: burst
  key: "burst/**"
  workflow: "{SALES_WORKFLOW}"
  max_concurrent_jobs: {CAP}
  concurrency_group: nightly
  questions:
    InputPath: "{{s3_uri}}"
"""


@pytest.fixture()
def serial_moto():
    for name, value in [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_REGION", "us-east-1"), ("AWS_DEFAULT_REGION", "us-east-1")]:
        os.environ.setdefault(name, value)
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), str(ROOT / "tests/moto_serial.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/moto-api/")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture()
def slotted_emulator(router_bin):
    """Two worker slots, 1 s jobs: a capped group's jobs queue at "Alteryx" as they would."""
    emu = start_emulator(router_bin, "--job-seconds", "1", "--slots", "2")
    yield emu
    emu.proc.terminate()
    emu.proc.wait(10)


@pytest.fixture()
def capped(serial_moto, slotted_emulator, router_bin, tmp_path):
    stack = Stack(serial_moto, slotted_emulator, router_bin, tmp_path)
    stack.put_rules(RULES)
    return stack


def cli_json(stack: Stack, *args: str):
    """`alteryx-router --json ARGS`: its JSON answer."""
    done = stack.cli("--json", *args, extra_env=FAST)
    value, _ = json.JSONDecoder().raw_decode(done.stdout)
    return value


def track(stack: Stack) -> dict:
    """One `alteryx-router track` pass; its report."""
    done = stack.cli("track", "--json", extra_env=FAST)
    report, _ = json.JSONDecoder().raw_decode(done.stdout)
    return report


def test_a_burst_from_several_functions_never_exceeds_the_cap_and_runs_every_upload_once(capped, start_lambda):
    stack = capped
    api = RuntimeApi(timeout_ms=60_000)
    try:
        for _ in range(FUNCTIONS):
            start_lambda(api, dict(stack.env, **FAST))
        api.wait_for_next_calls(FUNCTIONS, timeout=60)
        keys = [f"burst/{i:03}.csv" for i in range(UPLOADS)]
        ids = [api.submit(eventbridge("acme-landing", k, sequencer=f"00B{i:04}")) for i, k in enumerate(keys)]
        results = [api.wait(i, timeout=180) for i in ids]
        failed = [r.body for r in results if not r.ok]
        assert failed == [], "a full group is a wait, not a failure"
        statuses = [o["status"] for r in results for obj in r.body["objects"] for o in obj["outcomes"]]
        assert statuses.count("SUBMITTED") == CAP, statuses
        assert statuses.count("WAITING") == UPLOADS - CAP, statuses
        # A redelivery of a waiting upload adds nothing.
        again = api.invoke(eventbridge("acme-landing", keys[-1], sequencer=f"00B{UPLOADS - 1:04}"))
        assert again.ok and again.body["objects"][0]["outcomes"][0]["duplicate"], again.body
    finally:
        api.close()

    # Operators see the line: per group cap, running, waiting, oldest wait; each waiting
    # execution's group, place and what it waits for; one is taken out.
    [group] = cli_json(stack, "status")
    assert (group["group"], group["cap"], group["running"], group["waiting"]) == ("nightly", CAP, CAP, UPLOADS - CAP), group
    assert group["oldest_waiting_since"] <= time.time()
    line = cli_json(stack, "executions", "list", "--status", "WAITING", "--limit", "100")
    assert [w["place"] for w in line] == list(range(1, UPLOADS - CAP + 1)), line
    assert {(w["group"], w["wait_reason"]) for w in line} == {("nightly", "cap")}
    table = stack.cli("executions", "list", "--status", "WAITING").stdout
    assert "nightly" in table and "a free slot" in table, table
    out = line[-1]
    assert cli_json(stack, "executions", "cancel", out["id"])["status"] == "CANCELLED"
    refused = stack.cli("executions", "cancel", out["id"], check=False)
    assert refused.returncode != 0 and "only WAITING executions can be cancelled" in refused.stderr, refused
    keys.remove(out["key"])

    # The tracker: two processes at once each round, until the line is empty and all ran.
    rounds = 0
    with ThreadPoolExecutor(2) as pool:
        while rounds < 60:
            rounds += 1
            time.sleep(0.5)
            for report in list(pool.map(lambda _: track(stack), range(2))):
                assert report["errors"] == [], report
            records = [e for e in stack.executions() if e["rule_id"] == "burst" and e["status"] != "CANCELLED"]
            if all(e["status"] == "COMPLETED" for e in records):
                break
    records = [e for e in stack.executions() if e["rule_id"] == "burst" and e["status"] != "CANCELLED"]
    assert sorted(e["key"] for e in records) == keys
    assert {e["status"] for e in records} == {"COMPLETED"}, [(e["key"], e["status"], e.get("message")) for e in records]
    assert not any(e.get("slot_held") for e in records)

    stats = stack.emulator.stats()
    assert stats["max_unfinished"] <= CAP, stats
    assert stats["max_unfinished"] == CAP, f"the cap was used fully: {stats}"
    assert stats["jobs_received"] == UPLOADS - 1, "the cancelled one never ran"
    jobs = stack.emulator.jobs()
    inputs = sorted(v for j in jobs for name, v in j["questions"] if name == "InputPath")
    assert inputs == [f"s3://acme-landing/{k}" for k in keys], "every upload exactly once"
    group = stack.ddb.get_item(TableName=stack.executions_table, Key={"id": {"S": "group#nightly"}}, ConsistentRead=True)["Item"]
    assert group["running"]["N"] == "0" and "status" not in group, group
    [group] = cli_json(stack, "status")
    assert (group["running"], group["waiting"]) == (0, 0), group
    print(f"burst of {UPLOADS} with cap {CAP}: {rounds} tracker rounds, stats {stats}")


def test_too_little_time_left_waits_in_line_and_the_tracker_submits_it(capped, start_lambda):
    """A Lambda invocation with less time left than a job request and its record need does not
    fail: the execution waits in line (`deadline`), the invocation succeeds (no retry, no
    DLQ), and the next `track` pass submits it once."""
    stack = capped
    # 10 s left: enough to claim and record (2 × 2 s), not for a 30 s request and its record.
    slow = dict(FAST, ALTERYX_REQUEST_TIMEOUT_SECONDS="30")
    api = RuntimeApi(timeout_ms=10_000)
    try:
        start_lambda(api, dict(stack.env, **slow))
        result = api.invoke(eventbridge("acme-landing", "burst/late.csv", sequencer="00C0001"))
    finally:
        api.close()
    assert result.ok, result.body
    [outcome] = result.body["objects"][0]["outcomes"]
    assert outcome["status"] == "WAITING", outcome
    [record] = [e for e in stack.executions() if e["key"] == "burst/late.csv"]
    assert (record["status"], record["wait_reason"]) == ("WAITING", "deadline"), record
    assert stack.emulator.stats()["jobs_received"] == 0, "nothing sent"

    report = track(stack)
    assert (report["dispatched"], report["errors"]) == (1, []), report
    [record] = [e for e in stack.executions() if e["key"] == "burst/late.csv"]
    assert record["status"] == "SUBMITTED", record
    assert stack.emulator.stats()["jobs_received"] == 1


def test_slots_freed_while_executions_wait_go_to_the_line_not_to_new_uploads(capped, start_lambda):
    """Fairness of the line through the real binaries: while executions wait, a new upload
    that finds a slot free (here: the cap was raised under a waiting line) joins the line's
    end instead of taking it — its invocation succeeds, `WAITING` — and `track` submits the
    executions that waited first before it."""
    stack = capped
    api = RuntimeApi(timeout_ms=60_000)
    try:
        for _ in range(2):
            start_lambda(api, dict(stack.env, **FAST))
        api.wait_for_next_calls(2, timeout=60)
        first = [f"burst/first-{i}.csv" for i in range(CAP + 3)]
        results = [api.wait(i, timeout=120) for i in
                   [api.submit(eventbridge("acme-landing", k, sequencer=f"00D{n:04}")) for n, k in enumerate(first)]]
        statuses = [o["status"] for r in results for obj in r.body["objects"] for o in obj["outcomes"]]
        assert sorted(statuses) == ["SUBMITTED"] * CAP + ["WAITING"] * 3, statuses
        # Twice the slots now: CAP free, 3 waiting. The rules are read on every invocation here.
        stack.put_rules(RULES.replace(f"max_concurrent_jobs: {CAP}", f"max_concurrent_jobs: {2 * CAP}"))
        time.sleep(1.1)  # the line is ordered by arrival second: the late ones arrive after
        late = [f"burst/late-{i}.csv" for i in range(2)]
        results = [api.invoke(eventbridge("acme-landing", k, sequencer=f"00E{n:04}")) for n, k in enumerate(late)]
    finally:
        api.close()
    for r in results:
        assert r.ok, r.body
        [outcome] = r.body["objects"][0]["outcomes"]
        assert outcome["status"] == "WAITING", f"a free slot, but executions wait ahead: {outcome}"
    records = {e["key"]: e for e in stack.executions()}
    assert "waiting ahead of it" in records[late[0]]["message"], records[late[0]]
    assert stack.emulator.stats()["jobs_received"] == CAP, "nothing submitted past the line"
    [group] = cli_json(stack, "status")
    assert (group["running"], group["waiting"]) == (CAP, 5) and group["line_at"], group
    assert "new uploads join the line" in stack.cli("status").stdout

    for _ in range(30):
        report = track(stack)
        assert report["errors"] == [], report
        records = [e for e in stack.executions() if e["rule_id"] == "burst"]
        if all(e["status"] == "COMPLETED" for e in records):
            break
        time.sleep(0.5)
    assert {e["status"] for e in records} == {"COMPLETED"}, [(e["key"], e["status"]) for e in records]
    order = [v.rsplit("/", 1)[-1] for j in stack.emulator.jobs() for name, v in j["questions"] if name == "InputPath"]
    assert sorted(order) == sorted(k.rsplit("/", 1)[-1] for k in first + late), "every upload once"
    assert all(name.startswith("first-") for name in order[:CAP + 3]), f"the line first, then the late ones: {order}"


def test_a_scheduled_tracker_invocation_repeats_its_pass_while_a_line_waits(capped, start_lambda):
    """`TRACK_REPEAT_SECONDS`: the tracker function (the real `bootstrap`, ROUTER_MODE=tracker)
    runs another pass after one that left executions in line, so one scheduled invocation
    frees and refills a capped group's slots several times; without it, one pass per
    invocation. Never more than the cap at Alteryx either way."""
    stack = capped
    uploads = 3 * CAP
    api = RuntimeApi(timeout_ms=60_000)
    try:
        for _ in range(2):
            start_lambda(api, dict(stack.env, **FAST))
        api.wait_for_next_calls(2, timeout=60)
        results = [api.wait(i, timeout=120) for i in
                   [api.submit(eventbridge("acme-landing", f"burst/r-{n}.csv", sequencer=f"00F{n:04}")) for n in range(uploads)]]
        assert all(r.ok for r in results), [r.body for r in results if not r.ok]
    finally:
        api.close()
    assert stack.emulator.stats()["jobs_received"] == CAP
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    tracker_env = dict(stack.env, **dict(FAST, ROUTER_MODE="tracker", TRACK_BUDGET_SECONDS="10"))

    once_api = RuntimeApi(timeout_ms=60_000)
    try:
        start_lambda(once_api, tracker_env)
        once = once_api.invoke(scheduled)
    finally:
        once_api.close()
    assert once.ok and once.body["passes"] == 1, once.body

    api = RuntimeApi(timeout_ms=60_000)
    try:
        start_lambda(api, dict(tracker_env, TRACK_REPEAT_SECONDS="1", TRACK_REPEAT_FOR_SECONDS="40"))
        result = api.invoke(scheduled)
    finally:
        api.close()
    assert result.ok, result.body
    assert result.body["passes"] >= 3, result.body
    assert result.body["waiting"] == 0 and result.body["errors"] == [], "stops once the line is empty"
    stats = stack.emulator.stats()
    assert stats["jobs_received"] == uploads, f"the whole line in one invocation: {stats}"
    assert stats["max_unfinished"] <= CAP, stats
