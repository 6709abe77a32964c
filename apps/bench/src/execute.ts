import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@transferlab/core';
import type { Engine } from '@transferlab/methods';
import { createProgress, type Progress, safeProgress } from './progress.js';
import { collectProvenance } from './provenance.js';
import {
  createResultsLog,
  dedupeByKey,
  ensureDir,
  readRecords,
  type TrialRecord,
} from './results.js';
import { defaultRegistries, type Registries } from './run-suite.js';
import {
  type AnySuiteKind,
  type BaseSuite,
  failedOutcome,
  type PlannedTrial,
  type PlannedUnit,
  type TrialOutcome,
  trialKey,
  type UnitContext,
} from './suite-kind.js';

export interface ExecuteOptions {
  kind: AnySuiteKind;
  suite: BaseSuite;
  seeds?: number;
  /** Seeds firstSeed … firstSeed + seeds − 1 (default 0), so a sweep can be split across processes. */
  firstSeed?: number;
  outDir: string;
  backend?: string;
  engine?: Engine;
  registries?: Registries;
  progress?: Progress;
  diskCache?: boolean;
  /** Start a new run even when `outDir` holds one of this suite (old records stay in the file). */
  fresh?: boolean;
  /**
   * Worker processes that run units in parallel (default 1: in this process).
   * Workers build their registries from the suite (the built-in ones plus its
   * method plugins, `registriesForSuite`); `registries` serve this process.
   */
  jobs?: number;
}

export interface ExecuteResult {
  /** This run's records, one per trial key: those it resumed from and those it added. */
  records: TrialRecord[];
  backend: string;
  resultsPath: string;
  run: string;
  /** Trials skipped because an ok record already existed. */
  resumed: number;
}

/** A unit as sent to whoever runs it: its trials with keys, and which keys are done. */
export interface KeyedUnit extends PlannedUnit {
  trials: (PlannedTrial & { key: string })[];
  done: string[];
}

/** The default number of parallel jobs: one per core the machine offers. */
export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

const triple = (task: string, method: string, seed: number) => JSON.stringify([task, method, seed]);

/**
 * Which run to continue: the latest run of this suite in the file, unless
 * it was made by a different definition of the suite (a trial with the same
 * task, method and seed but another key) — then refuse, unless `fresh`.
 */
export function resumePoint(
  existing: readonly TrialRecord[],
  suiteId: string,
  planned: ReadonlyMap<string, string>,
  fresh: boolean,
  path: string,
): { run: string | undefined; previous: TrialRecord[] } {
  const mine = existing.filter((r) => r.suite === suiteId);
  const last = mine.at(-1)?.run;
  if (fresh || last === undefined) return { run: undefined, previous: [] };
  const previous = mine.filter((r) => r.run === last);
  for (const r of previous) {
    const want = planned.get(triple(r.task, r.method, r.seed));
    if (want !== undefined && r.key !== want)
      throw new Error(
        `${path} already holds a run of suite "${suiteId}" (${last}) made with a different definition: ${r.task} · ${r.method} · seed ${r.seed} ${r.key ? `has key ${r.key}, now ${want}` : 'has no trial key (written before resume existed)'}. Give --fresh to start a new run in this file, or another --out.`,
      );
  }
  return { run: last, previous };
}

/** Whether a trial of this unit had an ok record before the run (so its work can be skipped). */
export function unitDoneCheck(unit: KeyedUnit): (task: string, method: string) => boolean {
  const done = new Set(unit.done);
  const keys = new Map(unit.trials.map((t) => [triple(t.task, t.method, t.seed), t.key]));
  return (task, method) => {
    const key = keys.get(triple(task, method, unit.seed));
    return key !== undefined && done.has(key);
  };
}

/** Turns a unit's trial outcomes into full records; one per planned trial, no trial twice. */
export function unitRecorder(
  unit: KeyedUnit,
  base: { suite: string; run: string; kind: string },
  write: (record: TrialRecord) => void,
) {
  const byIds = new Map(unit.trials.map((t) => [triple(t.task, t.method, t.seed), t]));
  const done = new Set(unit.done);
  const recorded = new Set<string>();
  const provenance = collectProvenance();
  return {
    isDone: unitDoneCheck(unit),
    record(outcome: TrialOutcome) {
      const t = byIds.get(triple(outcome.task, outcome.method, outcome.seed));
      if (!t)
        throw new Error(
          `unit ${unit.id} recorded a trial it did not plan: ${outcome.task} · ${outcome.method} · seed ${outcome.seed}`,
        );
      // Done before this run (resumed) or already recorded by this unit: keep the first.
      if (done.has(t.key) || recorded.has(t.key)) return;
      recorded.add(t.key);
      write({
        suite: base.suite,
        kind: base.kind,
        run: base.run,
        key: t.key,
        ...outcome,
        provenance,
      });
    },
    /** Every planned trial not yet recorded, as failed with this reason: the one failed-record path. */
    failRest(reason: string, started: number) {
      for (const t of unit.trials)
        if (!done.has(t.key) && !recorded.has(t.key))
          this.record(
            failedOutcome(
              { task: t.task, method: t.method, seed: t.seed, backend: 'unknown' },
              reason,
              started,
            ),
          );
    },
  };
}

/** Run one unit in this process: its own errors fail its unrecorded trials, never the run. */
export async function runUnitHere(
  kind: AnySuiteKind,
  suite: BaseSuite,
  unit: KeyedUnit,
  base: { suite: string; run: string; kind: string },
  ctx: Omit<UnitContext, 'isDone' | 'record'>,
  write: (record: TrialRecord) => void,
): Promise<void> {
  const recorder = unitRecorder(unit, base, write);
  const started = Date.now();
  try {
    await kind.runUnit(suite, unit, { ...ctx, isDone: recorder.isDone, record: recorder.record });
  } catch (err) {
    recorder.failRest((err as Error).message, started);
    return;
  }
  recorder.failRest(`unit ${unit.id} ended without recording this trial`, started);
}

function doneLine(r: TrialRecord): string {
  const metric =
    r.metrics.target_test_acc !== undefined
      ? `acc ${(100 * r.metrics.target_test_acc).toFixed(1)}%`
      : Object.entries(r.metrics)
          .slice(0, 2)
          .map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`)
          .join(', ');
  const what = r.status === 'ok' ? metric : `FAILED: ${r.error}`;
  return `${r.task} ${r.method} seed ${r.seed}: ${what} (${(r.durationMs / 1000).toFixed(1)} s)`;
}

/**
 * Check a suite against the registries (unknown ids and options fail here,
 * before any work), plan its units, and key every trial. `planned` maps
 * (task, method, seed) to the key.
 */
export function planKeyedUnits(args: {
  kind: AnySuiteKind;
  suite: BaseSuite;
  seeds: readonly number[];
  registries: Registries;
  engine?: Engine;
  backend?: string;
}): { units: KeyedUnit[]; planned: Map<string, string> } {
  const { kind, suite } = args;
  kind.check?.(suite, args.registries);
  const units = kind.plan(suite, args.seeds, {
    registries: args.registries,
    ...(args.engine ? { engine: args.engine } : {}),
    ...(args.backend ? { backend: args.backend } : {}),
  });
  const planned = new Map<string, string>();
  const keyed = units.map((u) => ({
    ...u,
    done: [] as string[],
    trials: u.trials.map((t) => {
      const key = trialKey(kind.id, suite.id, t);
      const id = triple(t.task, t.method, t.seed);
      if (planned.has(id))
        throw new Error(
          `suite "${suite.id}": trial ${t.task} · ${t.method} · seed ${t.seed} is planned twice`,
        );
      planned.set(id, key);
      return { ...t, key };
    }),
  }));
  return { units: keyed, planned };
}

/**
 * Run a suite of any kind: plan its units and trial keys, resume from the
 * records already in `outDir` (ok keys are skipped, failed ones retried),
 * run the rest in this process or in `jobs` worker processes, and append
 * each record to `outDir/results.jsonl` as soon as its trial ends.
 */
export async function executeSuite(opts: ExecuteOptions): Promise<ExecuteResult> {
  const { kind, suite } = opts;
  const registries = opts.registries ?? defaultRegistries();
  const seedCount = opts.seeds ?? suite.seeds;
  if (!Number.isInteger(seedCount) || seedCount < 1)
    throw new Error(`--seeds must be a positive integer, got ${seedCount}`);
  const firstSeed = opts.firstSeed ?? 0;
  if (!Number.isInteger(firstSeed) || firstSeed < 0)
    throw new Error(`--first-seed must be a non-negative integer, got ${firstSeed}`);
  if (firstSeed !== 0 && !kind.firstSeed)
    throw new Error(`--first-seed applies to transfer suites only, not "${suite.id}"`);
  const jobs = opts.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new Error(`--jobs must be a positive integer, got ${jobs}`);
  const seeds = Array.from({ length: seedCount }, (_, i) => firstSeed + i);
  const { units: keyed, planned } = planKeyedUnits({
    kind,
    suite,
    seeds,
    registries,
    ...(opts.engine ? { engine: opts.engine } : {}),
    ...(opts.backend ? { backend: opts.backend } : {}),
  });

  ensureDir(opts.outDir);
  const path = join(opts.outDir, 'results.jsonl');
  const existing = existsSync(path) ? readRecords(path) : [];
  const resume = resumePoint(existing, suite.id, planned, opts.fresh ?? false, path);
  const run = resume.run ?? new Date().toISOString();
  const doneKeys = new Set(
    resume.previous
      .filter((r) => r.status === 'ok' && r.key !== undefined)
      .map((r) => r.key as string),
  );
  const pending: KeyedUnit[] = keyed
    .map((u) => ({ ...u, done: u.trials.filter((t) => doneKeys.has(t.key)).map((t) => t.key) }))
    .filter((u) => u.done.length < u.trials.length);
  const resumed = keyed.reduce((n, u) => n + u.trials.filter((t) => doneKeys.has(t.key)).length, 0);
  // The resolved suite beside its records: what exactly ran, and where.
  ensureDir(join(opts.outDir, 'runs'));
  writeFileSync(
    join(opts.outDir, 'runs', `${run.replace(/[:.]/g, '-')}.json`),
    `${JSON.stringify({ run, kind: kind.id, suite, seeds, engine: opts.engine, backend: opts.backend, provenance: collectProvenance() }, null, 2)}\n`,
  );

  const progress = safeProgress(opts.progress ?? createProgress());
  const total = pending.reduce((n, u) => n + u.trials.length - u.done.length, 0);
  let finished = 0;
  const log = createResultsLog(opts.outDir, (r) => {
    finished++;
    progress.done(doneLine(r));
  });
  const base = { suite: suite.id, run, kind: kind.id };
  let backendName: string;
  if (jobs === 1 || pending.length <= 1) {
    const backend = await initBackend(opts.backend ? { backend: opts.backend } : {});
    backendName = backend.name;
    for (const unit of pending) {
      progress.trial(`${unit.id}`, finished, total);
      await runUnitHere(
        kind,
        suite,
        unit,
        base,
        {
          backend: backend.name,
          ...(opts.engine ? { engine: opts.engine } : {}),
          registries,
          progress,
          outDir: opts.outDir,
          diskCache: opts.diskCache !== false,
        },
        log.add,
      );
    }
  } else {
    backendName = await runInWorkers({
      kind: kind.id,
      suite,
      units: pending,
      base,
      jobs: Math.min(jobs, pending.length),
      outDir: opts.outDir,
      diskCache: opts.diskCache !== false,
      ...(opts.backend ? { backend: opts.backend } : {}),
      ...(opts.engine ? { engine: opts.engine } : {}),
      write: log.add,
      onUnit: (id) => progress.trial(id, finished, total),
    });
  }
  progress.close();
  return {
    records: dedupeByKey([...resume.previous, ...log.records]),
    backend: backendName,
    resultsPath: log.path,
    run,
    resumed,
  };
}

/** The messages between the parent and a worker process (plain data over IPC). */
export type ToWorker =
  | {
      type: 'init';
      kind: string;
      suite: BaseSuite;
      base: { suite: string; run: string; kind: string };
      backend?: string;
      engine?: Engine;
      outDir: string;
      diskCache: boolean;
    }
  | { type: 'unit'; unit: KeyedUnit }
  | { type: 'exit' };
export type FromWorker =
  | { type: 'ready'; backend: string }
  | { type: 'record'; outcome: TrialOutcome }
  | { type: 'unit-done'; id: string }
  | { type: 'unit-failed'; id: string; message: string }
  | { type: 'error'; message: string };

/**
 * Hand units to `jobs` worker processes, the next unit to whichever is free.
 * The parent alone writes results.jsonl. A worker that dies fails the
 * unrecorded trials of its unit in flight; the others go on.
 */
async function runInWorkers(args: {
  kind: string;
  suite: BaseSuite;
  units: KeyedUnit[];
  base: { suite: string; run: string; kind: string };
  jobs: number;
  outDir: string;
  diskCache: boolean;
  backend?: string;
  engine?: Engine;
  write: (r: TrialRecord) => void;
  onUnit: (id: string) => void;
}): Promise<string> {
  const queue = [...args.units];
  const entry = fileURLToPath(
    new URL(`./job-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url),
  );
  let backend = 'unknown';
  const one = (): Promise<void> =>
    new Promise((resolveWorker, rejectWorker) => {
      const child: ChildProcess = fork(entry, [], {
        // From sources (tsx, tests) the worker needs tsx's loader and the source condition too.
        execArgv: [
          // V8's background threads (concurrent GC, JIT) add ~0.3–0.5 core to a
          // busy process; with one worker per core they oversubscribe the
          // machine. Measured on 2 cores, quick suite: --jobs 2 takes 26 s with
          // them, 19 s without (--jobs 1: 29 s). Results do not depend on it.
          '--single-threaded',
          ...(entry.endsWith('.ts')
            ? ['--conditions=@transferlab/source', '--import', 'tsx']
            : process.execArgv),
        ],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, TRANSFERLAB_WORKER: '1' },
      });
      let current: KeyedUnit | undefined;
      let recorder: ReturnType<typeof unitRecorder> | undefined;
      let started = 0;
      let initError: string | undefined;
      const next = () => {
        current = queue.shift();
        if (!current) {
          child.send({ type: 'exit' } satisfies ToWorker);
          return;
        }
        args.onUnit(current.id);
        recorder = unitRecorder(current, args.base, args.write);
        started = Date.now();
        child.send({ type: 'unit', unit: current } satisfies ToWorker);
      };
      child.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          backend = m.backend;
          next();
        } else if (m.type === 'record') recorder?.record(m.outcome);
        else if (m.type === 'unit-done' || m.type === 'unit-failed') {
          recorder?.failRest(
            m.type === 'unit-failed'
              ? m.message
              : `unit ${m.id} ended without recording this trial`,
            started,
          );
          next();
        } else if (m.type === 'error') initError = m.message;
      });
      child.on('exit', (code, signal) => {
        if (current && recorder) {
          recorder.failRest(
            `worker process exited (${signal ?? `code ${code}`}) while running this trial`,
            started,
          );
          current = undefined;
        }
        if (initError) rejectWorker(new Error(`a worker could not start: ${initError}`));
        else resolveWorker();
      });
      child.send({
        type: 'init',
        kind: args.kind,
        suite: args.suite,
        base: args.base,
        outDir: args.outDir,
        diskCache: args.diskCache,
        ...(args.backend ? { backend: args.backend } : {}),
        ...(args.engine ? { engine: args.engine } : {}),
      } satisfies ToWorker);
    });
  await Promise.all(Array.from({ length: args.jobs }, one));
  return backend;
}
