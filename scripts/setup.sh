#!/usr/bin/env bash
# Installs what a fresh Debian machine with Node.js 20+ lacks: pnpm, the
# Fashion-MNIST data (Debian's dataset-fashion-mnist), and the workspace's
# npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi; }

if ! command -v pnpm >/dev/null 2>&1; then
  echo "setup: installing pnpm 10"
  npm install -g pnpm@10 >/dev/null
fi

FASHION_DIR="${TRANSFERLAB_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [ ! -f "$FASHION_DIR/t10k-labels-idx1-ubyte.gz" ] && [ ! -f "$FASHION_DIR/t10k-labels-idx1-ubyte" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: no apt-get; Fashion-MNIST tasks need the IDX files in \$TRANSFERLAB_FASHION_MNIST_DIR" >&2
  fi
fi

# The HTML report's browser test opens the report in Debian's Chromium.
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium (headless browser test of the HTML report)"
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: no apt-get; the HTML report's browser test needs /usr/bin/chromium" >&2
  fi
fi

# Sweeps across machines (`pnpm bench queue/worker`) run on Redis; their tests start a local redis-server.
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's redis-server (the queue's tests start one on a loopback port)"
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "setup: no apt-get; the queue's tests need redis-server on the PATH" >&2
  fi
fi

pnpm install --frozen-lockfile
