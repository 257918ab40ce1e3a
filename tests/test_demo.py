"""The README's first command: `alteryx-router demo` on a machine with no AWS account.

It runs with an empty environment (no AWS variables, no credentials, a fresh HOME), so anything
the demo quietly needed from the developer's machine fails here, and its report is checked
against what the emulator actually received.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


def run_demo(router_bin: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "ALTERYX_ROUTER_HOME": str(home / "state")}
    return subprocess.run(
        [str(router_bin), *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("api", ["v1", "v3"])
def test_demo_routes_every_kind_of_upload_with_no_aws_account(router_bin: Path, tmp_path: Path, api: str) -> None:
    done = run_demo(router_bin, tmp_path, "--json", "demo", "--api", api, "--job-seconds", "0.2")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows, jobs = report["rows"], report["jobs_received_by_alteryx"]
    by_job = {job["id"]: job for job in jobs}

    # Every job the report names reached the emulator, with exactly the question values shown.
    submitted = [r for r in rows if r["routed"] == "SUBMITTED"]
    assert len(submitted) == len(jobs) == len(by_job) >= 4
    for row in submitted:
        job = by_job[row["job_id"]]
        assert job["api"] == api
        assert dict(job["questions"]) == row["questions"]
        assert row["final_status"].split(" ")[0] in {"COMPLETED", "FAILED"}

    # The excluded upload and the file no rule wants start nothing; the redelivery is a duplicate
    # of the first delivery's execution and job.
    unmatched = [r for r in rows if r["routed"] == "no rule matched"]
    assert len(unmatched) == 2 and all(r["job_id"] is None for r in unmatched)
    duplicates = [r for r in rows if r["routed"].startswith("duplicate")]
    assert len(duplicates) == 1
    first = next(r for r in submitted if r["execution_id"] == duplicates[0]["execution_id"])
    assert duplicates[0]["job_id"] == first["job_id"]

    # The month-end batch: two members wait, the third closes it, and one job gets all three.
    members = [r for r in rows if r["routed"] == "BATCHED"]
    assert [r["rule"] for r in members] == ["month-end", "month-end"]
    batch_job = next(r for r in submitted if r["rule"] == "month-end")
    uris = batch_job["questions"]["InputPath"].split(",")
    assert sorted(uris) == sorted([m["object"] for m in members] + [batch_job["object"]])
    assert batch_job["questions"]["FileName"] == "3"
    assert batch_job["execution_id"].startswith("month-end:batch-")


def test_demo_prints_a_readable_report(router_bin: Path, tmp_path: Path) -> None:
    done = run_demo(router_bin, tmp_path, "demo", "--job-seconds", "0.2")
    assert done.returncode == 0, done.stderr
    assert "jobs received by the Alteryx emulator" in done.stdout
    assert "duplicate, skipped" in done.stdout
    assert "BATCHED" in done.stdout
