#!/usr/bin/env bash
# Builds every workspace package and packs each into one tarball in $1
# (default .packed/): what a user would download from the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-.packed}")"
rm -rf "$out" && mkdir -p "$out"
pnpm -s build >/dev/null
for dir in packages/* apps/*; do
  [ -f "$dir/package.json" ] || continue
  (cd "$dir" && pnpm pack --pack-destination "$out" >/dev/null)
done
ls "$out"
