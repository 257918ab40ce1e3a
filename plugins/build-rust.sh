#!/usr/bin/env bash
# Builds the Rust plugins of this workspace (the SDK's examples and test fixtures) as
# WebAssembly components (wasm32-wasip2, release) and copies them to OUT_DIR as <name>.wasm.
# Usage: plugins/build-rust.sh OUT_DIR [PACKAGE...]   (default: every plugin of the workspace)
# Needs: rustup target add wasm32-wasip2   (Rust 1.82 or newer emits components directly).
# The build goes to $CARGO_TARGET_DIR (else plugins/target): a warm one rebuilds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build-rust.sh OUT_DIR [PACKAGE...]}"
shift
packages=("$@")
if [[ ${#packages[@]} -eq 0 ]]; then
  packages=(xlsx-sheets parquet-schema batch-manifest range-probe)
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2" >&2
  exit 1
fi
args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
cargo build --manifest-path "$here/Cargo.toml" --locked --release --target wasm32-wasip2 "${args[@]}"
target="${CARGO_TARGET_DIR:-$here/target}"
mkdir -p "$out"
for p in "${packages[@]}"; do
  cp "$target/wasm32-wasip2/release/${p//-/_}.wasm" "$out/$p.wasm"
  echo "built $out/$p.wasm ($(stat -c %s "$out/$p.wasm") bytes)"
done
