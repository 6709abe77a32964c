/**
 * What a worker does with one job, before and while it runs: a job is plain
 * data from Redis, so it is checked before anything runs — a built-in kind,
 * a suite its kind's schema accepts, methods that are built-in or plugin
 * files inside this worker's own checkout, and a unit that is exactly what
 * planning the suite gives for the job's key. Anything else is refused: the
 * job fails with the reason and is not retried. Runs in the worker's
 * sandboxed child process (trial-processor.ts).
 */
import { existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { createMethodRegistry, type Engine, requireEngine } from '@transferlab/methods';
import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { type KeyedUnit, planKeyedUnits, runUnitHere } from '../execute.js';
import { builtinKindRegistry } from '../kinds.js';
import type { Progress } from '../progress.js';
import { collectProvenance } from '../provenance.js';
import { ensureDir, type TrialRecord } from '../results.js';
import type { Registries } from '../run-suite.js';
import { registriesForSuite } from '../suite-file.js';
import type { AnySuiteKind, BaseSuite } from '../suite-kind.js';
import { checkoutRoot, type TrialJobData } from './sweep.js';

/** What a runner needs of a job: its id (the trial's key) and its data. */
export interface TrialJob {
  id?: string | undefined;
  data: TrialJobData;
}

export interface TrialRunnerOptions {
  /** The tfjs backend this process runs (already initialised). */
  backend: string;
  /** Where pre-trained sources are kept (default: a directory of this runner, removed by close). */
  cacheDir?: string;
  /** This worker's name in messages (host:pid). */
  name: string;
  log: (line: string) => void;
}

export interface TrialRunner {
  /** Check the job, run its trial, return the trial's record (failed trials included); throws refusals as UnrecoverableError. */
  run(job: TrialJob): Promise<TrialRecord>;
  close(): void;
}

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

const jobSchema = z.object({
  format: z.literal(1),
  sweep: z.string(),
  key: z.string().regex(/^[0-9a-f]{20}$/),
  kind: z.string(),
  suite: z.record(z.string(), z.unknown()),
  seeds: z.array(z.number().int().nonnegative()).min(1),
  unit: z.object({
    id: z.string(),
    seed: z.number().int().nonnegative(),
    trials: z.array(
      z.object({ task: z.string(), method: z.string(), seed: z.number(), key: z.string() }),
    ),
    done: z.array(z.string()),
  }),
  base: z.object({ suite: z.string(), run: z.string(), kind: z.string() }),
  engine: z.string().optional(),
  backend: z.string().optional(),
  root: z.string(),
  commit: z.string().optional(),
});

/** A refusal: the job fails with this reason and BullMQ does not retry it. */
const refuse = (reason: string) => new UnrecoverableError(`refused: ${reason}`);

// A package name, optionally scoped, with plain subpath segments: no scheme (data:, file:), no "..".
const PACKAGE_SPEC = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/[\w-][\w.-]*)*$/i;

const inside = (dir: string, path: string) => {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/**
 * Where this worker finds a plugin the job names. A path must lie in the
 * enqueuing checkout; it is taken at the same place in this worker's
 * checkout (hosts may keep the repository at different paths), and must
 * resolve — symbolic links followed — inside this checkout and outside any
 * node_modules. A package name is resolved from this checkout's packages.
 */
function localPlugin(from: string, jobRoot: string, root: string): string {
  if (!isAbsolute(from)) {
    if (from.startsWith('.') || !PACKAGE_SPEC.test(from) || from.split('/').includes('..'))
      throw refuse(`plugin "${from}" is neither a file of the suite's checkout nor a package name`);
    return from;
  }
  if (!inside(jobRoot, from))
    throw refuse(
      `plugin file ${from} lies outside the checkout the sweep was enqueued from (${jobRoot}); workers import plugin files of the checkout only`,
    );
  const local = resolve(root, relative(jobRoot, from));
  const found = [local, local.replace(/\.js$/, '.ts'), local.replace(/\.mjs$/, '.mts')].find((c) =>
    existsSync(c),
  );
  // Missing here may be a host on another commit: an ordinary error, retried (maybe elsewhere).
  if (!found)
    throw new Error(
      `plugin file ${local} not found in this worker's checkout (${root}); is it on the same commit as the producer?`,
    );
  const real = realpathSync(found);
  if (!inside(realpathSync(root), real) || real.split(sep).includes('node_modules'))
    throw refuse(
      `plugin file ${found} resolves to ${real}, outside this worker's checkout or inside node_modules`,
    );
  return local;
}

interface Checked {
  kind: AnySuiteKind;
  suite: BaseSuite;
  unit: KeyedUnit;
  registries: Registries;
  engine?: Engine;
  data: TrialJobData;
}

export function createTrialRunner(opts: TrialRunnerOptions): TrialRunner {
  const { backend, name, log } = opts;
  const root = checkoutRoot();
  const kinds = builtinKindRegistry();
  const builtinMethods = createMethodRegistry();
  const myCommit = collectProvenance().commit;
  // Kinds keep pre-trainings in `outDir/cache`: a private work dir whose cache is the shared one when asked.
  if (opts.cacheDir) ensureDir(opts.cacheDir);
  const workDir = mkdtempSync(join(tmpdir(), 'tl-worker-'));
  if (opts.cacheDir) {
    try {
      symlinkSync(resolve(opts.cacheDir), join(workDir, 'cache'), 'junction');
    } catch (err) {
      rmSync(workDir, { recursive: true, force: true });
      throw err;
    }
  }
  const registriesBySuite = new Map<string, Promise<Registries>>();
  const warnedCommits = new Set<string>();

  /** Everything a job may be refused for, before any of its code runs. */
  async function check(job: TrialJob): Promise<Checked> {
    const parsed = jobSchema.safeParse(job.data);
    if (!parsed.success)
      throw refuse(`malformed job data (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    const data = job.data;
    if (data.key !== job.id) throw refuse(`job ${job.id} carries the key of another trial`);
    if (!kinds.has(data.kind))
      throw refuse(
        `unknown suite kind "${data.kind}" (built-in kinds: ${kinds.items.map((k) => k.id).join(', ')})`,
      );
    const kind = kinds.get(data.kind);
    const valid = kind.schema.safeParse(data.suite);
    if (!valid.success)
      throw refuse(
        `the suite is not a valid ${kind.id} suite (${valid.error.issues[0]?.path.join('.')}: ${valid.error.issues[0]?.message})`,
      );
    let suite = valid.data as BaseSuite;
    if (data.base.suite !== suite.id || data.base.kind !== kind.id)
      throw refuse('the record fields name another suite or kind than the job');
    const methods = (suite as { methods?: { id: string; from?: string }[] }).methods;
    if (methods) {
      const local = methods.map((m) => {
        if (m.from === undefined) {
          if (!builtinMethods.has(m.id))
            throw refuse(
              `method "${m.id}" is neither a built-in method nor a plugin file of the suite`,
            );
          return m;
        }
        return { ...m, from: localPlugin(m.from, data.root, root) };
      });
      suite = { ...suite, methods: local } as BaseSuite;
    }
    let engine: Engine | undefined;
    if (data.engine !== undefined) {
      try {
        engine = requireEngine(data.engine);
      } catch (err) {
        throw refuse((err as Error).message);
      }
    }
    if (data.backend !== undefined && data.backend !== backend)
      throw refuse(
        `the trial asks for tfjs backend "${data.backend}" and this worker runs "${backend}"; start a worker with --backend ${data.backend}`,
      );
    const pluginKey = JSON.stringify(methods?.filter((m) => m.from) ?? []);
    let registries = registriesBySuite.get(pluginKey);
    if (!registries) {
      registries = registriesForSuite(suite);
      registriesBySuite.set(pluginKey, registries);
      // A plugin that fails to load may load on a retry (or another host): do not keep the failure.
      registries.catch(() => registriesBySuite.delete(pluginKey));
    }
    const reg = await registries;
    let units: KeyedUnit[];
    try {
      units = planKeyedUnits({
        kind,
        suite,
        seeds: data.seeds,
        registries: reg,
        ...(engine ? { engine } : {}),
        ...(data.backend ? { backend: data.backend } : {}),
      }).units;
    } catch (err) {
      throw refuse(`the suite does not check: ${(err as Error).message}`);
    }
    // Run what the suite plans for this key, not what the job says: they must agree.
    const planned = units.find((u) => u.trials.some((t) => t.key === job.id));
    const sameTrials = (a: KeyedUnit, b: TrialJobData['unit']) =>
      a.id === b.id &&
      a.seed === b.seed &&
      a.trials.length === b.trials.length &&
      a.trials.every((t, i) => t.key === b.trials[i]?.key);
    if (!planned || !sameTrials(planned, data.unit))
      throw refuse(
        `trial ${job.id} is not what the suite plans (its unit or key does not match the suite's definition)`,
      );
    const unit = {
      ...planned,
      done: planned.trials.filter((t) => t.key !== job.id).map((t) => t.key),
    };
    return { kind, suite, unit, registries: reg, ...(engine ? { engine } : {}), data };
  }

  async function runJob(job: TrialJob): Promise<TrialRecord> {
    const { kind, suite, unit, registries, engine, data } = await check(job);
    if (data.commit && myCommit && data.commit !== myCommit && !warnedCommits.has(data.commit)) {
      warnedCommits.add(data.commit);
      log(
        `${name}: warning: sweep "${data.sweep}" was enqueued from commit ${data.commit.slice(0, 10)}, this worker runs ${myCommit.slice(0, 10)}; results may differ`,
      );
    }
    const records: TrialRecord[] = [];
    await runUnitHere(
      kind,
      suite,
      unit,
      data.base,
      {
        backend,
        ...(engine ? { engine } : {}),
        registries,
        progress: silent,
        outDir: workDir,
        diskCache: true,
      },
      (r) => records.push(r),
    );
    const record = records.find((r) => r.key === job.id);
    if (!record) throw new Error(`unit ${unit.id} recorded no record for trial ${job.id}`);
    return record;
  }

  return {
    run: runJob,
    close() {
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}
