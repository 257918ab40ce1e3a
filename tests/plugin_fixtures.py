"""Objects for the plugin examples, made at test time by real writers: Excel workbooks by
openpyxl, Parquet files by pyarrow. Used by the end-to-end tests, the Rust tests (through the
command line below) and bench/plugin-reads.

    python tests/plugin_fixtures.py xlsx OUT.xlsx --sheets "Sales,Costs" [--mib 50]
    python tests/plugin_fixtures.py parquet OUT.parquet --columns "id,region,amount" [--mib 50]

`--mib N` makes the object about N MiB (a workbook with that much sheet data, a Parquet file
with that many rows of random numbers), to show that the plugins read kilobytes of it."""

from __future__ import annotations

import argparse
import base64
import io
import os
import random
import zipfile
from pathlib import Path


def xlsx_bytes(sheets: list[str], mib: float = 0) -> bytes:
    """A workbook with these sheets, made by openpyxl. With `mib`, the first sheet holds about
    that many MiB of (incompressible) cell data, written in openpyxl's sheet format."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = sheets[0]
    wb.active.append(["id", "region", "amount"])
    wb.active.append([1, "EU", 1200.5])
    for name in sheets[1:]:
        wb.create_sheet(name).append(["note"])
    buf = io.BytesIO()
    wb.save(buf)
    if not mib:
        return buf.getvalue()
    # openpyxl writes ~50k cells a second; a 50 MiB sheet the same way takes minutes. Write the
    # first sheet's XML directly instead, rows of random base64 strings (inline strings, as
    # openpyxl's write-only mode does), and keep every other part as openpyxl made it.
    rng = random.Random(16)
    target = int(mib * 1024 * 1024)
    rows, size, n = [], 0, 0
    while size < target:
        n += 1
        row = f'<row r="{n}">' + "".join(
            f'<c r="{col}{n}" t="inlineStr"><is><t>{base64.b64encode(rng.randbytes(48)).decode()}</t></is></c>'
            for col in "ABCD"
        ) + "</row>"
        rows.append(row)
        size += len(row) * 52 // 100  # what deflate leaves of random base64 in this markup
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        + "".join(rows)
        + "</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = sheet.encode() if item.filename == "xl/worksheets/sheet1.xml" else src.read(item.filename)
            dst.writestr(item.filename, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return out.getvalue()


def parquet_bytes(columns: list[str], mib: float = 0, rows: int = 3) -> bytes:
    """A Parquet file with these columns (int64), made by pyarrow; with `mib`, about that many
    MiB of random numbers (uncompressed, so the size is what it says)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if mib:
        rows = int(mib * 1024 * 1024 / 8 / len(columns))
    rng = random.Random(16)
    data = {c: pa.array([rng.getrandbits(63) for _ in range(rows)], pa.int64()) if mib else pa.array(range(rows), pa.int64()) for c in columns}
    buf = io.BytesIO()
    pq.write_table(pa.table(data), buf, compression="none" if mib else "snappy")
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["xlsx", "parquet"])
    p.add_argument("out", type=Path)
    p.add_argument("--sheets", default="Sales,Costs")
    p.add_argument("--columns", default="id,region,amount")
    p.add_argument("--mib", type=float, default=0)
    a = p.parse_args()
    if a.kind == "xlsx":
        data = xlsx_bytes(a.sheets.split(","), a.mib)
    else:
        data = parquet_bytes(a.columns.split(","), a.mib)
    tmp = a.out.with_suffix(a.out.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
