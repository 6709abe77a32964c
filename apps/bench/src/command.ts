import { isAbsolute, resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { loadMethodPlugin } from './plugins.js';
import { type LoadedSuite, loadSuite } from './suite-file.js';

/** Parsed option values, as node:util's parseArgs returns them. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** One CLI command: its usage text (also its `--help`), its options, and what it does. */
export interface Command {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<number>;
}

/** A string option's value (undefined when absent or a flag). */
export const str = (v: Values[string]) => (typeof v === 'string' ? v : undefined);

/** A repeatable option's values. */
export const list = (v: Values[string]) =>
  Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];

/** An integer option ≥ min, with an error naming the option. */
export function intOption(name: string, v: Values[string], min = 1): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < min)
    throw new Error(
      min === 1
        ? `--${name} must be a positive integer, got "${s}"`
        : `--${name} must be an integer ≥ ${min}, got "${s}"`,
    );
  return n;
}

/**
 * The suite a command names, with the command line's `--set`, `--methods`,
 * `--tasks` and `--plugin` applied. A plugin path is made absolute (workers
 * resolve it again); a package name stays as it is.
 */
export async function loadSuiteFromArgs(ref: string, values: Values): Promise<LoadedSuite> {
  const plugins = await Promise.all(
    list(values.plugin).map(async (p) => ({
      id: (await loadMethodPlugin(p, process.cwd())).id,
      from: p.startsWith('.') || isAbsolute(p) ? resolve(p) : p,
    })),
  );
  const methods = str(values.methods);
  const tasks = str(values.tasks);
  return loadSuite(ref, {
    set: list(values.set),
    ...(methods ? { methods: methods.split(',') } : {}),
    ...(tasks ? { tasks: tasks.split(',') } : {}),
    plugins,
  });
}
