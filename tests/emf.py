"""CloudWatch embedded metric format (EMF): the metrics alteryx-router writes, and a checker of
the rules the specification sets for a document, so a test can tell whether CloudWatch would
turn a line into metrics or drop it.

The rules, from "Specification: Embedded metric format" (Amazon CloudWatch User Guide): the
log event is one JSON object; `_aws` holds `Timestamp` (integer milliseconds since the epoch)
and `CloudWatchMetrics`, an array of directives; a directive has exactly `Namespace` (1-255
characters), `Dimensions` (an array of dimension sets, each an array of at most 30 keys, possibly
empty) and `Metrics` (at most 100 definitions, each `Name` plus optional `Unit` from CloudWatch's
units and optional `StorageResolution` 1 or 60). Every dimension key and metric name refers to a
member of the root: a dimension's value is a string (CloudWatch takes 1-1024 characters, not
blank), a metric's value is a number or an array of at most 100 numbers."""

from __future__ import annotations

import json
import math
import time

NAMESPACE = "AlteryxRouter"

# Every metric alteryx-router writes, with its unit (runtime/core/src/metrics.rs).
METRICS = {
    "RulesMatched": "Count",
    "JobsSubmitted": "Count",
    "Duplicates": "Count",
    "Errors": "Count",
    "Waiting": "Count",
    "OutcomesUnknown": "Count",
    "Uncertain": "Count",
    "ObjectsUnmatched": "Count",
    "JobsCompleted": "Count",
    "JobsFailed": "Count",
    "JobDurationSeconds": "Seconds",
    "StaleClaims": "Count",
    "TrackerErrors": "Count",
    "Dispatched": "Count",
    "JobPolls": "Count",
    "JobListCalls": "Count",
    "DynamoDBReads": "Count",
    "DynamoDBWrites": "Count",
    "BatchMembersJoined": "Count",
    "BatchesClosed": "Count",
    "BatchesExpired": "Count",
}

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
    "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
    "Count/Second", "None",
}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def problems(line: str) -> list[str]:
    """What keeps `line` from being a valid EMF log event (empty when it is valid)."""
    found: list[str] = []
    if len(line.encode()) > 256 * 1024:
        found.append("larger than a CloudWatch Logs event (256 KB)")
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as e:
        return [f"not JSON: {e}"]
    if not isinstance(doc, dict):
        return ["the root is not a JSON object"]
    aws = doc.get("_aws")
    if not isinstance(aws, dict):
        return ["no `_aws` object"]
    ts = aws.get("Timestamp")
    if not (isinstance(ts, int) and not isinstance(ts, bool)):
        found.append(f"_aws.Timestamp is not an integer: {ts!r}")
    elif abs(ts - time.time() * 1000) > 3600 * 1000:
        found.append(f"_aws.Timestamp {ts} is not milliseconds near now")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return found + ["_aws.CloudWatchMetrics is not a non-empty array"]
    for i, d in enumerate(directives):
        where = f"CloudWatchMetrics[{i}]"
        if not isinstance(d, dict):
            found.append(f"{where} is not an object")
            continue
        if set(d) - {"Namespace", "Dimensions", "Metrics"}:
            found.append(f"{where} has members the specification does not define: {set(d)}")
        ns = d.get("Namespace")
        if not (isinstance(ns, str) and 1 <= len(ns) <= 255):
            found.append(f"{where}.Namespace {ns!r}")
        dims = d.get("Dimensions")
        if not isinstance(dims, list) or not dims:
            found.append(f"{where}.Dimensions is not a non-empty array of dimension sets")
            dims = []
        for dset in dims:
            if not isinstance(dset, list) or len(dset) > 30:
                found.append(f"{where}: dimension set {dset!r} is not an array of at most 30 keys")
                continue
            for key in dset:
                value = doc.get(key) if isinstance(key, str) else None
                if not (isinstance(key, str) and 1 <= len(key) <= 255):
                    found.append(f"{where}: dimension key {key!r}")
                elif not (isinstance(value, str) and 1 <= len(value) <= 1024 and value.strip()):
                    found.append(f"{where}: dimension {key} has no string value on the root: {value!r}")
        metrics = d.get("Metrics")
        if not isinstance(metrics, list) or len(metrics) > 100:
            found.append(f"{where}.Metrics is not an array of at most 100 definitions")
            metrics = []
        for m in metrics:
            if not isinstance(m, dict) or set(m) - {"Name", "Unit", "StorageResolution"}:
                found.append(f"{where}: metric definition {m!r}")
                continue
            name = m.get("Name")
            if not (isinstance(name, str) and 1 <= len(name) <= 255):
                found.append(f"{where}: metric name {name!r}")
                continue
            if "Unit" in m and m["Unit"] not in UNITS:
                found.append(f"{where}: {name} has unit {m['Unit']!r}, not a CloudWatch unit")
            if "StorageResolution" in m and m["StorageResolution"] not in (1, 60):
                found.append(f"{where}: {name} StorageResolution {m['StorageResolution']!r}")
            value = doc.get(name)
            if isinstance(value, list):
                if not value or len(value) > 100 or not all(_number(v) for v in value):
                    found.append(f"{where}: {name} is not 1 to 100 numbers: {value!r}")
            elif not _number(value):
                found.append(f"{where}: {name} has no numeric value on the root: {value!r}")
    return found


def documents(lines: list[str]) -> list[dict]:
    """Every line as an EMF document; fails on the first line that is not one."""
    docs = []
    for line in lines:
        found = problems(line)
        assert not found, f"not a valid EMF document: {found}\n{line}"
        docs.append(json.loads(line))
    return docs


def metric_names(doc: dict) -> set[str]:
    return {m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def units(doc: dict) -> dict[str, str]:
    return {m["Name"]: m.get("Unit", "None") for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def total(docs: list[dict], name: str, rule: str | None = None) -> float:
    """The sum of metric `name` over `docs` (of one rule, when given), as CloudWatch would add it up."""
    out = 0.0
    for doc in docs:
        if name not in metric_names(doc) or (rule is not None and doc.get("Rule") != rule):
            continue
        value = doc[name]
        out += sum(value) if isinstance(value, list) else value
    return out


def values(docs: list[dict], name: str, rule: str | None = None) -> list[float]:
    """Every value of metric `name` (arrays flattened)."""
    out: list[float] = []
    for doc in docs:
        if name in metric_names(doc) and (rule is None or doc.get("Rule") == rule):
            value = doc[name]
            out.extend(value if isinstance(value, list) else [value])
    return out
