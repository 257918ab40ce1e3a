#!/usr/bin/env bash
# Builds key-facts.wasm with jco componentize (npm), against plugins/wit/0.1.0 (the plugin is a
# 0.1.0 plugin; the router loads 0.1.0, 0.2.0 and 0.3.0 plugins alike).
# Usage: plugins/examples/key-facts-js/build.sh [OUT_DIR]   (default: ./build)
# Needs: Node.js 20+ and npm (the npm registry). `npm ci` installs exactly package-lock.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
cd "$here"
if [[ ! -x node_modules/.bin/jco ]]; then
  npm ci --no-audit --no-fund --silent
fi
mkdir -p "$out"
node_modules/.bin/jco componentize app.js --wit ../../wit/0.1.0 --world-name router-plugin --disable all -o "$out/key-facts.wasm"
echo "built $out/key-facts.wasm ($(stat -c %s "$out/key-facts.wasm") bytes)"
