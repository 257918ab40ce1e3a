#!/usr/bin/env bash
# Builds json-fields.wasm (a WebAssembly component) with Rust's wasm32-wasip2 target.
# Usage: plugins/examples/json-fields-rust/build.sh [OUT_DIR]   (default: ./build)
# Needs: rustup target add wasm32-wasip2   (Rust 1.82 or newer)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2" >&2
  exit 1
fi
cargo build --manifest-path "$here/Cargo.toml" --release --target wasm32-wasip2
target="${CARGO_TARGET_DIR:-$here/target}"
mkdir -p "$out"
cp "$target/wasm32-wasip2/release/json_fields.wasm" "$out/json-fields.wasm"
echo "built $out/json-fields.wasm ($(stat -c %s "$out/json-fields.wasm") bytes)"
