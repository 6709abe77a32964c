import { createHash } from 'node:crypto';
import type { Engine } from '@transferlab/methods';
import type { z } from 'zod';
import type { Progress } from './progress.js';
import type { TrialRecord } from './results.js';
import type { Registries } from './run-suite.js';

export const SUITE_KIND_SPECIFICATION_VERSION = 'v1';

/** The fields every suite has, whatever its kind. */
export interface BaseSuite {
  /** The kind that runs it (suite files: default "transfer"). */
  readonly kind?: string;
  readonly id: string;
  readonly description: string;
  /** Seeds run when `--seeds` is not given. */
  readonly seeds: number;
}

/** One trial a run will produce: its ids, and what besides them determines its result. */
export interface PlannedTrial {
  task: string;
  method: string;
  seed: number;
  /** Everything else the result depends on; hashed into the trial's key, so a changed suite never reuses old results. */
  determinants: unknown;
}

/**
 * Trials that run together because they share set-up (a task's data and its
 * source pre-training, a Monte Carlo draw): the unit of scheduling, of
 * parallel jobs and of resume. Plain data, so it can be sent to a worker.
 */
export interface PlannedUnit {
  id: string;
  seed: number;
  trials: PlannedTrial[];
}

/** What a trial's outcome carries; the runner adds suite, kind, run, key and provenance. */
export type TrialOutcome = Omit<TrialRecord, 'suite' | 'kind' | 'run' | 'key' | 'provenance'>;

export interface UnitContext {
  /** The tfjs backend the process initialised. */
  readonly backend: string;
  /** The training engine asked for on the command line (undefined: each method's default). */
  readonly engine?: Engine;
  readonly registries: Registries;
  readonly progress: Progress;
  readonly outDir: string;
  /** Keep pre-trained backbones in `outDir/cache` (default true). */
  readonly diskCache: boolean;
  /** Whether this planned trial already has an ok record: a kind skips its work. */
  isDone(task: string, method: string): boolean;
  /** Record one planned trial's outcome as soon as it is known. */
  record(outcome: TrialOutcome): void;
}

/**
 * A kind of suite: its file schema, its checks, how it splits into units,
 * how it runs one, and its report. The CLI dispatches through this interface
 * only; a new kind is one object in `builtinKinds`.
 */
export interface SuiteKind<S extends BaseSuite = BaseSuite> {
  readonly specificationVersion: typeof SUITE_KIND_SPECIFICATION_VERSION;
  /** The kind's name, as suite files give it in `kind:`. */
  readonly id: string;
  readonly description: string;
  /** The suite file's fields for this kind; unknown keys are refused. */
  readonly schema: z.ZodType<S>;
  /** Checks against the registries before any work: unknown ids, unknown options. Errors name the path. */
  check?(suite: S, registries: Registries): void;
  /** Whether the suite's trials can start at a seed other than 0 (`--first-seed`). */
  readonly firstSeed?: boolean;
  /** The run's units, in order. Trials must be what `runUnit` records, one-to-one. */
  plan(
    suite: S,
    seeds: readonly number[],
    ctx: { engine?: Engine; backend?: string; registries: Registries },
  ): PlannedUnit[];
  runUnit(suite: S, unit: PlannedUnit, ctx: UnitContext): Promise<void>;
  /** The Markdown tables of `report` (records of this kind's suites). */
  summarize(records: readonly TrialRecord[], opts: { metric?: string }): string;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds kinds of every suite type.
export type AnySuiteKind = SuiteKind<any>;

/** JSON with object keys sorted, so equal values hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

/** A trial's key: suite, kind, task, method, seed and the determinants, hashed. */
export function trialKey(kind: string, suiteId: string, t: PlannedTrial): string {
  return createHash('sha256')
    .update(
      canonicalJson({
        kind,
        suite: suiteId,
        task: t.task,
        method: t.method,
        seed: t.seed,
        determinants: t.determinants ?? null,
      }),
    )
    .digest('hex')
    .slice(0, 20);
}

/**
 * The outcome of a trial that failed: no metrics, the error's message, the
 * time it took. Every kind records failures through this one shape.
 */
export function failedOutcome(
  base: Omit<TrialOutcome, 'status' | 'metrics' | 'durationMs' | 'error'>,
  error: unknown,
  started?: number,
): TrialOutcome {
  return {
    ...base,
    status: 'failed',
    metrics: {},
    durationMs: started === undefined ? 0 : Date.now() - started,
    error: error instanceof Error ? error.message : String(error),
    timestamp: new Date().toISOString(),
  };
}
