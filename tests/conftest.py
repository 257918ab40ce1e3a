"""Shared fixtures for the end-to-end tests: built binaries, moto's server, the Alteryx
emulator, and a Lambda Runtime API server driving the real `bootstrap` binary."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lambda_runtime_api import RuntimeApi  # noqa: E402

TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def _bin(env_name: str, name: str) -> Path:
    path = Path(os.environ.get(env_name) or TARGET / "debug" / name)
    if not path.exists():
        pytest.fail(f"{path} not found: build first (scripts/test does) or set {env_name}")
    return path


@pytest.fixture(scope="session")
def router_bin() -> Path:
    return _bin("ALTERYX_ROUTER_BIN", "alteryx-router")


@pytest.fixture(scope="session")
def bootstrap_bin() -> Path:
    return _bin("BOOTSTRAP_BIN", "bootstrap")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{url} not answering after {timeout}s: {last}")


def unique(prefix: str) -> str:
    return f"{prefix}-{random.randrange(16**8):08x}"


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's server: the one scripts/test started, else one of our own."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if os.environ.get("AWS_ENDPOINT_URL"):
        yield os.environ["AWS_ENDPOINT_URL"]
        return
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/moto-api/")
    os.environ["AWS_ENDPOINT_URL"] = url
    yield url
    proc.terminate()
    proc.wait(10)


class Emulator:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.gallery_url = f"{self.base}/gallery/api/"
        self.webapi_url = f"{self.base}/webapi/"

    def jobs(self) -> list[dict]:
        with urllib.request.urlopen(self.base + "/_emulator/jobs", timeout=5) as r:
            return json.load(r)

    def fault(self, **spec) -> None:
        req = urllib.request.Request(
            self.base + "/_emulator/faults",
            data=json.dumps(spec).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=5).read()

    def reset(self) -> None:
        req = urllib.request.Request(self.base + "/_emulator/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def stats(self) -> dict:
        """Requests per operation and job counts since the start or the last reset."""
        with urllib.request.urlopen(self.base + "/_emulator/stats", timeout=5) as r:
            return json.load(r)

    def set_credentials(self, pairs: list[tuple[str, str]]) -> dict:
        """Rotate: only these key/secret pairs are accepted from now on; issued tokens stop working."""
        return self._post("/_emulator/credentials", {"credentials": [{"key": k, "secret": s} for k, s in pairs]})

    def slow_submit(self, delay_ms: int, count: int = 1) -> None:
        """The next job requests are queued at once and answered after `delay_ms`."""
        self.fault(submit_delay_ms=delay_ms, count=count)

    def lose_submit_answer(self, count: int = 1) -> None:
        """The next job requests are queued, then their connections closed unanswered."""
        self.fault(submit_lose_answer=count)

    def swallow_submit(self, count: int = 1) -> None:
        """The next job requests queue nothing, and their connections close unanswered."""
        self.fault(submit_swallow=count)

    def wait_for_jobs(self, n: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.jobs()
            if len(jobs) >= n:
                return jobs
            time.sleep(0.05)
        raise TimeoutError(f"the emulator has {len(self.jobs())} job(s), expected {n}")


def start_emulator(router_bin: Path, *extra: str) -> Emulator:
    port = free_port()
    proc = subprocess.Popen(
        [str(router_bin), "emulator", "--port", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    emu = Emulator(proc, port)
    wait_http(emu.base + "/_emulator/health")
    return emu


@pytest.fixture()
def emulator(router_bin):
    emu = start_emulator(router_bin, "--job-seconds", "1")
    yield emu
    emu.proc.terminate()
    emu.proc.wait(10)


@pytest.fixture()
def runtime_api():
    api = RuntimeApi()
    yield api
    api.close()


class Lambda:
    """A `bootstrap` process attached to a RuntimeApi. Its stderr (the logs) and its stdout
    (CloudWatch embedded metric format documents, nothing else) are kept apart, as Lambda
    would need them to be for metrics to parse."""

    def __init__(self, bootstrap_bin: Path, api: RuntimeApi, env: dict[str, str]):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ALTERYX_")}
        full_env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": api.address,
                "AWS_LAMBDA_FUNCTION_NAME": "alteryx-router",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_STREAM_NAME": "test",
                "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/alteryx-router",
                "LOG_FORMAT": "json",
                "RUST_LOG": "info",
            }
        )
        full_env.update(env)
        self.api = api
        name = unique("bootstrap")
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}.log"
        self.stdout_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}.stdout"
        self._log = open(self.log_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([str(bootstrap_bin)], env=full_env, stdout=self._stdout, stderr=self._log)

    def logs(self) -> str:
        """What the process logged (stderr)."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stdout_lines(self) -> list[str]:
        """What the process wrote to stdout, line by line."""
        self._stdout.flush()
        return self.stdout_path.read_text(errors="replace").splitlines()

    def kill(self) -> None:
        """SIGKILL, as Lambda ends a function at its timeout or out of memory."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        self._stdout.close()


@pytest.fixture()
def start_lambda(bootstrap_bin):
    started: list[Lambda] = []

    def start(api: RuntimeApi, env: dict[str, str]) -> Lambda:
        fn = Lambda(bootstrap_bin, api, env)
        started.append(fn)
        return fn

    yield start
    for fn in started:
        fn.stop()
