/**
 * `pnpm bench collect`: a sweep's records from the completed jobs into
 * DIR/results.jsonl, the file `run` writes, so `report`, `--html` and
 * `compare` read it unchanged.
 */
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisOptions } from 'ioredis';
import { ensureDir, readRecords, type TrialRecord } from '../results.js';
import { connectRedis } from './redis.js';
import { countStates, type SweepCounts, type TrialStatus, trialStates } from './status.js';
import { requireSweep, type SweepMeta, trialQueue } from './sweep.js';

export interface CollectResult {
  path: string;
  counts: SweepCounts;
  /** The sweep's records written: one per finished trial. */
  records: TrialRecord[];
  kind: string;
  /** Trials not finished yet (waiting, running, or without a job): no record. */
  pending: number;
}

/** The record a finished trial leaves: a completed job's own, or a failed one for a failed job. */
function recordOf(meta: SweepMeta, s: TrialStatus): TrialRecord | undefined {
  const base = { suite: meta.suite.id, kind: meta.kind, run: meta.run, key: s.trial.key };
  if (s.record) {
    if (s.record.key !== s.trial.key)
      throw new Error(
        `job ${s.trial.key} returned the record of another trial (${s.record.key}); the queue holds foreign data`,
      );
    // A trial shared with another sweep of the same suite carries that sweep's run.
    return { ...s.record, ...base };
  }
  if (s.state !== 'failed') return undefined;
  return {
    ...base,
    task: s.trial.task,
    method: s.trial.method,
    seed: s.trial.seed,
    status: 'failed',
    metrics: {},
    durationMs: 0,
    backend: 'unknown',
    error: `job failed: ${s.failedReason ?? 'no reason given'}`,
    ...(s.finishedOn ? { timestamp: new Date(s.finishedOn).toISOString() } : {}),
  };
}

/**
 * Write DIR/results.jsonl with exactly one record per finished trial of the
 * sweep: the file's other records stay (first, in their order), any earlier
 * record of these keys is replaced, and the file is replaced atomically —
 * so collecting again, or after more trials finished, never duplicates.
 */
export async function collectSweep(opts: {
  redisUrl: string;
  name: string;
  outDir: string;
  redisExtra?: Partial<RedisOptions>;
}): Promise<CollectResult> {
  ensureDir(opts.outDir);
  const redis = await connectRedis(
    opts.redisUrl,
    opts.redisExtra ? { extra: opts.redisExtra } : {},
  );
  const queue = trialQueue(redis);
  let meta: SweepMeta;
  let states: TrialStatus[];
  try {
    meta = await requireSweep(redis, opts.name);
    states = await trialStates(queue, meta);
  } finally {
    await queue.close();
    redis.disconnect();
  }
  const records = states.map((s) => recordOf(meta, s)).filter((r) => r !== undefined);
  const path = join(opts.outDir, 'results.jsonl');
  const mine = new Set(records.map((r) => r.key));
  const others = existsSync(path)
    ? readRecords(path).filter((r) => !r.key || !mine.has(r.key))
    : [];
  const lines = [...others, ...records].map((r) => `${JSON.stringify(r)}\n`).join('');
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, lines);
  renameSync(tmp, path);
  // The resolved suite beside its records, as `run` keeps it.
  ensureDir(join(opts.outDir, 'runs'));
  writeFileSync(
    join(opts.outDir, 'runs', `${meta.run.replace(/[:.]/g, '-')}.json`),
    `${JSON.stringify({ run: meta.run, kind: meta.kind, suite: meta.suite, seeds: Array.from({ length: meta.seeds }, (_, i) => i), sweep: meta.name, engine: meta.engine, backend: meta.backend, provenance: meta.provenance }, null, 2)}\n`,
  );
  return {
    path,
    counts: countStates(meta, states),
    records,
    kind: meta.kind,
    pending: states.length - records.length,
  };
}
