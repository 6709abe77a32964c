// Fails when a workspace package imports a package it does not declare, or
// declares one it never imports. Source files (src/**/*.ts minus tests) may
// import dependencies and peerDependencies; tests and benches may also use
// devDependencies and the root's devDependencies. Every dependency and peer
// must be imported by source files; every devDependency by something (a
// peer repeated in devDependencies, for the package's own tests, counts).
// Modules loaded through a computed name are declared in the file with a
// `// check-deps: <name>` comment.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const rootDev = new Set(Object.keys(rootPkg.devDependencies ?? {}));
const builtins = new Set(builtinModules);

// Static imports/re-exports, side-effect imports, import() and require()/
// require.resolve() of a literal (a template literal counts up to its first
// `${`), and the `check-deps:` comment. Comments are stripped first.
const SPECIFIERS = [
  /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm,
  /^\s*import\s*['"]([^'"]+)['"]/gm,
  /\bimport\(\s*(?:\/\*[^*]*\*\/\s*)?['"`]([^'"`$]+)/g,
  /\brequire(?:\.resolve)?\(\s*['"`]([^'"`$]+)/g,
  /\bcreateRequire\([^)]*\)\.resolve\(\s*['"`]([^'"`$]+)/g,
];
const DECLARED = /\/\/\s*check-deps:\s*(\S+)/g;
const stripComments = (text) =>
  text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');

function packageName(spec) {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) return undefined;
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  return builtins.has(name) ? undefined : name;
}

function* tsFiles(dir) {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (/\.(m?ts|tsx)$/.test(entry) && !entry.endsWith('.d.ts')) yield p;
  }
}

const isTest = (file) => /\.(test|bench)\.ts$|[/\\](test|__tests__|fixtures)[/\\]/.test(file);
const workspaceDirs = ['packages', 'apps', 'examples'].flatMap((d) =>
  readdirSync(join(root, d)).map((p) => join(root, d, p)),
);

const manifests = new Map();
for (const dir of workspaceDirs) {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    manifests.set(pkg.name, pkg);
  } catch {}
}

/** Peers of the workspace packages `pkg` depends on, transitively: an app provides them. */
function peersOfWorkspaceDeps(pkg, seen = new Set()) {
  const out = new Set();
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies })) {
    const m = manifests.get(dep);
    if (!m || seen.has(dep)) continue;
    seen.add(dep);
    for (const peer of Object.keys(m.peerDependencies ?? {})) out.add(peer);
    for (const peer of peersOfWorkspaceDeps(m, seen)) out.add(peer);
  }
  return out;
}

const problems = [];
for (const dir of workspaceDirs) {
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  } catch {
    continue;
  }
  const deps = new Set(Object.keys(pkg.dependencies ?? {}));
  const peers = new Set(Object.keys(pkg.peerDependencies ?? {}));
  const dev = new Set(Object.keys(pkg.devDependencies ?? {}));
  const usedBySource = new Map();
  const usedByTests = new Map();
  for (const file of tsFiles(join(dir, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const used = isTest(file) ? usedByTests : usedBySource;
    const specs = [
      ...SPECIFIERS.flatMap((re) => [...stripComments(text).matchAll(re)].map((m) => m[1])),
      ...[...text.matchAll(DECLARED)].map((m) => m[1]),
    ];
    for (const spec of specs) {
      const name = packageName(spec);
      if (!name || name === pkg.name) continue;
      if (!used.has(name)) used.set(name, relative(root, file));
    }
  }
  const where = relative(root, join(dir, 'package.json'));
  for (const [name, file] of usedBySource) {
    if (!deps.has(name) && !peers.has(name))
      problems.push(
        `${where}: ${file} imports ${name}, which is not in dependencies or peerDependencies`,
      );
  }
  for (const [name, file] of usedByTests) {
    if (!deps.has(name) && !peers.has(name) && !dev.has(name) && !rootDev.has(name))
      problems.push(`${where}: ${file} imports ${name}, which is not declared`);
  }
  const provided = peersOfWorkspaceDeps(pkg);
  for (const name of [...deps, ...peers]) {
    if (!usedBySource.has(name) && !provided.has(name))
      problems.push(
        `${where}: ${name} is in ${deps.has(name) ? 'dependencies' : 'peerDependencies'} but no source file imports it (nor is it a peer of a workspace dependency)`,
      );
    if (deps.has(name) && peers.has(name))
      problems.push(`${where}: ${name} is both a dependency and a peer`);
  }
  for (const name of dev) {
    const typed = name.startsWith('@types/')
      ? name.slice(7).replace(/^(.+)__(.+)$/, '@$1/$2')
      : undefined;
    const used = [name, typed].some((n) => n && (usedBySource.has(n) || usedByTests.has(n)));
    if (!used && !peers.has(name))
      problems.push(`${where}: ${name} is in devDependencies but nothing imports it`);
  }
  for (const name of peers) {
    const optional = pkg.peerDependenciesMeta?.[name]?.optional === true;
    if (!dev.has(name) && !deps.has(name) && !optional && usedByTests.size > 0) {
      // Tests run against the workspace: a required peer must also be a devDependency.
      problems.push(`${where}: peer ${name} is not in devDependencies (tests need it installed)`);
    }
  }
}

if (problems.length) {
  console.error(`check-deps: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-deps: ${workspaceDirs.length} packages declare exactly what they import`);
