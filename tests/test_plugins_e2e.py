"""Plugins of interface 0.3.0 end to end: built from source (Rust, with the SDK), published to
the plugin bucket with `alteryx-router plugin publish` (compiled, uploaded and pinned in one
step), and run by the real `bootstrap` through the Lambda Runtime API over objects really in
moto's S3: 50 MiB Excel and Parquet files of which the plugins read kilobytes, a workflow
chosen by schema, and the faults (past the budget, a workflow outside the allow-list, a
deleted or overwritten object, an unpinned plugin) recorded as the docs say; and `plugin run`
over a batch whose members are in S3 and on the local disk."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import boto3
import pytest
from conftest import ROOT, start_emulator, unique
from plugin_fixtures import parquet_bytes, xlsx_bytes
from test_lambda_e2e import SALES_WORKFLOW, eventbridge, outcomes, stack  # noqa: F401 (the stack fixture)

INVOICE_WORKFLOW = "5f3c0e5a2c1b0a0001d1e002"
PLUGIN_QUESTIONS = ["InputPath", "Sheets", "SheetCount", "FirstSheet", "Columns", "ColumnCount", "Rows", "Read", "Bytes", "Head", "Budget", "Workflows"]


@pytest.fixture()
def emulator(router_bin, tmp_path):
    """The emulator with the two workflows these rules submit, asking the plugins' questions
    (it refuses question names a workflow does not have, as Alteryx does)."""
    workflows = tmp_path / "workflows.json"
    workflows.write_text(json.dumps({
        "job_seconds": 1,
        "workflows": [
            {"id": wf, "name": name, "outcome": "Success", "questions": [{"name": q} for q in PLUGIN_QUESTIONS]}
            for wf, name in ((SALES_WORKFLOW, "Sales"), (INVOICE_WORKFLOW, "Invoices"))
        ],
    }))
    emu = start_emulator(router_bin, "--workflows", str(workflows))
    yield emu
    emu.proc.terminate()
    emu.proc.wait(10)


@pytest.fixture(scope="session")
def rust_plugins() -> Path:
    """The Rust plugins scripts/test built for this run, else built here (warm cargo cache)."""
    built = os.environ.get("BUILT_PLUGINS_DIR")
    if built and (Path(built) / "range-probe.wasm").exists():
        return Path(built)
    if os.environ.get("RUST_PLUGIN_SKIP_REASON"):
        pytest.skip(os.environ["RUST_PLUGIN_SKIP_REASON"])
    out = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "plugin-cache-e2e" / "rust"
    subprocess.run(["bash", str(ROOT / "plugins/build-rust.sh"), str(out)], check=True, timeout=900)
    return out


def publish(stack, wasm: Path, bucket: str) -> dict:
    """`plugin publish` as an operator runs it, for this machine's CPU (the tests' bootstrap)."""
    out = stack.cli("--json", "plugin", "publish", str(wasm), "--to", f"s3://{bucket}/prod/", "--target", "host")
    return json.loads(out.stdout)


def event_for(bucket: str, key: str, put: dict, size: int) -> dict:
    event = eventbridge(bucket, key, size=size)
    event["detail"]["object"]["etag"] = put["ETag"].strip('"')
    return event


def test_excel_and_parquet_plugins_read_kilobytes_of_50_mib_objects_and_choose_workflows(stack, runtime_api, start_lambda, rust_plugins):
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    plugins_bucket, landing = unique("plugins"), unique("landing")
    for b in (plugins_bucket, landing):
        s3.create_bucket(Bucket=b)
    stack.put_rules(f"""
- id: workbooks
  bucket: "{landing}"
  key: "books/**/*.xlsx"
  workflow: "{SALES_WORKFLOW}"
  questions: {{InputPath: "{{s3_uri}}"}}
  plugin:
    name: xlsx-sheets
    read_bytes: 0
    timeout_ms: 2000
    config: {{required: [Sales]}}
- id: tables
  bucket: "{landing}"
  key: "tables/**/*.parquet"
  workflow: "{SALES_WORKFLOW}"
  questions: {{InputPath: "{{s3_uri}}"}}
  plugin:
    name: parquet-schema
    read_bytes: 0
    timeout_ms: 2000
    workflows: ["{INVOICE_WORKFLOW}"]
    config:
      workflows: [{{when_columns: [vat_id], workflow: "{INVOICE_WORKFLOW}"}}]
""")
    for name in ("xlsx-sheets", "parquet-schema"):
        report = publish(stack, rust_plugins / f"{name}.wasm", plugins_bucket)
        assert report["interface"] == "0.3.0" and len(report["sha256"]) == 64, report
    assert stack.cli("--json", "rules", "list").stdout.count('"sha256"') == 2, "both rules pinned"

    workbook = xlsx_bytes(["Sales", "Costs", "Notes"], mib=50)
    table = parquet_bytes(["id", "region", "vat_id", "amount"], mib=50)
    small = xlsx_bytes(["Costs"])
    puts = {
        "books/2026/big.xlsx": (s3.put_object(Bucket=landing, Key="books/2026/big.xlsx", Body=workbook), len(workbook)),
        "tables/2026/big.parquet": (s3.put_object(Bucket=landing, Key="tables/2026/big.parquet", Body=table), len(table)),
        "books/2026/costs-only.xlsx": (s3.put_object(Bucket=landing, Key="books/2026/costs-only.xlsx", Body=small), len(small)),
    }
    assert len(workbook) > 45 << 20 and len(table) > 45 << 20
    start_lambda(runtime_api, dict(stack.env, PLUGIN_S3_URI=f"s3://{plugins_bucket}/prod/"))

    [book] = outcomes(runtime_api.invoke(event_for(landing, "books/2026/big.xlsx", *puts["books/2026/big.xlsx"]), timeout=120))
    assert book["status"] == "SUBMITTED", book
    [table_outcome] = outcomes(runtime_api.invoke(event_for(landing, "tables/2026/big.parquet", *puts["tables/2026/big.parquet"]), timeout=60))
    assert table_outcome["status"] == "SUBMITTED", table_outcome
    assert table_outcome["workflow"] == INVOICE_WORKFLOW
    [skipped] = outcomes(runtime_api.invoke(event_for(landing, "books/2026/costs-only.xlsx", *puts["books/2026/costs-only.xlsx"]), timeout=60))
    assert skipped["status"] == "SKIPPED" and "lacks sheet(s): Sales" in skipped["message"], skipped

    jobs = {j["workflow_id"]: j for j in stack.emulator.jobs()}
    assert dict(map(tuple, jobs[SALES_WORKFLOW]["questions"])) == {
        "InputPath": f"s3://{landing}/books/2026/big.xlsx",
        "Sheets": "Sales,Costs,Notes",
        "SheetCount": "3",
        "FirstSheet": "Sales",
    }
    assert dict(map(tuple, jobs[INVOICE_WORKFLOW]["questions"]))["Columns"] == "id,region,vat_id,amount"
    assert len(stack.emulator.jobs()) == 2

    # The records say what each plugin read: kilobytes of 50 MiB, and the chosen workflow.
    for rule_id, limit in (("workbooks", 16 << 10), ("tables", 32 << 10)):
        record = [e for e in stack.executions() if e["rule_id"] == rule_id and e["status"] == "SUBMITTED"][0]
        reads = record["plugin"]["reads"]
        assert reads["head_bytes"] == 0 and 0 < reads["range_bytes"] < limit, reads
        assert reads["range_reads"] == len(reads["ranges"]) >= 1
        assert reads["budget"] == 1 << 20
    record = stack.execution("tables")
    assert record["workflow"] == INVOICE_WORKFLOW and record["plugin"]["workflow"] == INVOICE_WORKFLOW


def test_plugin_faults_and_vanished_objects_are_recorded_precisely(stack, runtime_api, start_lambda, rust_plugins):
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    plugins_bucket, landing = unique("plugins"), unique("landing")
    for b in (plugins_bucket, landing):
        s3.create_bucket(Bucket=b)

    def probe(rule_id: str, prefix: str, config: dict, budget: int = 1000) -> str:
        return f"""
- id: {rule_id}
  bucket: "{landing}"
  key: "{prefix}/**"
  workflow: "{SALES_WORKFLOW}"
  plugin:
    name: range-probe
    read_bytes: 16
    read_budget_bytes: {budget}
    timeout_ms: 2000
    workflows: ["{INVOICE_WORKFLOW}"]
    config: {json.dumps(config)}
"""

    stack.put_rules(
        probe("over-budget", "budget", {"reads": [[0, 600], [600, 600]]})
        + probe("bad-workflow", "wf", {"workflow": "wf-payroll"})
        + probe("reader", "ok", {"reads": [[0, 5]]})
    )
    publish(stack, rust_plugins / "range-probe.wasm", plugins_bucket)
    # Added after the publish, so not pinned: a plugin from S3 must be.
    stack.put_rules(probe("unpinned", "unpinned", {}))
    start_lambda(runtime_api, dict(stack.env, PLUGIN_S3_URI=f"s3://{plugins_bucket}/prod/"))

    def route(key: str, body: bytes, before=None) -> dict:
        put = s3.put_object(Bucket=landing, Key=key, Body=body)
        if before:
            before()
        [outcome] = outcomes(runtime_api.invoke(event_for(landing, key, put, len(body)), timeout=60))
        return outcome

    over = route("budget/a.bin", b"x" * 2000)
    assert over["status"] == "ERROR" and not over["retryable"], over
    assert "range-probe" in over["message"] and "over-budget" in over["message"]
    assert "600 bytes at offset 600" in over["message"] and "1000 bytes" in over["message"], over["message"]

    bad = route("wf/a.bin", b"x" * 10)
    assert bad["status"] == "ERROR" and "`wf-payroll`" in bad["message"] and INVOICE_WORKFLOW in bad["message"], bad

    unpinned = route("unpinned/a.bin", b"x")
    assert unpinned["status"] == "ERROR" and "must be pinned" in unpinned["message"], unpinned

    deleted = route("ok/deleted.bin", b"0123456789", before=lambda: s3.delete_object(Bucket=landing, Key="ok/deleted.bin"))
    assert deleted["status"] == "SKIPPED" and "deleted before routing" in deleted["message"], deleted

    overwritten = route("ok/changed.bin", b"0123456789", before=lambda: s3.put_object(Bucket=landing, Key="ok/changed.bin", Body=b"9876543210"))
    assert overwritten["status"] == "SKIPPED" and "overwritten since the event" in overwritten["message"], overwritten

    empty = route("ok/empty.bin", b"")
    assert empty["status"] == "ERROR" and "at or past the end of the 0-byte object" in empty["message"], empty

    fine = route("ok/fine.bin", b"0123456789")
    assert fine["status"] == "SUBMITTED", fine
    assert fine["questions"]["Bytes"] == "01234" and fine["questions"]["Head"] == "10"
    record = [e for e in stack.executions() if e["key"] == "ok/fine.bin"][0]
    assert record["plugin"]["reads"]["head_bytes"] == 10 and record["plugin"]["reads"]["range_bytes"] == 5
    # Nothing above was worth a retry: every invocation succeeded, one job was submitted.
    assert len(stack.emulator.jobs()) == 1


def test_plugin_run_over_a_batch_reads_members_from_s3_and_local_files(stack, rust_plugins, tmp_path):
    """`plugin run --member` with members in moto's S3 (read pinned to the ETag found when the
    run starts) and on the local disk, in the order given; a member that is not there is named."""
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    landing = unique("landing")
    s3.create_bucket(Bucket=landing)
    s3.put_object(Bucket=landing, Key="closing/2026-10/orders.csv", Body=b"order_id,customer_id,amount\n1,7,9.50\n")
    s3.put_object(Bucket=landing, Key="closing/2026-10/ledger.csv", Body=b"account,amount\n4000,9.50\n")
    customers = tmp_path / "customers.csv"
    customers.write_bytes(b"customer_id,name\n7,Ada\n")
    members = ["--member", f"s3://{landing}/closing/2026-10/orders.csv", "--member", f"s3://{landing}/closing/2026-10/ledger.csv",
               "--member", str(customers)]
    out = stack.cli("--json", "plugin", "run", str(rust_plugins / "batch-manifest.wasm"), *members,
                    "--group", "closing/2026-10", "--config", json.dumps({"columns": ["customer_id"], "required": ["amount"]}))
    report = json.loads(out.stdout)
    assert report["interface"] == "0.3.0", report
    assert report["members"] == [f"s3://{landing}/closing/2026-10/orders.csv", f"s3://{landing}/closing/2026-10/ledger.csv",
                                 "s3://local/customers.csv"], report
    assert dict(report["questions"]) == {"Matching": "closing/2026-10/orders.csv\ncustomers.csv", "MatchCount": "2",
                                         "MemberCount": "3", "Group": "closing/2026-10"}, report
    assert [(r["member"], r["length"]) for r in report["reads"]["member_ranges"]] == [(0, 37), (1, 25), (2, 23)], report

    missing = stack.cli("plugin", "run", str(rust_plugins / "batch-manifest.wasm"), "--member", f"s3://{landing}/closing/nope.csv",
                        check=False)
    assert missing.returncode != 0 and f"s3://{landing}/closing/nope.csv: no such object" in missing.stderr, missing.stderr
