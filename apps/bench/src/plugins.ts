/**
 * Method plugins: a contributor's `TransferMethod` in their own file or
 * package, used by a suite without editing the project. A plugin is loaded
 * by dynamic `import()` (TypeScript loads too: the CLI runs under tsx, tests
 * under vitest), checked against the method contract at run time — a plugin
 * is not type-checked against this version of @transferlab/methods — and
 * added to a copy of the method registry.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type AnyTransferMethod,
  createMethodRegistry,
  ENGINES,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
} from '@transferlab/methods';
import { z } from 'zod';
import type { Registries } from './run-suite.js';

/** A method a suite takes from a plugin: the id the suite uses, and where the plugin is. */
export interface MethodPluginSpec {
  /** The plugin method's own `id` (checked). */
  id: string;
  /** A path (./my-method.ts, relative to the base directory, or absolute) or a package name. */
  from: string;
}

const KEBAB = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const KEBAB_ID =
  'must be a kebab-case string such as "my-method" (lower-case letters and digits, single hyphens)';

const FUNCTION = 'must be a function';
const hook = () =>
  z.custom<(...args: unknown[]) => unknown>((v) => typeof v === 'function', { error: FUNCTION });
const nonEmpty = () =>
  z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' });
const positiveInt = () =>
  z
    .number({ error: 'must be a positive integer' })
    .int({ error: 'must be a positive integer' })
    .positive({ error: 'must be a positive integer' });
const engineList = ENGINES.map((e) => JSON.stringify(e)).join(', ');

// Loose objects: a method may carry fields of its own. Every message is phrased
// to follow the field's quoted path: `"needs.sourceBatches" must be a boolean …`.
const methodSchema = z.looseObject(
  {
    specificationVersion: z.literal(TRANSFER_METHOD_SPECIFICATION_VERSION, {
      error: `must be "${TRANSFER_METHOD_SPECIFICATION_VERSION}", the TransferMethod contract version this @transferlab/methods implements`,
    }),
    id: z.string({ error: KEBAB_ID }).regex(KEBAB, { error: KEBAB_ID }),
    title: nonEmpty(),
    description: nonEmpty(),
    reference: z
      .looseObject(
        {
          authors: nonEmpty(),
          title: nonEmpty(),
          year: positiveInt(),
          arxiv: z.string({ error: 'must be a string when present' }).optional(),
        },
        { error: 'must be an object { authors, title, year, arxiv? } when present' },
      )
      .optional(),
    defaults: z.looseObject(
      { epochs: positiveInt(), batchSize: positiveInt() },
      { error: 'must be an object of default options, epochs and batchSize included' },
    ),
    validate: hook(),
    needs: z.looseObject(
      {
        pretrainedBackbone: z.boolean({ error: 'must be a boolean' }),
        sourceBatches: z.boolean({ error: 'must be a boolean' }),
      },
      { error: 'must be an object { pretrainedBackbone: boolean, sourceBatches: boolean }' },
    ),
    engines: z
      .array(z.enum(ENGINES, { error: `must be one of ${engineList}` }), {
        error: `must be an array of engines (${engineList}) when present`,
      })
      .min(1, { error: `must list at least one engine (${engineList})` })
      .optional(),
    init: hook(),
    trainStep: hook(),
    predictParams: hook(),
    predict: hook(),
    dispose: hook(),
    metrics: hook().optional(),
  },
  { error: 'must be an object implementing TransferMethod' },
);

function quote(s: string): string {
  return JSON.stringify(s);
}

/** A value as an error message shows what was found. */
function describe(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'string')
    return value.length > 60 ? `${quote(value.slice(0, 57))}…` : quote(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) {
    const shown = JSON.stringify(value);
    return shown !== undefined && shown.length <= 60 ? shown : `an array of ${value.length}`;
  }
  return `a ${typeof value}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) {
    if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (name, key) =>
      typeof key === 'number' ? `${name}[${key}]` : name ? `${name}.${String(key)}` : String(key),
    '',
  );
}

/**
 * `value` as a method if it implements the `TransferMethod` contract (the
 * right specification version, a kebab-case id, title, description,
 * defaults with epochs and batchSize, `validate`, `needs` with its two
 * booleans, known `engines` when given, the five required hooks, `metrics`
 * a function when present); otherwise one Error naming `where` and every
 * wrong field with what the contract expects. Returns `value` itself.
 */
export function checkMethodContract(value: unknown, where: string): AnyTransferMethod {
  if (value === null || typeof value !== 'object')
    throw new Error(
      `plugin ${where}: the export is not a TransferMethod object (got ${describe(value)}); export an object with specificationVersion: "${TRANSFER_METHOD_SPECIFICATION_VERSION}", id, title, description, defaults, validate, needs, engines and the hooks init, trainStep, predictParams, predict, dispose (see TransferMethod in @transferlab/methods)`,
    );
  const parsed = methodSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) =>
        `"${fieldName(issue.path)}" ${issue.message} (got ${describe(valueAt(value, issue.path))})`,
    );
    throw new Error(
      `plugin ${where}: ${problems.join('; ')} — see TransferMethod in @transferlab/methods (packages/methods/src/types.ts)`,
    );
  }
  // The object itself, not zod's copy: a method may rely on its identity or prototype.
  return value as AnyTransferMethod;
}

/** Roughly method-shaped: enough to pick it among a module's exports; the contract check says the rest. */
function looksLikeMethod(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  return ['specificationVersion', 'trainStep', 'init', 'predict'].some((k) => k in value);
}

/** The conditions Node resolves package exports with: its own plus any `--conditions` given to this process. */
function exportConditions(): Set<string> {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const out = new Set(['node', 'import', 'default']);
  args.forEach((arg, i) => {
    const m = /^(?:--conditions|-C)(?:=(.+))?$/.exec(arg);
    const name = m ? (m[1] ?? args[i + 1]) : undefined;
    if (name) out.add(name);
  });
  return out;
}

function exportTarget(value: unknown, conditions: Set<string>): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    for (const v of value) {
      const t = exportTarget(v, conditions);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (!conditions.has(key)) continue;
      const t = exportTarget(v, conditions);
      if (t !== undefined) return t;
    }
  }
  return undefined;
}

/**
 * The file a package specifier names, found from `baseDir` as Node would:
 * the nearest `node_modules/<name>`, then its `exports` (subpath patterns
 * included) or `main`. Hand-rolled because Node resolves ESM only from
 * the importing module, and `require.resolve` misses import-only exports.
 */
function resolvePackage(spec: string, baseDir: string): string {
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
  const subpath = `.${spec.slice(name.length)}`;
  let pkgDir: string | undefined;
  for (let dir = resolve(baseDir); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) {
      pkgDir = candidate;
      break;
    }
    if (dirname(dir) === dir) break;
  }
  if (!pkgDir)
    throw new Error(
      `plugin ${spec}: package "${name}" not found in any node_modules from ${resolve(baseDir)} upwards; install it, or give a path (./my-method.ts)`,
    );
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as {
    exports?: unknown;
    main?: string;
  };
  if (manifest.exports !== undefined) {
    const map =
      manifest.exports &&
      typeof manifest.exports === 'object' &&
      !Array.isArray(manifest.exports) &&
      Object.keys(manifest.exports).some((k) => k.startsWith('.'))
        ? (manifest.exports as Record<string, unknown>)
        : { '.': manifest.exports };
    const conditions = exportConditions();
    let target = subpath in map ? exportTarget(map[subpath], conditions) : undefined;
    if (target === undefined) {
      // Subpath patterns: "./methods/*": "./dist/methods/*.js".
      for (const [key, value] of Object.entries(map)) {
        const star = key.indexOf('*');
        if (star < 0) continue;
        const [pre, post] = [key.slice(0, star), key.slice(star + 1)];
        if (!subpath.startsWith(pre) || !subpath.endsWith(post) || subpath.length < key.length - 1)
          continue;
        const hit = exportTarget(value, conditions);
        if (hit === undefined) continue;
        target = hit.replaceAll('*', subpath.slice(pre.length, subpath.length - post.length));
        break;
      }
    }
    if (target === undefined)
      throw new Error(
        `plugin ${spec}: package "${name}" (${pkgDir}) exports no "${subpath}" for conditions ${[...conditions].join(', ')}`,
      );
    return join(pkgDir, target);
  }
  if (subpath !== '.') return join(pkgDir, subpath);
  const main = join(pkgDir, manifest.main ?? 'index.js');
  for (const candidate of [main, `${main}.js`, join(main, 'index.js')])
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  return main;
}

const isPath = (from: string) =>
  from.startsWith('./') || from.startsWith('../') || from === '.' || isAbsolute(from);

/** The plugin's file: a path against `baseDir` (a `.js` name finds its `.ts` source too), or a package. */
function resolvePlugin(from: string, baseDir: string): string {
  const file = isPath(from) ? resolve(baseDir, from) : resolvePackage(from, baseDir);
  // As in TypeScript's own imports, `./my-method.js` may name the source `./my-method.ts`.
  const candidates = [file, file.replace(/\.js$/, '.ts'), file.replace(/\.mjs$/, '.mts')];
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined)
    throw new Error(
      `plugin ${from}: file not found: ${file}${isPath(from) ? ` (resolved against ${resolve(baseDir)})` : ''}`,
    );
  if (statSync(found).isDirectory())
    throw new Error(
      `plugin ${from}: ${found} is a directory; name the module file (e.g. ${join(found, 'src/index.ts')}) or the package`,
    );
  return found;
}

function describeExports(mod: Record<string, unknown>): string {
  // Sorted, as Node lists a module namespace (other loaders keep source order).
  const names = Object.keys(mod).sort();
  if (names.length === 0) return 'it has no exports';
  return `exports found: ${names.map((n) => `${n} (${describe(mod[n])})`).join(', ')}`;
}

/** The export to use: the default, else the one method-shaped named export, else one named `method`. */
function pickExport(mod: Record<string, unknown>, from: string): unknown {
  if (looksLikeMethod(mod.default)) return mod.default;
  const named = Object.keys(mod).filter((k) => k !== 'default' && looksLikeMethod(mod[k]));
  if (named.length === 1) return mod[named[0] as string];
  if (named.length > 1) {
    if (named.includes('method')) return mod.method;
    throw new Error(
      `plugin ${from}: several exports look like methods (${named.join(', ')}); export the one to use as the default export or as "method"`,
    );
  }
  // Nothing method-shaped: an object under the expected names still gets the contract's full list of faults.
  for (const key of ['default', 'method'])
    if (mod[key] !== null && typeof mod[key] === 'object') return mod[key];
  throw new Error(
    `plugin ${from}: no export looks like a TransferMethod (${describeExports(mod)}); export the method as the default export, or as "method"`,
  );
}

async function importPlugin(
  from: string,
  baseDir: string,
): Promise<{ method: AnyTransferMethod; file: string }> {
  const file = resolvePlugin(from, baseDir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const cause = err instanceof Error ? err.message : String(err);
    throw new Error(`plugin ${from}: importing ${file} failed: ${cause}`, { cause: err });
  }
  return { method: checkMethodContract(pickExport(mod, from), from), file };
}

/**
 * Load the method a plugin exports. `from` is a path resolved against
 * `baseDir` (./my-method.js or .ts, ../x.mjs, or absolute) or a package name
 * resolved from `baseDir`'s node_modules. The method is the module's default
 * export, else its one export that looks like a method, else an export named
 * `method`; it is checked with `checkMethodContract`. Every failure — file
 * not found, an import that throws, no method export, a contract mismatch —
 * is an Error naming the plugin.
 */
export async function loadMethodPlugin(from: string, baseDir: string): Promise<AnyTransferMethod> {
  return (await importPlugin(from, baseDir)).method;
}

/**
 * New registries whose method registry also holds the plugins' methods (the
 * given ones are left as they are). Each plugin's own id must be the id the
 * suite gives it, and may not be a method already registered (a built-in);
 * one id from two different files is an error naming both. The same plugin
 * listed twice (a suite running it with two option sets) is loaded once.
 */
export async function withPlugins(
  registries: Registries,
  plugins: readonly MethodPluginSpec[],
  baseDir: string,
): Promise<Registries> {
  const loaded = new Map<string, { method: AnyTransferMethod; file: string; from: string }>();
  for (const plugin of plugins) {
    const { method, file } = await importPlugin(plugin.from, baseDir);
    if (method.id !== plugin.id)
      throw new Error(
        `plugin ${plugin.from}: the suite names it "${plugin.id}" but its method's id is "${method.id}"; use id: ${method.id} in the suite, or change the plugin's id`,
      );
    if (registries.methods.has(method.id)) {
      const builtin = registries.methods.get(method.id);
      throw new Error(
        `plugin ${plugin.from}: method id "${method.id}" clashes with the built-in method "${builtin.id}" (${builtin.title}); give the plugin an id of its own`,
      );
    }
    const earlier = loaded.get(method.id);
    if (earlier && earlier.file !== file)
      throw new Error(
        `plugins ${earlier.from} and ${plugin.from} both define method "${method.id}" (${earlier.file}, ${file}); give each its own id`,
      );
    if (!earlier) loaded.set(method.id, { method, file, from: plugin.from });
  }
  if (loaded.size === 0) return { ...registries };
  return {
    ...registries,
    methods: createMethodRegistry([
      ...registries.methods.items,
      ...[...loaded.values()].map((p) => p.method),
    ]),
  };
}
