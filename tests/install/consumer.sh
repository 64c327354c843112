#!/usr/bin/env bash
# Installs the build tree into a private prefix and builds examples/consumer,
# a project outside the tree, with find_package(snapfs CONFIG) and
# snapfs::core; then runs it. Usage: consumer.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d /tmp/snapfs-consumer-XXXXXX)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/examples/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
out=$("$work/build/snapfs-demo" "$work/demo.txt")
echo "$out"
grep -q '^snapshot (.*): Hello world!$' <<<"$out"
grep -q '^after commit: Hello sekai!$' <<<"$out"
