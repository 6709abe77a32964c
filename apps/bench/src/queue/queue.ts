/**
 * `pnpm bench queue`: a sweep's trials as BullMQ jobs, one per trial key.
 */
import type { Engine } from '@transferlab/methods';
import type { RedisOptions } from 'ioredis';
import { type KeyedUnit, planKeyedUnits } from '../execute.js';
import { collectProvenance } from '../provenance.js';
import {
  type LoadedSuite,
  loadSuite,
  registriesForSuite,
  type SuiteOverrides,
} from '../suite-file.js';
import { connectRedis } from './redis.js';
import {
  checkoutRoot,
  checkSweepName,
  readSweep,
  type SweepMeta,
  TRIAL_ATTEMPTS,
  type TrialJobData,
  trialQueue,
  writeSweep,
} from './sweep.js';

export interface EnqueueOptions {
  redisUrl: string;
  /** The sweep's name (default: the suite's id). */
  name?: string;
  /** A built-in suite id or a suite file; or `loaded`, a suite already loaded. */
  suiteRef?: string;
  loaded?: LoadedSuite;
  overrides?: SuiteOverrides;
  /** Seeds 0 … seeds − 1 (default: the suite's). */
  seeds?: number;
  engine?: Engine;
  backend?: string;
  /** Extra ioredis options (e.g. a private CA for rediss://). */
  redisExtra?: Partial<RedisOptions>;
}

export interface EnqueueResult {
  name: string;
  /** Trials in the sweep. */
  total: number;
  /** Jobs added now for trials that had none. */
  added: number;
  /** Trials whose job already finished ok: not enqueued again. */
  ok: number;
  /** Trials whose job is waiting or running already. */
  pending: number;
  /** Trials that had failed (a failed record, or a failed job) and were queued again. */
  retried: number;
}

const triple = (t: { task: string; method: string; seed: number }) =>
  JSON.stringify([t.task, t.method, t.seed]);

/**
 * A sweep under an existing name must be the same suite: the same kind and
 * id, and no trial (task, method, seed) with another key — a changed
 * definition would mix results. More seeds are fine: the trials are added.
 */
function mergeSweep(
  old: SweepMeta | undefined,
  next: Omit<SweepMeta, 'created' | 'updated' | 'run'>,
): SweepMeta {
  const now = new Date().toISOString();
  if (!old) return { ...next, run: now, created: now, updated: now };
  if (old.kind !== next.kind || old.suite.id !== next.suite.id)
    throw new Error(
      `sweep "${old.name}" holds suite "${old.suite.id}" (${old.kind}), not "${next.suite.id}" (${next.kind}); give another --name`,
    );
  const known = new Map(old.trials.map((t) => [triple(t), t.key]));
  for (const t of next.trials) {
    const key = known.get(triple(t));
    if (key !== undefined && key !== t.key)
      throw new Error(
        `sweep "${old.name}" was enqueued with a different definition of suite "${next.suite.id}": ${t.task} · ${t.method} · seed ${t.seed} has key ${key} there, ${t.key} now. Give another --name for the changed suite.`,
      );
  }
  const keys = new Set(next.trials.map((t) => t.key));
  return {
    ...next,
    seeds: Math.max(old.seeds, next.seeds),
    // Trials enqueued earlier stay part of the sweep (e.g. with more seeds before).
    trials: [...old.trials.filter((t) => !keys.has(t.key)), ...next.trials],
    run: old.run,
    created: old.created,
    updated: now,
  };
}

/**
 * Plan a suite (checked against the registries and its plugins first, as
 * `run` does) and enqueue one job per trial key, with jobId = the key. A job
 * already there is not added again (BullMQ ignores a duplicate id), and a
 * trial whose job finished ok is left alone; one that failed is queued again,
 * as `run` retries failed trials. The sweep's metadata is stored under its name.
 */
export async function enqueueSweep(opts: EnqueueOptions): Promise<EnqueueResult> {
  const loaded =
    opts.loaded ??
    (opts.suiteRef !== undefined
      ? loadSuite(opts.suiteRef, opts.overrides ?? {})
      : (() => {
          throw new Error('queue: which suite? Give a suite id or a suite file');
        })());
  const { kind, suite } = loaded;
  const name = checkSweepName(opts.name ?? suite.id);
  const seedCount = opts.seeds ?? suite.seeds;
  if (!Number.isInteger(seedCount) || seedCount < 1)
    throw new Error(`--seeds must be a positive integer, got ${seedCount}`);
  const seeds = Array.from({ length: seedCount }, (_, i) => i);
  // Checks (unknown ids and options, plugins that do not load) before anything reaches Redis.
  const registries = await registriesForSuite(suite);
  const { units } = planKeyedUnits({
    kind,
    suite,
    seeds,
    registries,
    ...(opts.engine ? { engine: opts.engine } : {}),
    ...(opts.backend ? { backend: opts.backend } : {}),
  });
  const provenance = collectProvenance();
  const redis = await connectRedis(
    opts.redisUrl,
    opts.redisExtra ? { extra: opts.redisExtra } : {},
  );
  const queue = trialQueue(redis);
  try {
    const meta = mergeSweep(await readSweep(redis, name), {
      name,
      kind: kind.id,
      suite,
      seeds: seedCount,
      ...(opts.engine ? { engine: opts.engine } : {}),
      ...(opts.backend ? { backend: opts.backend } : {}),
      trials: units.flatMap((u) =>
        u.trials.map((t) => ({ key: t.key, task: t.task, method: t.method, seed: t.seed })),
      ),
      provenance,
    });
    const base = { suite: suite.id, run: meta.run, kind: kind.id };
    const root = checkoutRoot();
    const jobData = (unit: KeyedUnit, key: string): TrialJobData => ({
      format: 1,
      sweep: name,
      key,
      kind: kind.id,
      suite,
      seeds,
      // Every other trial done: the unit runs this trial only.
      unit: { ...unit, done: unit.trials.filter((t) => t.key !== key).map((t) => t.key) },
      base,
      ...(opts.engine ? { engine: opts.engine } : {}),
      ...(opts.backend ? { backend: opts.backend } : {}),
      root,
      ...(provenance.commit ? { commit: provenance.commit } : {}),
    });
    const result: EnqueueResult = { name, total: 0, added: 0, ok: 0, pending: 0, retried: 0 };
    const fresh: { name: string; data: TrialJobData; opts: { jobId: string } }[] = [];
    // Jobs go out round-robin over units (every unit's first trial, then every
    // second, …): trials of one unit rarely run at once, so a pre-training is
    // usually cached (a shared --cache) before the unit's next trial needs it.
    const longest = Math.max(0, ...units.map((u) => u.trials.length));
    const order = Array.from({ length: longest }, (_, i) =>
      units.flatMap((unit) => (unit.trials[i] ? [{ unit, t: unit.trials[i] }] : [])),
    ).flat();
    // Asked all at once: ioredis pipelines the round trips.
    const found = await Promise.all(
      order.map(async ({ t }) => {
        const job = await queue.getJob(t.key);
        return job ? { job, state: await job.getState() } : undefined;
      }),
    );
    for (const [i, { unit, t }] of order.entries()) {
      result.total++;
      const { job, state } = found[i] ?? {};
      if (!job) {
        fresh.push({ name: 'trial', data: jobData(unit, t.key), opts: { jobId: t.key } });
        result.added++;
        continue;
      }
      const record = job.returnvalue as { status?: string } | null | undefined;
      if (state === 'completed' && record?.status === 'ok') result.ok++;
      else if (state === 'failed') {
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
        result.retried++;
      } else if (state === 'completed') {
        // A trial that failed on its own: a new job runs it again.
        await job.remove();
        fresh.push({ name: 'trial', data: jobData(unit, t.key), opts: { jobId: t.key } });
        result.retried++;
      } else result.pending++;
    }
    // The metadata first: a worker's record is collectable as soon as it exists.
    await writeSweep(redis, meta);
    if (fresh.length > 0)
      await queue.addBulk(
        fresh.map((f) => ({
          ...f,
          opts: {
            ...f.opts,
            attempts: TRIAL_ATTEMPTS,
            backoff: { type: 'fixed', delay: 2000 },
            // Kept: the record lives in the completed job until `collect` reads it.
            removeOnComplete: false,
            removeOnFail: false,
          },
        })),
      );
    return result;
  } finally {
    await queue.close();
    redis.disconnect();
  }
}
