#!/usr/bin/env bash
# Sets up, builds and runs snapfs on a demo directory.
# Usage: scripts/demo.sh [DIR]   (default /tmp/snapfs-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dir=${1:-/tmp/snapfs-demo}
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" >/dev/null
prefix=$(mktemp -d /tmp/snapfs-demo-prefix-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install build/release --prefix "$prefix" >/dev/null
cmake -S examples/consumer -B "$prefix/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/build" >/dev/null
mkdir -p "$dir"
echo "== the core library on $dir/demo.txt"
"$prefix/build/snapfs-demo" "$dir/demo.txt"
