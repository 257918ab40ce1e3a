"""file-kind: an alteryx-router plugin (interface 0.2.0) in Python that tells what kind of file
an object is from its first and last bytes, read with ranged reads, and runs the workflow the
rule's config names for that kind.

It returns the question values
  Kind       parquet | zip (xlsx, docx, ...) | pdf | gzip | text | unknown
  BytesRead  how many bytes it read (8 of a file of any size)
and, when config.workflows names a workflow for the kind, chooses it (it must be one of the
rule's plugin.workflows). Rule config (all optional):
  {"workflows": {"parquet": "<workflow id>", "zip": "<workflow id>"}, "skip": ["unknown"]}
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

# (kind, bytes at the start, bytes at the end)
SIGNATURES = [
    ("parquet", b"PAR1", b"PAR1"),
    ("zip", b"PK\x03\x04", None),
    ("pdf", b"%PDF", None),
    ("gzip", b"\x1f\x8b", None),
]


def kind_of(first: bytes, last: bytes) -> str:
    for kind, start, end in SIGNATURES:
        if first.startswith(start) and (end is None or last.endswith(end)):
            return kind
    if first and all(b in b"\t\n\r" or 32 <= b < 127 for b in first):
        return "text"
    return "unknown"


class WitWorld(wit_world.WitWorld):
    def route(self, request: types.Request) -> types.Outcome:
        try:
            config = json.loads(request.config or "{}")
        except ValueError as e:
            raise Err(f"config is not JSON: {e}")
        size = request.object.size
        # Ranged reads of the event's version of the object; each counts against the rule's
        # read_budget_bytes. Reading at or past the end ends the call: ask only for what exists.
        first = bytes(host.read_range(0, 4)) if size else b""
        last = bytes(host.read_range(max(size - 4, 0), 4)) if size else b""
        kind = kind_of(first, last)
        host.log(host.Level.INFO, f"{request.object.key}: {kind}")
        if kind in config.get("skip", []):
            return types.Outcome_Skip(f"a {kind} file")
        values = [
            types.QuestionValue("Kind", kind),
            types.QuestionValue("BytesRead", str(len(first) + len(last))),
        ]
        workflow = config.get("workflows", {}).get(kind)
        if workflow:
            return types.Outcome_Workflow(types.WorkflowChoice(workflow, values))
        return types.Outcome_Questions(values)
