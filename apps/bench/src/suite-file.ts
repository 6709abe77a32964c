import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Registry, UnknownIdError } from '@transferlab/core';
import { parseDocument, parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { builtinKindRegistry } from './kinds.js';
import { withPlugins } from './plugins.js';
import { defaultRegistries, type Registries } from './run-suite.js';
import type { AnySuiteKind, BaseSuite } from './suite-kind.js';

/** The folder of the built-in suites, one YAML file each (shipped with the package). */
export const BUILTIN_SUITE_DIR = fileURLToPath(new URL('../suites/', import.meta.url));

export function builtinSuiteIds(dir = BUILTIN_SUITE_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

export interface LoadedSuite {
  kind: AnySuiteKind;
  suite: BaseSuite;
  /** The file it came from. */
  file: string;
}

/** One-off changes to a suite from the command line. */
export interface SuiteOverrides {
  /** `path=value` assignments: `seeds=10`, `methods.fine-tune.lr=0.003`, `pretrain.epochs=2`. */
  set?: readonly string[];
  /** Keep only these methods (by label, else id). */
  methods?: readonly string[];
  /** Keep only these tasks (by label, else id). */
  tasks?: readonly string[];
  /** Method plugin modules: a suite method whose id is a plugin's gets `from` set to it. */
  plugins?: readonly { id: string; from: string }[];
}

/** Whether `ref` names a file rather than a built-in suite id. */
function isPath(ref: string): boolean {
  return ref.includes('/') || ['.yaml', '.yml', '.json'].includes(extname(ref)) || existsSync(ref);
}

/** Parse YAML or JSON, with the file, line and column of a syntax error. */
export function readSuiteFile(file: string): unknown {
  if (!existsSync(file)) throw new Error(`no suite file at ${file}`);
  const text = readFileSync(file, 'utf8');
  const doc = parseDocument(text);
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    throw new Error(
      `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: not valid YAML/JSON: ${first.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}`,
    );
  }
  const value = doc.toJS() as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(
      `${file}: a suite file must hold one mapping (id, description, …), got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`,
    );
  return value;
}

/** `methods[2].options.lr` from a zod issue path. */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

/** Every problem zod found, one per line, each with its path. */
function schemaErrors(file: string, error: z.ZodError): Error {
  const lines = error.issues.map((issue) => {
    const path = formatPath(issue.path);
    const keys =
      issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : undefined;
    const message = keys
      ? `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`
      : issue.message;
    return `  ${path || '(top level)'}: ${message}`;
  });
  return new Error(`${file}: not a valid suite:\n${lines.join('\n')}`);
}

const ENTRY_FIELDS = new Set(['id', 'label', 'options', 'backbone', 'from']);

/** The element of a list of entries that `segments` starts with (by label, else id; labels may contain dots). */
function findEntry(
  list: unknown[],
  segments: string[],
  where: string,
): { index: number; used: number } {
  for (let used = segments.length; used >= 1; used--) {
    const name = segments.slice(0, used).join('.');
    if (/^\d+$/.test(name) && Number(name) < list.length) return { index: Number(name), used };
    const byLabel = list.findIndex((e) => (e as { label?: string; id?: string })?.label === name);
    if (byLabel >= 0) return { index: byLabel, used };
    const byId = list
      .map((e, i) => ({ e: e as { label?: string; id?: string }, i }))
      .filter(({ e }) => e?.label === undefined && e?.id === name);
    if (byId.length === 1) return { index: (byId[0] as { i: number }).i, used };
  }
  const names = list.map(
    (e) => (e as { label?: string; id?: string })?.label ?? (e as { id?: string })?.id,
  );
  throw new Error(`--set ${where}: no entry "${segments[0]}". Entries: ${names.join(', ')}`);
}

/** Apply one `path=value` to a raw suite object; the value is read as YAML (numbers, booleans, lists). */
export function applySet(raw: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new Error(`--set expects path=value, got "${assignment}"`);
  const path = assignment.slice(0, eq);
  const value = parseYaml(assignment.slice(eq + 1)) as unknown;
  const segments = path.split('.');
  let node: Record<string, unknown> | unknown[] = raw;
  let i = 0;
  while (i < segments.length - 1) {
    if (Array.isArray(node)) {
      const { index, used } = findEntry(node, segments.slice(i), path);
      i += used;
      const entry = node[index] as Record<string, unknown>;
      // methods.fine-tune.lr: a name that is not an entry's own field is one of its options.
      if (i < segments.length && !ENTRY_FIELDS.has(segments[i] as string)) {
        entry.options ??= {};
        node = entry.options as Record<string, unknown>;
      } else node = entry;
      if (i === segments.length) throw new Error(`--set ${path}: names an entry, not a field`);
      continue;
    }
    const key = segments[i] as string;
    const next = node[key];
    if (next === undefined) node[key] = {};
    else if (typeof next !== 'object' || next === null)
      throw new Error(
        `--set ${path}: "${segments.slice(0, i + 1).join('.')}" is not a mapping or list`,
      );
    node = node[key] as Record<string, unknown>;
    i++;
  }
  const last = segments[segments.length - 1] as string;
  if (Array.isArray(node)) throw new Error(`--set ${path}: names an entry of a list, not a field`);
  node[last] = value;
}

/** Keep only the named entries of `list` (`--methods`, `--tasks`); an unknown name lists the valid ones. */
function keepOnly(
  raw: Record<string, unknown>,
  field: 'methods' | 'tasks',
  names: readonly string[],
) {
  const list = raw[field];
  if (!Array.isArray(list))
    throw new Error(`--${field}: this suite has no ${field} to choose from`);
  const nameOf = (e: unknown) => (e as { label?: string }).label ?? (e as { id: string }).id;
  const valid = list.map(nameOf);
  const unknown = names.filter((n) => !valid.includes(n));
  if (unknown.length > 0)
    throw new Error(
      `--${field}: no ${unknown.map((n) => `"${n}"`).join(', ')} in this suite. Valid: ${valid.join(', ')}`,
    );
  raw[field] = list.filter((e) => names.includes(nameOf(e)));
}

/**
 * A suite from a built-in id or a YAML/JSON file, with the command line's
 * overrides applied, validated against its kind's schema (every unknown key
 * refused with its path). Method plugin paths are made absolute, relative to
 * the suite file, so the resolved suite runs anywhere (workers included).
 */
export function loadSuite(
  ref: string,
  overrides: SuiteOverrides = {},
  kinds: Registry<AnySuiteKind> = builtinKindRegistry(),
): LoadedSuite {
  let file: string;
  if (isPath(ref)) file = resolve(ref);
  else {
    const ids = builtinSuiteIds();
    if (!ids.includes(ref)) throw new UnknownIdError('suite', ref, ids);
    file = join(BUILTIN_SUITE_DIR, `${ref}.yaml`);
  }
  const raw = readSuiteFile(file) as Record<string, unknown>;
  for (const s of overrides.set ?? []) applySet(raw, s);
  if (overrides.methods) keepOnly(raw, 'methods', overrides.methods);
  if (overrides.tasks) keepOnly(raw, 'tasks', overrides.tasks);
  if (Array.isArray(raw.methods)) {
    for (const m of raw.methods as Record<string, unknown>[]) {
      const plugin = overrides.plugins?.find((p) => p.id === m.id);
      if (plugin && m.from === undefined) m.from = plugin.from;
      if (typeof m.from === 'string' && (m.from.startsWith('.') || isAbsolute(m.from)))
        m.from = resolve(dirname(file), m.from);
    }
  }
  const kindName = raw.kind ?? 'transfer';
  if (typeof kindName !== 'string') throw new Error(`${file}: "kind" must be a string`);
  let kind: AnySuiteKind;
  try {
    kind = kinds.get(kindName);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  const parsed = kind.schema.safeParse(raw);
  if (!parsed.success) throw schemaErrors(file, parsed.error);
  return { kind, suite: parsed.data as BaseSuite, file };
}

/** The registries a suite runs with: the built-in ones plus its method plugins (`from`). */
export async function registriesForSuite(suite: BaseSuite): Promise<Registries> {
  const methods = (suite as { methods?: readonly { id: string; from?: string }[] }).methods ?? [];
  const plugins = methods
    .filter((m): m is { id: string; from: string } => typeof m.from === 'string')
    .filter((m, i, all) => all.findIndex((o) => o.id === m.id) === i);
  const base = defaultRegistries();
  return plugins.length === 0 ? base : withPlugins(base, plugins, process.cwd());
}
