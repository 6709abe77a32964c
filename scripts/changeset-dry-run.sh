#!/usr/bin/env bash
# The release flow without releasing: `changeset version` in a throwaway copy
# of the committed tree with the working copy's changesets and manifests, then check that every
# package got a version and a CHANGELOG and that the result still packs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tmp=$(mktemp -d "${TMPDIR:-/tmp}/transferlab-release.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git archive HEAD | tar -x -C "$tmp"
rm -rf "$tmp/.changeset" && cp -r .changeset "$tmp/.changeset"
for m in packages/*/package.json apps/*/package.json; do cp "$m" "$tmp/$m"; done
ln -s "$root/node_modules" "$tmp/node_modules"
pending=$(find .changeset -name '*.md' ! -name README.md | wc -l)
(cd "$tmp" && git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm tree &&
  node_modules/.bin/changeset version >/dev/null)
for dir in packages/* apps/*; do
  [ -f "$dir/package.json" ] || continue
  before=$(node -p "require('./$dir/package.json').version")
  after=$(node -p "require('$tmp/$dir/package.json').version")
  log=$([ -f "$tmp/$dir/CHANGELOG.md" ] && echo "CHANGELOG.md" || echo "no CHANGELOG")
  echo "  $(node -p "require('./$dir/package.json').name"): $before → $after ($log)"
  # A 0.x package jumping to a new major means a peer range forced it.
  if [ "${before%%.*}" = 0 ] && [ "${after%%.*}" != 0 ]; then
    echo "changeset-dry-run: $dir would jump to $after (a peer range out of date?)" >&2
    exit 1
  fi
  # workspace:^ ranges must survive versioning (pnpm turns them into ^x.y.z on pack).
  if grep -q '"workspace:\*"' "$tmp/$dir/package.json"; then
    echo "changeset-dry-run: $dir uses workspace:* (publishes exact pins)" >&2
    exit 1
  fi
done
echo "changeset-dry-run: ok ($pending pending changeset(s) applied in a throwaway tree)"
