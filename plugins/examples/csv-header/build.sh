#!/usr/bin/env bash
# Builds csv-header.wasm from app.py with componentize-py (PyPI), against plugins/wit/0.1.0
# (a plugin of interface 0.1.0, which the router keeps loading next to 0.2.0 and 0.3.0).
# Usage: plugins/examples/csv-header/build.sh [OUT_DIR]   (default: ./build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here/build}"
cpy="${COMPONENTIZE_PY:-$root/.venv/bin/componentize-py}"
if [[ ! -x "$cpy" ]]; then
  command -v componentize-py >/dev/null || { echo "componentize-py not found: run scripts/setup-venv or pip install componentize-py" >&2; exit 1; }
  cpy=componentize-py
fi
mkdir -p "$out"
cd "$here"
"$cpy" -d "$root/plugins/wit/0.1.0" -w router-plugin componentize app -o "$out/csv-header.wasm"
echo "built $out/csv-header.wasm ($(stat -c %s "$out/csv-header.wasm") bytes)"
