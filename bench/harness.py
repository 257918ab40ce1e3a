"""Benchmark harness: alteryx-router's `bootstrap` vs the Python recipe vs a Rust hello-world
floor, measured in one run on one machine against the same local services (moto's server for
AWS, the Alteryx emulator), all driven through a Lambda Runtime API server on loopback.

Writes BENCHMARKS.md and bench/cold-start.svg. Run through bench/run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from lambda_runtime_api import RuntimeApi  # noqa: E402

OUT = ROOT / "bench" / "out"
WORKFLOW = "5f3c0e5a2c1b0a0001d1e001"
PRICE_GB_S_ARM = 0.0000133334  # USD, AWS Lambda arm64, first pricing tier (aws.amazon.com/lambda/pricing)
PRICE_PER_M_REQUESTS = 0.20


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


def jobs(emulator: str) -> list[dict]:
    with urllib.request.urlopen(emulator + "/_emulator/jobs", timeout=5) as r:
        return json.load(r)


def event(key: str) -> dict:
    e = json.loads((ROOT / "tests/events/eventbridge-object-created.json").read_text())
    e["detail"]["object"]["key"] = key
    e["detail"]["object"]["sequencer"] = f"{random.getrandbits(64):016X}"
    e["detail"]["object"].pop("version-id", None)
    return e


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Impl:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], submits_job: bool, memory_mb: int):
        self.name, self.cmd, self.env, self.submits_job, self.memory_mb = name, cmd, env, submits_job, memory_mb
        self.cold: list[float] = []
        self.rss: list[int] = []

    def spawn(self, api: RuntimeApi) -> subprocess.Popen:
        # A Lambda sandbox's environment, not this machine's: build hosts often export
        # SSL_CERT_FILE/SSL_CERT_DIR, REQUESTS_CA_BUNDLE and the like, which Lambda does not set
        # and which change what each implementation reads at start-up.
        env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        env.update({"LANG": "en_US.UTF-8", "TZ": ":UTC"})
        env.update(self.env)
        env.update({"AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": self.name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb), "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_LAMBDA_LOG_GROUP_NAME": "bench", "_HANDLER": "app.handler",
                    "LOG_FORMAT": "json", "RUST_LOG": "warn"})
        return subprocess.Popen(self.cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.env.get("CWD"))


def cold_start(impl: Impl, emulator: str, n: int) -> None:
    """One cold start: spawn → the job reaching the emulator (which stamps each request with
    its arrival time, on the same clock), or for the floor → its response. Nothing polls while
    the process starts, so the measurement does not compete with it for the two cores."""
    api = RuntimeApi(function_name=impl.name)
    try:
        key = f"incoming/sales/cold/{impl.name}/{n}-{random.getrandbits(32)}.csv"
        rid = api.submit(event(key))
        t0_wall, t0_mono = time.time(), time.monotonic()
        proc = impl.spawn(api)
        result = api.wait(rid, 60)
        if impl.submits_job:
            if not result.ok:
                raise RuntimeError(f"{impl.name}: {result.body}")
            mine = [j for j in jobs(emulator) if any(v.endswith(key) for _, v in j["questions"])]
            if len(mine) != 1:
                raise RuntimeError(f"{impl.name}: expected one job for {key}, found {len(mine)}")
            elapsed = mine[0]["received_unix_ms"] / 1000 - t0_wall
        else:
            elapsed = result.received_at - t0_mono
        impl.cold.append(elapsed * 1000)
        impl.rss.append(peak_rss_kib(proc.pid))
        proc.kill()
        proc.wait()
    finally:
        api.close()


def warm(impl: Impl, events: int) -> dict:
    api = RuntimeApi(function_name=impl.name)
    proc = impl.spawn(api)
    try:
        api.invoke(event(f"incoming/sales/warmup/{impl.name}.csv"), 60)
        lat = []
        t_all = time.perf_counter()
        for i in range(events):
            t = time.perf_counter()
            r = api.invoke(event(f"incoming/sales/warm/{impl.name}/{i}-{random.getrandbits(32)}.csv"), 60)
            if not r.ok:
                raise RuntimeError(f"{impl.name}: {r.body}")
            lat.append((time.perf_counter() - t) * 1000)
        total = time.perf_counter() - t_all
        return {"median_ms": statistics.median(lat), "p95_ms": pct(lat, 95), "per_s": events / total, "rss_kib": peak_rss_kib(proc.pid)}
    finally:
        proc.kill()
        proc.wait()
        api.close()


def pct(values: list[float], p: int) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def zip_size(paths: list[tuple[Path, str]]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"pkg-{random.getrandbits(32)}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for path, arc in paths:
            if path.is_dir():
                for f in sorted(path.rglob("*")):
                    if f.is_file() and "__pycache__" not in f.parts:
                        z.write(f, f"{arc}/{f.relative_to(path)}")
            else:
                z.write(path, arc)
    size = target.stat().st_size
    target.unlink()
    return size


def criterion(name: str) -> float | None:
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/alteryx-router/target"))
    f = target / "criterion" / name / "new" / "estimates.json"
    try:
        return json.loads(f.read_text())["median"]["point_estimate"] / 1000.0  # ns → µs
    except (OSError, KeyError, ValueError):
        return None


def svg(impls: list[Impl]) -> str:
    width, row, left = 760, 70, 170
    top = 40
    height = top + row * len(impls) + 50
    hi = max(max(i.cold) for i in impls) * 1.05
    import math

    def x(ms: float) -> float:  # log scale: the implementations differ by orders of magnitude
        lo = 0.5
        return left + (width - left - 30) * (math.log10(max(ms, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<text x="{left}" y="20" font-size="14">Cold start: process spawn → job at Alteryx (log scale, ms)</text>']
    colors = {"alteryx-router": "#1f77b4", "python-recipe": "#d62728", "rust-floor": "#2ca02c"}
    for idx, impl in enumerate(impls):
        y = top + row * idx + row / 2
        parts.append(f'<text x="10" y="{y + 4}">{impl.name}</text>')
        for v in impl.cold:
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y + random.uniform(-12, 12):.1f}" r="3" fill="{colors.get(impl.name, "#555")}" fill-opacity="0.6"/>')
        med = statistics.median(impl.cold)
        parts.append(f'<line x1="{x(med):.1f}" x2="{x(med):.1f}" y1="{y - 18}" y2="{y + 18}" stroke="black" stroke-width="2"/>')
        parts.append(f'<text x="{x(med) + 4:.1f}" y="{y - 20}">{med:.1f} ms</text>')
    axis_y = top + row * len(impls) + 10
    parts.append(f'<line x1="{left}" x2="{width - 30}" y1="{axis_y}" y2="{axis_y}" stroke="#888"/>')
    for tick in [1, 3, 10, 30, 100, 300, 1000, 3000]:
        if tick <= hi:
            parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{axis_y}" y2="{axis_y + 5}" stroke="#888"/>')
            parts.append(f'<text x="{x(tick) - 8:.1f}" y="{axis_y + 18}">{tick}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}, {rustc}, Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--router-bin", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--bootstrap-default", help="bootstrap of the default build (plugin compiler, opt-level 3), compared with the shipped one")
    ap.add_argument("--floor", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--moto", required=True)
    args = ap.parse_args()

    moto_port, emu_port = free_port(), free_port()
    procs = [subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([args.router_bin, "emulator", "--port", str(emu_port), "--job-seconds", "5"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        endpoint, emulator = f"http://127.0.0.1:{moto_port}", f"http://127.0.0.1:{emu_port}"
        wait_http(endpoint + "/moto-api/")
        wait_http(emulator + "/_emulator/health")
        aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
        os.environ.update(aws)
        import boto3

        boto3.client("secretsmanager", endpoint_url=endpoint).create_secret(
            Name="alteryx/bench",
            SecretString=json.dumps({"ALTERYX_URL": emulator + "/gallery/api/", "ALTERYX_KEY": "demo-key", "ALTERYX_SECRET": "demo-secret"}))
        ours_env = dict(aws, RULES_TABLE="bench-rules", EXECUTIONS_TABLE="bench-executions", ALTERYX_SECRET_ID="alteryx/bench")
        subprocess.run([args.router_bin, "tables", "create"], env={**os.environ, **ours_env}, check=True, capture_output=True)
        rules = OUT / "bench-rules.yaml"
        OUT.mkdir(parents=True, exist_ok=True)
        rules.write_text(f"- id: sales\n  key: 'incoming/sales/**/*.csv'\n  workflow: '{WORKFLOW}'\n  questions:\n    InputPath: '{{s3_uri}}'\n    FileName: '{{key.name}}'\n")
        subprocess.run([args.router_bin, "rules", "put", str(rules)], env={**os.environ, **ours_env}, check=True, capture_output=True)

        impls = [
            Impl("alteryx-router", [args.bootstrap], ours_env, True, 256),
            Impl("python-recipe", [args.python, "-m", "awslambdaric", "app.handler"],
                 dict(aws, SECRET_ID="alteryx/bench", APP_ID=WORKFLOW, CWD=str(ROOT / "bench/baseline")), True, 256),
            Impl("rust-floor", [args.floor], {}, False, 256),
        ]
        # The same router from the default build: cold starts only (its warm path is identical).
        variants = [Impl("alteryx-router-default-build", [args.bootstrap_default], ours_env, True, 256)] if args.bootstrap_default else []
        print(f"cold starts: {args.runs} per implementation, interleaved", file=sys.stderr)
        for n in range(args.runs):
            for impl in impls + variants:
                cold_start(impl, emulator, n)
        print(f"warm: {args.events} events per implementation", file=sys.stderr)
        warm_results = {impl.name: warm(impl, args.events) for impl in impls}
    finally:
        for p in procs:
            p.kill()
            p.wait()

    ours, base, floor = impls
    site = Path(subprocess.run([args.python, "-c", "import requests, os; print(os.path.dirname(os.path.dirname(requests.__file__)))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    recipe_deps = [(site / d, d) for d in ("requests", "requests_oauthlib", "oauthlib", "urllib3", "idna", "certifi", "charset_normalizer")]
    sizes = {
        "alteryx-router": zip_size([(Path(args.bootstrap), "bootstrap")]),
        "python-recipe": zip_size([(ROOT / "bench/baseline/app.py", "app.py"), *[(p, a) for p, a in recipe_deps if p.exists()]]),
        "rust-floor": zip_size([(Path(args.floor), "bootstrap")]),
    }
    med = {i.name: statistics.median(i.cold) for i in impls}
    p95 = {i.name: pct(i.cold, 95) for i in impls}
    rss = {i.name: max(max(i.rss), warm_results[i.name]["rss_kib"]) for i in impls}
    r_base = med["python-recipe"] / med["alteryx-router"]
    r_floor = med["alteryx-router"] / med["rust-floor"]
    r_rss = rss["alteryx-router"] / rss["python-recipe"] if rss["python-recipe"] else float("nan")
    pipeline_us = criterion("pipeline_new_object_1000_rules")
    match_us = criterion("matching/hit/10000")
    targets = [
        ("cold start ≥ 15× faster than the Python recipe", r_base >= 15, f"{r_base:.1f}×"),
        ("cold start within 2× of the hello-world floor", r_floor <= 2, f"{r_floor:.2f}×"),
        ("peak RSS ≤ 1/4 of the Python recipe", r_rss <= 0.25, f"{r_rss:.2f}"),
    ]
    if pipeline_us is not None:
        targets.append(("warm pipeline overhead < 1 ms (criterion: new object, 1 000 rules, claim + render + submit to the loopback emulator + record)", pipeline_us < 1000, f"{pipeline_us:.0f} µs"))

    def cost(name: str) -> float:
        seconds = warm_results[name]["median_ms"] / 1000
        billed = max(seconds, 0.001)  # Lambda bills per 1 ms
        return 1e6 * billed * (256 / 1024) * PRICE_GB_S_ARM + PRICE_PER_M_REQUESTS

    lines = [
        "# Benchmarks: alteryx-router vs the Python recipe",
        "",
        "Generated by `bench/run` — every number below comes from one run on one machine; ratios are",
        "computed within that run. Local services on loopback: moto's server (Secrets Manager, DynamoDB)",
        "and the Alteryx emulator; the functions are driven through a Lambda Runtime API server.",
        "",
        f"Machine: {machine()}.",
        f"Runs: {args.runs} cold starts per implementation (interleaved), {args.events} warm events each.",
        "",
        "| | alteryx-router (`bootstrap`) | Python recipe (awslambdaric) | Rust hello-world floor |",
        "|---|---|---|---|",
        f"| cold start, median (spawn → job at Alteryx; floor: → response) | {med['alteryx-router']:.1f} ms | {med['python-recipe']:.1f} ms | {med['rust-floor']:.1f} ms |",
        f"| cold start, p95 | {p95['alteryx-router']:.1f} ms | {p95['python-recipe']:.1f} ms | {p95['rust-floor']:.1f} ms |",
        f"| warm event latency, median / p95 | {warm_results['alteryx-router']['median_ms']:.2f} / {warm_results['alteryx-router']['p95_ms']:.2f} ms | {warm_results['python-recipe']['median_ms']:.2f} / {warm_results['python-recipe']['p95_ms']:.2f} ms | {warm_results['rust-floor']['median_ms']:.2f} / {warm_results['rust-floor']['p95_ms']:.2f} ms |",
        f"| warm throughput, one process | {warm_results['alteryx-router']['per_s']:.0f} events/s | {warm_results['python-recipe']['per_s']:.0f} events/s | {warm_results['rust-floor']['per_s']:.0f} events/s |",
        f"| peak RSS | {rss['alteryx-router'] / 1024:.1f} MiB | {rss['python-recipe'] / 1024:.1f} MiB | {rss['rust-floor'] / 1024:.1f} MiB |",
        f"| deployment package (zip) | {sizes['alteryx-router'] / 2**20:.1f} MiB | {sizes['python-recipe'] / 2**20:.2f} MiB (+ boto3 from the runtime) | {sizes['rust-floor'] / 2**20:.2f} MiB |",
        f"| est. Lambda cost per million files (256 MB arm64, warm duration) | ${cost('alteryx-router'):.2f} | ${cost('python-recipe'):.2f} | ${cost('rust-floor'):.2f} |",
        "",
        "What each does per event: the router decodes the event, matches rules (DynamoDB, cached),",
        "claims the execution (DynamoDB conditional write), renders questions, submits the job (OAuth1)",
        "and records it; the recipe reads the secret and submits the job (no state, no de-duplication).",
        "",
        "## Targets",
        "",
        "| target | result | |",
        "|---|---|---|",
        *[f"| {t} | {'PASS' if ok else 'MISS'} | {v} |" for t, ok, v in targets],
        "",
        "## Ratios (same run)",
        "",
        f"- cold start: recipe / router = {r_base:.1f}×; router / floor = {r_floor:.2f}×",
        f"- peak RSS: router / recipe = {r_rss:.2f}",
        "",
        "![cold-start distributions](bench/cold-start.svg)",
        "",
        "## Rust-only numbers (criterion)",
        "",
        f"- rule matching at 10 000 rules, hit: {match_us:.2f} µs" if match_us is not None else "- rule matching: run `cargo bench -p alteryx-router --bench pipeline` first",
        "- see README.md \"Measured\" for every stage",
        "",
        f"Cost: AWS Lambda arm64 price ${PRICE_GB_S_ARM:.10f}/GB-s and ${PRICE_PER_M_REQUESTS:.2f} per million requests",
        "(aws.amazon.com/lambda/pricing, first tier); local durations exclude the network to a real",
        "Alteryx Server and AWS, which dominate in production for both implementations.",
    ]
    if variants:
        v = variants[0]
        size_shipped, size_default = Path(args.bootstrap).stat().st_size, Path(args.bootstrap_default).stat().st_size
        zip_default = zip_size([(Path(args.bootstrap_default), "bootstrap")])
        lines += [
            "",
            "## The shipped Lambda binary and the default build",
            "",
            "Same run, same events. The Lambda is built as `cargo lambda build` makes it",
            "(`[package.metadata.lambda.build]` in `runtime/Cargo.toml`): without the plugin compiler",
            "(it loads plugins compiled ahead of time, `.cwasm`), `opt-level = \"z\"` and fat LTO. The",
            "default build is what `cargo build --release` gives the CLI: compiler included, `opt-level = 3`.",
            "",
            "| | shipped (no compiler, opt-level z, fat LTO) | default build (compiler, opt-level 3) |",
            "|---|---|---|",
            f"| binary | {size_shipped / 2**20:.1f} MiB | {size_default / 2**20:.1f} MiB |",
            f"| zip | {sizes['alteryx-router'] / 2**20:.1f} MiB | {zip_default / 2**20:.1f} MiB |",
            f"| cold start, median / p95 | {med['alteryx-router']:.1f} / {p95['alteryx-router']:.1f} ms | {statistics.median(v.cold):.1f} / {pct(v.cold, 95):.1f} ms |",
            f"| peak RSS (cold) | {max(ours.rss) / 1024:.1f} MiB | {max(v.rss) / 1024:.1f} MiB |",
        ]
    reads = ROOT / "bench" / "plugin-reads.md"  # written by bench/plugin-reads
    if reads.exists():
        lines += ["", reads.read_text().rstrip()]
    for name in ("crate-split.md", "profile-notes.md"):  # hand-written
        notes = ROOT / "bench" / name
        if notes.exists():
            lines += ["", notes.read_text().rstrip()]
    # bench/rules-scale owns its section between markers; a harness run keeps it.
    previous = (ROOT / "BENCHMARKS.md").read_text() if (ROOT / "BENCHMARKS.md").exists() else ""
    begin, end = "<!-- rules-scale:begin -->", "<!-- rules-scale:end -->"
    if begin in previous and end in previous:
        lines += ["", previous[previous.index(begin): previous.index(end) + len(end)]]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    (ROOT / "bench" / "cold-start.svg").write_text(svg(impls))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
