#!/usr/bin/env bash
# Builds xlsx-sheets.wasm (interface 0.3.0, with the SDK in plugins/sdk) for wasm32-wasip2.
# Usage: plugins/examples/xlsx-sheets/build.sh [OUT_DIR]   (default: ./build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../../build-rust.sh" "${1:-$here/build}" xlsx-sheets
