#!/usr/bin/env bash
# Builds file-kind.wasm from app.py with componentize-py (PyPI), against plugins/wit/0.2.0: it
# stays a plugin of interface 0.2.0, which the router keeps loading next to 0.3.0 (the tests
# route it to prove that).
# Usage: plugins/examples/file-kind-py/build.sh [OUT_DIR]   (default: ./build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here/build}"
cpy="$(command -v componentize-py || echo "$root/.venv/bin/componentize-py")"
mkdir -p "$out"
cd "$here"
"$cpy" -d "$root/plugins/wit/0.2.0" -w router-plugin componentize app -o "$out/file-kind.wasm"
echo "built $out/file-kind.wasm ($(stat -c %s "$out/file-kind.wasm") bytes)"
