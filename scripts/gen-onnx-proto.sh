#!/usr/bin/env bash
# Regenerates packages/graph/src/gen/onnx_pb.ts from packages/graph/proto/onnx.proto
# (ONNX v1.17.0's own schema, IR version 10, commit b8baa8446686496da4cc8fda09f2b6fe65c2a02c,
# Apache-2.0) with buf and protoc-gen-es, both pinned in the root devDependencies.
# Offline and deterministic: CI runs it and fails if the committed file differs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=packages/graph/src/gen
rm -rf "$out"
cat > /tmp/transferlab-buf.gen.yaml <<YAML
version: v2
plugins:
  - local: $PWD/node_modules/.bin/protoc-gen-es
    out: $PWD/$out
    opt: [target=ts, import_extension=js]
YAML
(cd packages/graph/proto && "$OLDPWD/node_modules/.bin/buf" generate --template /tmp/transferlab-buf.gen.yaml)
rm -f /tmp/transferlab-buf.gen.yaml
ls "$out"
