// Installs each packed package alone (with the tarballs of the workspace
// packages it depends on) into an empty project with npm, as a user would,
// and prints the size of node_modules and the largest packages in it.
//   node scripts/install-sizes.mjs [tarball dir, default .packed] [package names...]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const dir = resolve(process.argv[2] ?? '.packed');
const only = process.argv.slice(3);
const tarballs = new Map();
for (const f of readdirSync(dir).filter((f) => f.endsWith('.tgz'))) {
  const manifest = JSON.parse(
    execFileSync('tar', ['-xzOf', join(dir, f), 'package/package.json'], { encoding: 'utf8' }),
  );
  tarballs.set(manifest.name, { file: join(dir, f), manifest });
}

function withWorkspaceDeps(name, seen = new Set()) {
  if (seen.has(name) || !tarballs.has(name)) return seen;
  seen.add(name);
  const m = tarballs.get(name).manifest;
  // Required peers come along (npm installs them too); optional ones do not.
  const optional = (d) => m.peerDependenciesMeta?.[d]?.optional === true;
  const deps = [...Object.keys(m.dependencies ?? {}), ...Object.keys(m.peerDependencies ?? {})];
  for (const d of deps.filter((d) => !optional(d))) withWorkspaceDeps(d, seen);
  return seen;
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
for (const name of only.length ? only : [...tarballs.keys()].sort()) {
  const project = mkdtempSync(join(tmpdir(), 'tl-size-'));
  writeFileSync(
    join(project, 'package.json'),
    '{"name":"size-probe","private":true,"type":"module"}',
  );
  const files = [...withWorkspaceDeps(name)].map((n) => tarballs.get(n).file);
  // Skip onnxruntime-node's CUDA download in case an old tarball still pulls it.
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files], {
    cwd: project,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  const du = (p) => Number(execFileSync('du', ['-sb', p], { encoding: 'utf8' }).split('\t')[0]);
  const nm = join(project, 'node_modules');
  const top = [];
  for (const entry of readdirSync(nm)) {
    if (entry.startsWith('.')) continue;
    const subs = entry.startsWith('@')
      ? readdirSync(join(nm, entry)).map((s) => `${entry}/${s}`)
      : [entry];
    for (const s of subs) top.push([s, du(join(nm, s))]);
  }
  top.sort((a, b) => b[1] - a[1]);
  const big = top.filter(([, b]) => b > 5e6).map(([n, b]) => `${n} ${mb(b)}`);
  console.log(`${name}: ${mb(du(nm))}${big.length ? ` (${big.join(', ')})` : ''}`);
  rmSync(project, { recursive: true, force: true });
}
