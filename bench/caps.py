"""Benchmarks of concurrency caps and the waiting line (issue 12), against moto and the
emulator, through the real binaries:

1. **Burst** (`--only burst`): N uploads for one rule capped at CAP concurrent jobs of
   JOB_SECONDS each, routed by FUNCTIONS `bootstrap` processes on one Lambda Runtime API while
   one `alteryx-router track --every INTERVAL` process (started first, as the schedule would
   be) dispatches the line. Reported: the most unfinished jobs the emulator held at once,
   whether every upload ran exactly once, the makespan (first upload to last job recorded
   COMPLETED) against the ideal N × JOB_SECONDS / CAP, the passes, and the Alteryx calls.
   Progress lines (timestamped) go to stderr while it runs.
2. **Tracker passes with M jobs in flight** (`--only pass`): M executions SUBMITTED (jobs that
   run for an hour), then two `alteryx-router track` passes in which nothing changes — first
   with `--before-bin` (an older binary, on the same jobs) when given, then with `--router-bin`:
   wall time, Alteryx API calls, DynamoDB requests (counted by a proxy in front of moto) and
   their capacity units.
3. **Capacity units per upload** (`--only capacity`): every DynamoDB request of N uploads from
   the event to `COMPLETED`, for an uncapped and a capped rule, turned into RCU/WCU with
   DynamoDB's documented item sizes and rounding (moto does not report consumed capacity):
   see `capacity()`.

moto answers one request at a time here (its transactions are not isolated from concurrent
requests), by default through bench/moto_serial_fast.py, whose transactions save only the items
they touch instead of deep-copying whole tables (which made thousands of items quadratic);
absolute times are moto's, not DynamoDB's; the counts are ours.

Usage: .venv/bin/python bench/caps.py --router-bin BIN --bootstrap BIN [--only burst|pass|capacity]
       [--uploads N] [--in-flight M] [--before-bin OLD_BIN] [--capacity-uploads K] [--output FILE]
Prints a Markdown section (bench/caps.md keeps the last full one, BENCHMARKS.md its numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import boto3  # noqa: E402
from conftest import free_port, start_emulator, unique, wait_http  # noqa: E402
from dynamo_fault_proxy import DynamoFaultProxy  # noqa: E402
from lambda_runtime_api import RuntimeApi  # noqa: E402

WORKFLOW = "5f3c0e5a2c1b0a0001d1e001"
for name, value in [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                    ("AWS_REGION", "us-east-1"), ("AWS_DEFAULT_REGION", "us-east-1")]:
    os.environ.setdefault(name, value)


def event(key: str, n: int) -> dict:
    e = json.loads((ROOT / "tests/events/eventbridge-object-created.json").read_text())
    e["detail"]["object"].update({"key": key, "size": 1024, "sequencer": f"00C{n:07}"})
    e["detail"]["object"].pop("version-id", None)
    return e


class World:
    def __init__(self, args, job_seconds: str, slots: str | None):
        self.args = args
        port = free_port()
        moto = "bench/moto_serial_fast.py" if args.moto == "fast" else "tests/moto_serial.py"
        self.moto = subprocess.Popen([sys.executable, str(ROOT / moto), str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_http(self.endpoint + "/moto-api/")
        extra = ["--job-seconds", job_seconds] + (["--slots", slots] if slots else [])
        self.emulator = start_emulator(Path(args.router_bin), *extra)
        self.proxy = DynamoFaultProxy(self.endpoint)
        self.tmp = Path(os.environ.get("TMPDIR", "/tmp")) / unique("bench-caps")
        self.tmp.mkdir(parents=True)
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.proxy.url,
            "RULES_TABLE": unique("rules"),
            "EXECUTIONS_TABLE": unique("executions"),
            "ALTERYX_URL": self.emulator.gallery_url,
            "ALTERYX_KEY": "demo-key",
            "ALTERYX_SECRET": "demo-secret",
            "RULES_CACHE_SECONDS": "0",
            "ALTERYX_ROUTER_HOME": str(self.tmp / "home"),
            "ALTERYX_REQUEST_TIMEOUT_SECONDS": "5",
            "OUTCOME_WRITE_RESERVE_SECONDS": "2",
            "TRACK_BUDGET_SECONDS": "30",
            "TRACK_MAX_EXECUTIONS": "100000",
            "RUST_LOG": "warn",
        }
        self.ddb = boto3.client("dynamodb", endpoint_url=self.endpoint, region_name="us-east-1")
        self.redelivered = 0
        # Outcomes of the invocations by status: SUBMITTED ones took a slot at their arrival.
        self.routed: dict[str, int] = {}
        self.cli("tables", "create")

    def cli(self, *args: str, router_bin: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}
        env.update(self.env)
        done = subprocess.run([router_bin or self.args.router_bin, *args], env=env, capture_output=True,
                              text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"{args}: {done.stdout}\n{done.stderr}")
        return done

    def rules(self, yaml: str) -> None:
        path = self.tmp / "rules.yaml"
        path.write_text(yaml)
        self.cli("rules", "put", str(path))

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        kwargs = {"TableName": self.env["EXECUTIONS_TABLE"], "ProjectionExpression": "#s",
                  "ExpressionAttributeNames": {"#s": "status"}}
        while True:
            page = self.ddb.scan(**kwargs)
            for item in page["Items"]:
                if "status" in item:
                    counts[item["status"]["S"]] = counts.get(item["status"]["S"], 0) + 1
            if "LastEvaluatedKey" not in page:
                return counts
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def route(self, keys: list[str], functions: int) -> float:
        """Route one event per key through `functions` bootstrap processes; seconds taken."""
        api = RuntimeApi(timeout_ms=60_000)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}
        env.update(self.env, AWS_LAMBDA_RUNTIME_API=api.address, AWS_LAMBDA_FUNCTION_NAME="alteryx-router",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="$LATEST", METRICS="off")
        procs = [subprocess.Popen([self.args.bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(functions)]
        try:
            api.wait_for_next_calls(functions, timeout=120)
            started = time.monotonic()
            pending = list(enumerate(keys))
            # As Lambda does for an asynchronous event: a failed invocation is delivered again,
            # twice at most (an outcome not recorded under load is reconciled by the retry).
            for attempt in range(3):
                ids = [(i, k, api.submit(event(k, i))) for i, k in pending]
                results = [(i, k, api.wait(rid, timeout=1800)) for i, k, rid in ids]
                for _, _, r in results:
                    if r.ok:
                        for obj in r.body.get("objects", []):
                            for o in obj.get("outcomes", []):
                                self.routed[o["status"]] = self.routed.get(o["status"], 0) + 1
                failed = [(i, k, r.body) for i, k, r in results if not r.ok]
                if not failed:
                    break
                self.redelivered += len(failed)
                progress(self.args, f"{len(failed)} invocations failed (delivered again): {failed[:2]}")
                pending = [(i, k) for i, k, _ in failed]
            else:
                raise RuntimeError(f"{len(failed)} invocations failed three times: {failed[:3]}")
            return time.monotonic() - started
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            api.close()

    def close(self) -> None:
        self.proxy.close()
        self.emulator.proc.terminate()
        self.moto.terminate()


def progress(args, text: str) -> None:
    """A timestamped progress line on stderr (a long burst is watched while it runs)."""
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def burst(args) -> list[str]:
    w = World(args, str(args.job_seconds), str(args.cap))
    try:
        w.rules(f"- {{id: burst, key: 'burst/**', workflow: '{WORKFLOW}', max_concurrent_jobs: {args.cap}, "
                f"questions: {{InputPath: '{{s3_uri}}'}}}}\n")
        keys = [f"burst/{i:06}.csv" for i in range(args.uploads)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}
        env.update(w.env, RUST_LOG="info")
        # The tracker runs from the start, as the scheduled function does; its pass summaries
        # (one JSON line each) are kept to count passes and what they did.
        passes_log = w.tmp / "tracker-passes.jsonl"
        # Its log lines ("tracker run", with each pass's elapsed_ms) say where the time goes.
        tracker_log = w.tmp / "tracker.log"
        tracker = subprocess.Popen([args.router_bin, "--json", "track", "--every", str(args.interval)], env=env,
                                   stdout=passes_log.open("w"), stderr=tracker_log.open("w"))
        progress(args, f"burst of {args.uploads} uploads; tracker passes in {passes_log}")
        started = time.monotonic()
        try:
            routed = w.route(keys, args.functions)
            progress(args, f"routed {args.uploads} uploads in {routed:.1f} s; stats {w.emulator.stats()}")
            last_report = 0.0
            while True:
                time.sleep(2)
                stats = w.emulator.stats()
                elapsed = time.monotonic() - started
                if elapsed - last_report >= 60:
                    last_report = elapsed
                    progress(args, f"{elapsed:.0f} s: emulator received {stats['jobs_received']}, completed "
                                   f"{stats['jobs_completed']}, max unfinished {stats['max_unfinished']}")
                # Scanning the table is costly for moto (one request at a time): only at the end.
                if stats["jobs_completed"] >= args.uploads:
                    counts = w.statuses()
                    if counts.get("COMPLETED", 0) == args.uploads:
                        break
                if elapsed > args.uploads * args.job_seconds * 6 + 600:
                    raise RuntimeError(f"not done: {w.statuses()}")
            makespan = time.monotonic() - started
        finally:
            tracker.terminate()
            tracker.wait(10)
        stats = w.emulator.stats()
        inputs = [v for j in w.emulator.jobs() for n, v in j["questions"] if n == "InputPath"]
        once = sorted(inputs) == [f"s3://acme-landing/{k}" for k in keys]
        ideal = args.uploads * args.job_seconds / args.cap
        summaries, text, at = [], passes_log.read_text(), 0
        decoder = json.JSONDecoder()
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                break
            try:
                value, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                break
            summaries.append(value)
        passes = len(summaries) or makespan / args.interval
        log = re.sub(r"\x1b\[[0-9;]*m", "", tracker_log.read_text())  # colours, if any
        pass_ms = sorted(int(m) for m in re.findall(r'elapsed_ms"?[=:]\s*(\d+)', log))
        def pct(q: float) -> float:
            return pass_ms[min(len(pass_ms) - 1, int(q * len(pass_ms)))] / 1000 if pass_ms else float("nan")
        rows = [
            f"### Burst: {args.uploads} uploads, cap {args.cap}, {args.job_seconds} s jobs, tracker every {args.interval} s\n",
            "| | |", "|---|---|",
            f"| routed by {args.functions} functions (tracker running meanwhile) | {routed:.1f} s ({args.uploads / routed:.0f} uploads/s), "
            f"{w.redelivered} invocation(s) failed and were delivered again |",
            f"| submitted by their own invocation / put in line | {w.routed.get('SUBMITTED', 0)} / {w.routed.get('WAITING', 0)} |",
            f"| submitted from the line by the tracker | {sum(s.get('dispatched', 0) for s in summaries)} |",
            f"| most unfinished jobs at the emulator | {stats['max_unfinished']} (cap {args.cap}) |",
            f"| every upload exactly once | {'yes' if once else 'NO'} ({stats['jobs_received']} jobs for {args.uploads} uploads) |",
            f"| makespan | {makespan:.1f} s |",
            f"| ideal ({args.uploads} × {args.job_seconds} s / {args.cap}) | {ideal:.1f} s |",
            f"| overhead | {makespan - ideal:.1f} s ({makespan / ideal:.2f}× ideal) |",
            f"| tracker passes | {passes:.0f} ({makespan / max(1, passes):.2f} s apart on average) |",
            f"| a pass's own time (then it sleeps {args.interval} s) | median {pct(0.5):.2f} s, p90 {pct(0.9):.2f} s, "
            f"max {pct(1.0):.2f} s; {sum(pass_ms) / 1000:.0f} s in all |",
            f"| Alteryx calls | {stats['operations']['submit']} submits, {stats['operations']['get_job']} job polls, "
            f"{stats['operations']['list_jobs']} job-list calls |",
            "",
            f"Where the overhead goes: a slot is freed when a tracker pass records its job's end, so each "
            f"round of {args.cap} jobs waits for the pass after it finished — the tracker's sleep "
            f"({args.interval} s) plus the pass's own time — before the next round is submitted "
            f"({passes:.0f} passes for {args.uploads / args.cap:.0f} rounds here). A pass's own time is "
            f"DynamoDB requests (moto answering one at a time, shared with the routing functions "
            f"while they run) and Alteryx calls.\n",
        ]
        progress(args, "\n".join(rows))
        return rows
    finally:
        w.close()


def track_pass(w: World, router_bin: str) -> dict:
    """One `alteryx-router track` pass: its report, wall time, Alteryx calls, DynamoDB requests."""
    before = w.emulator.stats()["operations"]
    w.proxy.seen.clear()
    started = time.monotonic()
    done = w.cli("--json", "track", router_bin=router_bin)
    took = time.monotonic() - started
    report, _ = json.JSONDecoder().raw_decode(done.stdout)
    after = w.emulator.stats()["operations"]
    ops: dict[str, int] = {}
    for op, _ in w.proxy.seen:
        ops[op] = ops.get(op, 0) + 1
    return {"report": report, "took": took, "ops": ops,
            "get_job": after["get_job"] - before["get_job"], "list_jobs": after["list_jobs"] - before["list_jobs"]}


def pass_in_flight(args) -> list[str]:
    w = World(args, "3600", None)
    # moto pages the status index by reading the whole table: reading 10,000 records takes it
    # longer than a pass's 30 s budget would allow for polling at all.
    w.env["TRACK_BUDGET_SECONDS"] = "900"
    try:
        w.rules(f"- {{id: flight, key: 'flight/**', workflow: '{WORKFLOW}', questions: {{InputPath: '{{s3_uri}}'}}}}\n")
        keys = [f"flight/{i:06}.csv" for i in range(args.in_flight)]
        routed = w.route(keys, args.functions)
        progress(args, f"routed {args.in_flight} uploads in {routed:.1f} s")
        assert w.statuses().get("SUBMITTED") == args.in_flight
        w.proxy.record = True
        runs = [("before (one poll per job)", args.before_bin)] if args.before_bin else []
        runs.append(("after", args.router_bin))
        passes, heads = [], []
        for label, binary in runs:
            for n in ("first", "second"):
                passes.append(track_pass(w, binary))
                passes[-1]["rcu"] = capacity(w, w.proxy.exchanges)
                w.proxy.exchanges.clear()
                heads.append(f"{label}: {n} pass")
                progress(args, f"{heads[-1]}: {passes[-1]['report']} took {passes[-1]['took']:.1f} s, "
                               f"{passes[-1]['get_job']} job polls, {passes[-1]['list_jobs']} list calls, "
                               f"DynamoDB {passes[-1]['ops']}, {passes[-1]['rcu']['rcu']} RCU")
        w.proxy.record = False
        rows = [
            f"### Tracker passes with {args.in_flight} jobs in flight (nothing finished, nothing changed)\n",
            "| | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads),
        ]
        def row(name, f):
            rows.append(f"| {name} | " + " | ".join(f(p) for p in passes) + " |")
        row("wall time (moto answering one request at a time)", lambda p: f"{p['took']:.1f} s")
        row("executions read", lambda p: f"{p['report']['checked']} (still running {p['report']['still_running']}, not polled {p['report'].get('deferred', 0)})")
        row("Alteryx: single-job requests", lambda p: f"{p['get_job']} ({p['get_job'] / max(1, args.in_flight):.2f} per job)")
        row("Alteryx: job-list requests (pages of 100)", lambda p: f"{p['list_jobs']}")
        row("DynamoDB requests", lambda p: ", ".join(f"{k} {v}" for k, v in sorted(p["ops"].items())))
        row("DynamoDB requests as the pass counted them", lambda p: f"{p['report']['dynamodb_reads']} reads, {p['report']['dynamodb_writes']} writes" if "dynamodb_reads" in p["report"] else "(not counted before)")
        row("DynamoDB capacity (computed)", lambda p: f"{p['rcu']['rcu']:.1f} RCU, {p['rcu']['wcu']:.0f} WCU")
        rows.append("")
        return rows
    finally:
        w.close()


# DynamoDB's documented sizes and rounding (Developer Guide, "Item sizes and formats" and
# "Read/write capacity mode"): an item's size is the sum of its attribute names' and values'
# lengths; a write costs 1 WCU per 1 KB of the item (the larger of before and after), a
# transactional one 2; a strongly consistent read 1 RCU per 4 KB (an absent item still 1),
# eventually consistent half; a Query rounds the sum of the items it read up to 4 KB; a GSI
# (projection ALL) costs a write of the item per change, two when its key (status) changes.
def value_size(v: dict) -> int:
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "N":
        digits = x.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if t == "B":
        import base64
        return len(base64.b64decode(x))
    if t in ("BOOL", "NULL"):
        return 1
    if t == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    if t in ("SS", "NS", "BS"):
        return sum(value_size({t[0]: e}) for e in x)
    return 0


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def kb(size: int, unit: int) -> int:
    return max(1, -(-size // unit))


def capacity(w: World, exchanges: list[tuple[str, bytes, bytes]]) -> dict:
    """RCU and WCU of `exchanges`, using the items' sizes now (an upper bound for updates:
    items only grow along an execution's life)."""
    final: dict[str, int] = {}
    has_status: dict[str, bool] = {}
    kwargs = {"TableName": w.env["EXECUTIONS_TABLE"]}
    while True:
        page = w.ddb.scan(**kwargs)
        for item in page["Items"]:
            final[item["id"]["S"]] = item_size(item)
            has_status[item["id"]["S"]] = "status" in item
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    rcu = wcu = 0.0
    by_op: dict[str, list[float]] = {}

    last_status: dict[str, str | None] = {}

    def write(key: str, size: int | None, factor: int, new_status: str | None, sets_status: bool) -> float:
        """WCU of one write of item `key`: the table's, plus the status index's (projection ALL)."""
        size = max(size or 0, final.get(key, 0))
        units = factor * kb(size, 1024)
        old = last_status.get(key)
        if sets_status:
            if old is not None and new_status is not None and old != new_status:
                units += 2 * kb(size, 1024)  # the index entry moves: a delete and a put
            elif old is not None or new_status is not None:
                units += kb(size, 1024)
            last_status[key] = new_status
        elif old is not None:
            units += kb(size, 1024)  # the index entry's copy of the item changes
        return units

    def set_expr(spec: dict) -> tuple[str | None, bool]:
        expr = spec.get("UpdateExpression", "")
        if "#status" not in expr:
            return None, False
        values = spec.get("ExpressionAttributeValues", {})
        status = next((v.get("S") for k, v in values.items() if "status" in k and v.get("S", "").isupper()), None)
        return status, True

    executions_table = w.env["EXECUTIONS_TABLE"].encode()
    for op, body, answer in exchanges:
        # The executions table only: the rules table is read with RULES_CACHE_SECONDS=0 here
        # (a bench setting; deployments cache rules or read a snapshot), and DescribeTable is free.
        if executions_table not in body or op == "DescribeTable":
            continue
        req = json.loads(body or b"{}")
        try:
            ans = json.loads(answer or b"{}")
        except json.JSONDecodeError:
            ans = {}
        r = u = 0.0
        if "__type" in ans:
            # Refused (a condition failed, a transaction cancelled): a failed conditional write
            # still costs the write (its item's size); nothing changed in the index.
            op = f"{op} refused"
            for spec in [req] + [next(iter(e.values())) for e in req.get("TransactItems", [])]:
                key = (spec.get("Item") or spec.get("Key") or {}).get("id", {}).get("S")
                if key:
                    u += kb(final.get(key, 0), 1024) * (2 if "TransactItems" in req else 1)
        elif op == "PutItem":
            item = req["Item"]
            u = write(item["id"]["S"], item_size(item), 1, item.get("status", {}).get("S"), True)
        elif op == "UpdateItem":
            u = write(req["Key"]["id"]["S"], None, 1, *set_expr(req))
        elif op == "DeleteItem":
            u = write(req["Key"]["id"]["S"], None, 1, None, True)
        elif op == "TransactWriteItems":
            for entry in req["TransactItems"]:
                (kind, spec), = entry.items()
                if kind == "Put":
                    item = spec["Item"]
                    u += write(item["id"]["S"], item_size(item), 2, item.get("status", {}).get("S"), True)
                elif kind == "Update":
                    u += write(spec["Key"]["id"]["S"], None, 2, *set_expr(spec))
                else:
                    u += 2 * kb(final.get(spec["Key"]["id"]["S"], 0), 1024)
        elif op == "GetItem":
            factor = 1 if req.get("ConsistentRead") else 0.5
            r = factor * kb(item_size(ans.get("Item", {})), 4096)
        elif op == "BatchGetItem":
            for table, found in ans.get("Responses", {}).items():
                factor = 1 if req["RequestItems"][table].get("ConsistentRead") else 0.5
                r += sum(factor * kb(item_size(i), 4096) for i in found)
                r += factor * max(0, len(req["RequestItems"][table]["Keys"]) - len(found))
        elif op in ("Query", "Scan"):
            factor = 1 if req.get("ConsistentRead") else 0.5
            items = ans.get("Items", [])
            sizes = [item_size(i) for i in items]
            scanned = ans.get("ScannedCount", len(items))
            avg = (sum(sizes) / len(sizes)) if sizes else 1024
            total = sum(sizes) + avg * max(0, scanned - len(items))
            r = factor * kb(int(total), 4096)
        rcu += r
        wcu += u
        by_op.setdefault(op, [0, 0.0, 0.0])
        by_op[op][0] += 1
        by_op[op][1] += r
        by_op[op][2] += u
    return {"rcu": rcu, "wcu": wcu, "by_op": by_op, "item_sizes": sorted(final.values())}


def capacity_per_upload(args) -> list[str]:
    """Every DynamoDB request of N uploads end to end (route, dispatch, track to COMPLETED)."""
    rows = ["### DynamoDB capacity units per upload, end to end (computed from every request)\n"]
    for label, cap in (("uncapped rule", None), (f"rule capped at {args.cap}", args.cap)):
        w = World(args, "0.2", None)
        try:
            capped = f", max_concurrent_jobs: {cap}" if cap else ""
            w.rules(f"- {{id: cu, key: 'cu/**', workflow: '{WORKFLOW}'{capped}, questions: {{InputPath: '{{s3_uri}}'}}}}\n")
            keys = [f"cu/{i:06}.csv" for i in range(args.capacity_uploads)]
            w.proxy.record = True
            w.route(keys, args.functions)
            passes = 0
            while w.statuses().get("COMPLETED", 0) < len(keys):
                w.cli("--json", "track")
                passes += 1
                if passes > 10 * len(keys):
                    raise RuntimeError(f"not done: {w.statuses()}")
            c = capacity(w, w.proxy.exchanges)
            n = len(keys)
            ops = ", ".join(f"{op} {v[0] / n:.2f} ({v[1] / n:.2f} RCU, {v[2] / n:.2f} WCU)" for op, v in sorted(c["by_op"].items()))
            sizes = c["item_sizes"]
            rows += [
                f"**{label}**, {n} uploads, {passes} tracker passes: **{c['rcu'] / n:.2f} RCU and {c['wcu'] / n:.2f} WCU per upload** "
                f"(requests per upload: {ops}; item sizes {sizes[0]}–{sizes[-1]} bytes).\n",
            ]
            progress(args, rows[-1])
        finally:
            w.close()
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--router-bin", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--uploads", type=int, default=200)
    p.add_argument("--cap", type=int, default=4)
    p.add_argument("--job-seconds", type=float, default=1.0)
    p.add_argument("--interval", type=int, default=1)
    p.add_argument("--functions", type=int, default=4)
    p.add_argument("--in-flight", type=int, default=1000)
    p.add_argument("--before-bin", help="an older `alteryx-router` whose passes are measured first, on the same jobs")
    p.add_argument("--profile", default="debug")
    p.add_argument("--only", choices=["burst", "pass", "capacity"], help="run one of the benchmarks")
    p.add_argument("--capacity-uploads", type=int, default=100)
    p.add_argument("--output", help="also write the section to this file")
    p.add_argument("--moto", choices=["fast", "serial"], default="fast",
                   help="fast: bench/moto_serial_fast.py (transactions save only their items); serial: tests/moto_serial.py")
    args = p.parse_args()
    lines = [f"## Concurrency caps and the waiting line (bench/caps.py, {args.profile} binaries)\n",
             "Machine: 2 shared cores; moto answering one request at a time.\n"]
    if args.only in (None, "burst"):
        lines += burst(args)
    if args.only in (None, "pass"):
        lines += pass_in_flight(args)
    if args.only in (None, "capacity"):
        lines += capacity_per_upload(args)
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
