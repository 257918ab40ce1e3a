"""csv-header: an alteryx-router plugin that reads a CSV file's header.

It returns the question values
  Columns      number of columns
  ColumnNames  the column names, comma-separated
  ReportDate   the first YYYY-MM-DD date found in the object key, else in the first data row
and skips files that lack the columns the rule requires.

Rule config (all optional):
  {"delimiter": ",", "required": ["Region", "Amount"]}
"""

import csv
import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

DATE = re.compile(r"(20\d{2})[-_/]?(0[1-9]|1[0-2])[-_/]?(0[1-9]|[12]\d|3[01])")


def find_date(text):
    m = DATE.search(text)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else None


class WitWorld(wit_world.WitWorld):
    def route(self, request: types.Request) -> types.Outcome:
        try:
            config = json.loads(request.config or "{}")
        except ValueError as e:
            raise Err(f"config is not JSON: {e}")
        delimiter = config.get("delimiter", ",")
        required = config.get("required", [])
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise Err("config.delimiter must be one character")

        # (componentize-py's stdlib has no utf-8-sig codec: strip a BOM by hand)
        text = bytes(request.head).decode("utf-8", errors="replace").lstrip("\ufeff")
        lines = text.splitlines()
        if not lines or not lines[0].strip():
            return types.Outcome_Skip("the file is empty")
        rows = list(csv.reader(lines[:2], delimiter=delimiter))
        header = [h.strip() for h in rows[0]]
        missing = [c for c in required if c not in header]
        if missing:
            return types.Outcome_Skip("missing required column(s): " + ", ".join(missing))

        first_row = delimiter.join(rows[1]) if len(rows) > 1 else ""
        date = find_date(request.object.key) or find_date(first_row)
        host.log(host.Level.INFO, f"{request.object.key}: {len(header)} columns, date {date}")

        values = [
            types.QuestionValue("Columns", str(len(header))),
            types.QuestionValue("ColumnNames", ",".join(header)),
        ]
        if date:
            values.append(types.QuestionValue("ReportDate", date))
        return types.Outcome_Questions(values)
