#!/usr/bin/env bash
# Builds key-facts.wasm with jco componentize (npm), against plugins/wit.
# Usage: plugins/examples/key-facts-js/build.sh [OUT_DIR]   (default: ./build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
cd "$here"
if [[ ! -x node_modules/.bin/jco ]]; then
  npm install --no-audit --no-fund --silent
fi
mkdir -p "$out"
node_modules/.bin/jco componentize app.js --wit ../../wit --world-name router-plugin --disable all -o "$out/key-facts.wasm"
echo "built $out/key-facts.wasm ($(stat -c %s "$out/key-facts.wasm") bytes)"
