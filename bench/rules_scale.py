"""Rules at scale: what 10 to 100,000 rules cost the CLI and the Lambda's cold start.

Measures, for rule sets shaped like the ones teams build (one rule per partner folder,
`incoming/partner-NNNNN/**/*.csv`, one workflow each):

- the CLI (`rules validate FILE`, `rules test --rules FILE ...`): wall time, CPU time and
  peak RSS of the process (from wait4's rusage);
- the real `bootstrap`'s cold start with the rules in DynamoDB (moto), driven through the
  Lambda Runtime API with one event that matches one rule: CPU time (user + system, all
  threads, from wait4's rusage, so moto's own slowness does not count) and peak RSS, and
  the requests it made to AWS, counted by a recording proxy in front of moto: how many, and
  how many of them ran one after the other (the longest chain of non-overlapping requests).

Run through bench/rules-scale. Prints a table and writes it between the `rules-scale`
markers of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from lambda_runtime_api import RuntimeApi  # noqa: E402

OUT = ROOT / "bench" / "out" / "rules-scale"
WORKFLOW = "5f3c0e5a2c1b0a0001d1e001"
BEGIN, END = "<!-- rules-scale:begin -->", "<!-- rules-scale:end -->"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:  # noqa: BLE001
            time.sleep(0.05)
    raise TimeoutError(url)


def partner_rule(i: int) -> dict:
    return {"id": f"partner-{i:05d}", "key": f"incoming/partner-{i:05d}/**/*.csv", "workflow": WORKFLOW,
            "questions": {"InputPath": "{s3_uri}", "FileName": "{key.name}"}}


def rules_file(n: int) -> Path:
    """A YAML list of `n` partner rules, one per line (flow style), written once."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"partner-rules-{n}.yaml"
    if not path.exists():
        lines = [f"- {json.dumps(partner_rule(i), separators=(', ', ': '))}" for i in range(n)]
        path.write_text("\n".join(lines) + "\n")
    return path


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run to completion; wall time, CPU time (user + system) and peak RSS from wait4."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_kib": usage.ru_maxrss}


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


# ---------------------------------------------------------------------------------------------
# A recording proxy in front of moto: counts the function's AWS requests and how many of them
# happened one after the other.


class Recorder:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.requests: list[tuple[float, float, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                t0 = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection("127.0.0.1", recorder.upstream_port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()
                target = self.headers.get("X-Amz-Target", "").split(".")[-1] or f"S3 {self.command}"
                with recorder.lock:
                    recorder.requests.append((t0, time.monotonic(), target))

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self) -> list[tuple[float, float, str]]:
        with self.lock:
            out, self.requests = self.requests, []
        return out


def sequential_depth(requests: list[tuple[float, float, str]]) -> int:
    """The longest chain of requests each starting after the previous one ended."""
    depth, last_end = 0, float("-inf")
    for start, end, _ in sorted(requests, key=lambda r: r[1]):
        if start >= last_end:
            depth, last_end = depth + 1, end
    return depth


# ---------------------------------------------------------------------------------------------


def load_table(ddb, table: str, n: int) -> None:
    """`n` partner rules straight into DynamoDB (as the console or a migration would)."""
    import boto3

    res = boto3.resource("dynamodb", endpoint_url=ddb.meta.endpoint_url, region_name="us-east-1")
    with res.Table(table).batch_writer() as batch:
        for i in range(n):
            item = partner_rule(i)
            item.update({"enabled": True, "priority": 100, "final": False})
            batch.put_item(Item=item)


def cold_start(bootstrap: str, env: dict[str, str], recorder: Recorder, emulator: str) -> dict:
    api = RuntimeApi(function_name="rules-scale")
    try:
        key = f"incoming/partner-00003/2026/{random.getrandbits(32)}.csv"
        event = json.loads((ROOT / "tests/events/eventbridge-object-created.json").read_text())
        event["detail"]["object"]["key"] = key
        event["detail"]["object"]["sequencer"] = f"{random.getrandbits(64):016X}"
        event["detail"]["object"].pop("version-id", None)
        rid = api.submit(event)
        recorder.take()
        full_env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        full_env.update({"LANG": "en_US.UTF-8", "TZ": ":UTC", "LOG_FORMAT": "json", "RUST_LOG": "warn",
                         "AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": "rules-scale",
                         "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                         "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_LAMBDA_LOG_GROUP_NAME": "bench"})
        full_env.update(env)
        t0 = time.perf_counter()
        proc = subprocess.Popen([bootstrap], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            result = api.wait(rid, 900)
        except TimeoutError:
            proc.kill()
            raise RuntimeError(f"bootstrap gave no answer: {proc.stderr.read().decode()[-3000:]}")
        wall = time.perf_counter() - t0
        # Idle now, waiting for the next event: its CPU time and peak RSS are the cold start's.
        proc.send_signal(signal.SIGKILL)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = -9
        if not result.ok:
            raise RuntimeError(f"bootstrap failed: {result.body}\n{proc.stderr.read().decode()[-3000:]}")
        summary = result.body
        submitted = sum(1 for o in summary["objects"] for x in o["outcomes"] if x["status"] == "SUBMITTED")
        if submitted != 1:
            raise RuntimeError(f"expected one job, got {summary}")
        requests = recorder.take()
        rules_requests = [r for r in requests if r[2] in ("Scan", "DescribeTable", "S3 GET", "S3 HEAD")]
        return {"cpu_s": usage.ru_utime + usage.ru_stime, "rss_kib": usage.ru_maxrss, "wall_s": wall,
                "rules_requests": len(rules_requests), "rules_sequential": sequential_depth(rules_requests)}
    finally:
        api.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True, help="the alteryx-router CLI (release)")
    ap.add_argument("--bootstrap", required=True, help="the Lambda's bootstrap (release, as shipped)")
    ap.add_argument("--moto", required=True)
    ap.add_argument("--sizes", default="10,1000,10000,100000")
    ap.add_argument("--cold-sizes", default="10,10000,100000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--label", default="after", help="which column this run fills (before/after)")
    ap.add_argument("--snapshot", action="store_true", help="publish a rules snapshot (RULES_SNAPSHOT_URI) for the cold starts")
    ap.add_argument("--json-out", help="also write the raw numbers here")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--before", help="an earlier run's --json-out, shown beside this one")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    cold_sizes = [int(s) for s in args.cold_sizes.split(",") if s]

    results: dict = {"label": args.label, "cli": {}, "cold": {}}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULES_", "ALTERYX_"))}
    for n in sizes:
        path = rules_file(n)
        validate = median_of([measure([args.cli, "rules", "validate", str(path)], env) for _ in range(args.runs)])
        test = median_of([measure([args.cli, "rules", "test", "--rules", str(path), "--bucket", "acme-landing",
                                   "--key", "incoming/partner-00003/2026/x.csv"], env) for _ in range(args.runs)])
        results["cli"][n] = {"validate": validate, "test": test}
        print(f"cli {n:>7}: validate {validate['wall_s']:.2f} s {validate['rss_kib'] / 1024:.1f} MiB; "
              f"test {test['wall_s']:.2f} s {test['rss_kib'] / 1024:.1f} MiB", file=sys.stderr)

    if cold_sizes:
        moto_port, emu_port = free_port(), free_port()
        procs = [subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                 subprocess.Popen([args.cli, "emulator", "--port", str(emu_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            moto = f"http://127.0.0.1:{moto_port}"
            emulator = f"http://127.0.0.1:{emu_port}"
            wait_http(moto + "/moto-api/")
            wait_http(emulator + "/_emulator/health")
            recorder = Recorder(moto_port)
            aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                   "AWS_DEFAULT_REGION": "us-east-1"}
            os.environ.update(aws)
            import boto3

            ddb = boto3.client("dynamodb", endpoint_url=moto)
            boto3.client("secretsmanager", endpoint_url=moto).create_secret(
                Name="alteryx/rules-scale",
                SecretString=json.dumps({"ALTERYX_URL": emulator + "/gallery/api/", "ALTERYX_KEY": "demo-key", "ALTERYX_SECRET": "demo-secret"}))
            if args.snapshot:
                boto3.client("s3", endpoint_url=moto).create_bucket(Bucket="rules-scale-snapshots")
            for n in cold_sizes:
                table_env = dict(aws, AWS_ENDPOINT_URL=moto, RULES_TABLE=f"rules-{n}", EXECUTIONS_TABLE=f"executions-{n}",
                                 ALTERYX_SECRET_ID="alteryx/rules-scale")
                if args.snapshot:
                    table_env["RULES_SNAPSHOT_URI"] = f"s3://rules-scale-snapshots/rules-{n}.bin"
                subprocess.run([args.cli, "tables", "create"], env={**env, **table_env}, check=True, capture_output=True)
                t = time.monotonic()
                load_table(ddb, f"rules-{n}", n)
                print(f"loaded {n} rules into moto in {time.monotonic() - t:.0f} s", file=sys.stderr)
                if args.snapshot:
                    subprocess.run([args.cli, "rules", "snapshot"], env={**env, **table_env}, check=True, capture_output=True)
                runs = []
                for _ in range(args.runs):
                    runs.append(cold_start(args.bootstrap, {**table_env, "AWS_ENDPOINT_URL": recorder.endpoint}, recorder, emulator))
                results["cold"][n] = median_of(runs)
                c = results["cold"][n]
                print(f"cold {n:>7}: cpu {c['cpu_s'] * 1000:.1f} ms, rss {c['rss_kib'] / 1024:.1f} MiB, "
                      f"{c['rules_requests']:.0f} rules requests, {c['rules_sequential']:.0f} sequential", file=sys.stderr)
        finally:
            for p in procs:
                p.kill()
                p.wait()

    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    before = json.loads(Path(args.before).read_text()) if args.before else None
    table = render(results, before)
    print(table)
    if not args.no_write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        section = f"{BEGIN}\n{table}\n{END}"
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        path.write_text(text)
    return 0


def render(after: dict, before: dict | None) -> str:
    """Markdown tables: the CLI and the cold start, before beside after when given."""
    def cell(run: dict | None, *path):
        try:
            for p in path:
                run = run[p] if not isinstance(run, dict) or p in run else run[str(p)]
            return run
        except (KeyError, TypeError):
            return None

    def fmt_s(v):
        return "–" if v is None else f"{v:.2f} s"

    def fmt_mib(v):
        return "–" if v is None else f"{v / 1024:.1f} MiB"

    def fmt_ms(v):
        return "–" if v is None else f"{v * 1000:.1f} ms"

    lines = ["## Rules at scale (bench/rules-scale)", "",
             f"Machine: {machine()}. Rules shaped `incoming/partner-NNNNN/**/*.csv`, one per partner; medians of the runs.", "",
             "CLI over a file of rules (`rules validate FILE`; `rules test --rules FILE --bucket acme-landing --key incoming/partner-00003/2026/x.csv`), wall time and peak RSS:", "",
             "| rules | validate" + (" before" if before else "") + " | validate | test" + (" before" if before else "") + " | test |",
             "|---|" + ("---|" * (4 if before else 2))]
    for n in sorted(int(k) for k in after["cli"]):
        row = [f"{n:,}"]
        for cmd in ("validate", "test"):
            if before:
                b = cell(before, "cli", n, cmd)
                row.append(f"{fmt_s(b and b['wall_s'])}, {fmt_mib(b and b['rss_kib'])}" if b else "–")
            a = cell(after, "cli", n, cmd)
            row.append(f"{fmt_s(a['wall_s'])}, {fmt_mib(a['rss_kib'])}")
        lines.append("| " + " | ".join(row) + " |")
    if after["cold"]:
        lines += ["", "Cold start of the real `bootstrap` (spawn → first event routed, one job submitted), rules in DynamoDB (moto) "
                  "and, after, the snapshot in S3 (moto): process CPU time (user + system, all threads) and peak RSS; requests "
                  "for the rules and how many of them ran one after the other:", "",
                  "| rules | CPU" + (" before" if before else "") + " | CPU | peak RSS" + (" before" if before else "") + " | peak RSS | rules requests (sequential)" + (" before" if before else "") + " | rules requests (sequential) |",
                  "|---|" + ("---|" * (6 if before else 3))]
        base = cell(after, "cold", min(int(k) for k in after["cold"]))
        for n in sorted(int(k) for k in after["cold"]):
            a = cell(after, "cold", n)
            b = cell(before, "cold", n) if before else None
            row = [f"{n:,}"]
            if before:
                row.append(fmt_ms(b and b["cpu_s"]))
            row.append(fmt_ms(a["cpu_s"]) + (f" (+{(a['cpu_s'] - base['cpu_s']) * 1000:.1f})" if n != min(int(k) for k in after['cold']) else ""))
            if before:
                row.append(fmt_mib(b and b["rss_kib"]))
            row.append(fmt_mib(a["rss_kib"]) + (f" (+{(a['rss_kib'] - base['rss_kib']) / 1024:.1f})" if n != min(int(k) for k in after['cold']) else ""))
            if before:
                row.append("–" if not b else f"{b['rules_requests']:.0f} ({b['rules_sequential']:.0f})")
            row.append(f"{a['rules_requests']:.0f} ({a['rules_sequential']:.0f})")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
