/**
 * `pnpm bench status`: where a sweep's trials are — waiting, running,
 * done (ok or failed on their own), failed jobs (refused, or out of attempts).
 */
import type { Queue } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { createProgress, type Progress, safeProgress } from '../progress.js';
import type { TrialRecord } from '../results.js';
import { connectRedis } from './redis.js';
import { requireSweep, type SweepMeta, type TrialJobData, trialQueue } from './sweep.js';

export type TrialState = 'waiting' | 'active' | 'ok' | 'failed-trial' | 'failed' | 'missing';

export interface TrialStatus {
  trial: SweepMeta['trials'][number];
  state: TrialState;
  /** A completed job's record. */
  record?: TrialRecord;
  /** A failed job's reason (a refusal, or the last error when out of attempts). */
  failedReason?: string;
  finishedOn?: number;
}

/** Each trial of the sweep with its job's state (all asked at once: ioredis pipelines them). */
export async function trialStates(
  queue: Queue<TrialJobData, unknown>,
  meta: SweepMeta,
): Promise<TrialStatus[]> {
  return Promise.all(
    meta.trials.map(async (trial): Promise<TrialStatus> => {
      // The state first, then the job: read the other way round, a job that
      // completes between the two reads is "completed" without its return value.
      const state = await queue.getJobState(trial.key);
      if (state === 'unknown') return { trial, state: 'missing' };
      if (state === 'active') return { trial, state: 'active' };
      // waiting, delayed (a retry's back-off), prioritized, paused
      if (state !== 'completed' && state !== 'failed') return { trial, state: 'waiting' };
      const job = await queue.getJob(trial.key);
      if (!job) return { trial, state: 'missing' };
      if (state === 'completed') {
        const record = job.returnvalue as TrialRecord;
        return {
          trial,
          state: record?.status === 'ok' ? 'ok' : 'failed-trial',
          record,
          ...(job.finishedOn ? { finishedOn: job.finishedOn } : {}),
        };
      }
      return {
        trial,
        state: 'failed',
        failedReason: job.failedReason,
        ...(job.finishedOn ? { finishedOn: job.finishedOn } : {}),
      };
    }),
  );
}

export interface SweepCounts {
  name: string;
  suite: string;
  total: number;
  waiting: number;
  active: number;
  /** Completed jobs whose record is ok. */
  ok: number;
  /** Completed jobs whose trial failed on its own (record status failed). */
  failedTrials: number;
  /** Failed jobs: refused by a worker, or out of attempts. */
  failed: number;
  /** Trials of the sweep with no job (removed from Redis). */
  missing: number;
}

export function countStates(meta: SweepMeta, states: readonly TrialStatus[]): SweepCounts {
  const n = (s: TrialState) => states.filter((t) => t.state === s).length;
  return {
    name: meta.name,
    suite: meta.suite.id,
    total: states.length,
    waiting: n('waiting'),
    active: n('active'),
    ok: n('ok'),
    failedTrials: n('failed-trial'),
    failed: n('failed'),
    missing: n('missing'),
  };
}

/** Whether nothing of the sweep is left to run. */
export const finished = (c: SweepCounts) => c.waiting === 0 && c.active === 0;

export function formatStatus(c: SweepCounts): string {
  return `sweep ${c.name} (suite ${c.suite}, ${c.total} trials): waiting ${c.waiting} · active ${c.active} · done ${c.ok + c.failedTrials} (${c.ok} ok, ${c.failedTrials} failed) · failed jobs ${c.failed}${c.missing ? ` · missing ${c.missing}` : ''}`;
}

export async function sweepStatus(opts: {
  redisUrl: string;
  name: string;
  redisExtra?: Partial<RedisOptions>;
}): Promise<{ counts: SweepCounts; states: TrialStatus[] }> {
  const redis = await connectRedis(
    opts.redisUrl,
    opts.redisExtra ? { extra: opts.redisExtra } : {},
  );
  const queue = trialQueue(redis);
  try {
    const meta = await requireSweep(redis, opts.name);
    const states = await trialStates(queue, meta);
    return { counts: countStates(meta, states), states };
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

/**
 * Redraw the sweep's progress until nothing is waiting or running: a line
 * whenever the counts change, and on a terminal a bar below. Returns the last counts.
 */
export async function watchStatus(opts: {
  redisUrl: string;
  name: string;
  intervalMs?: number;
  progress?: Progress;
  redisExtra?: Partial<RedisOptions>;
}): Promise<SweepCounts> {
  const redis = await connectRedis(
    opts.redisUrl,
    opts.redisExtra ? { extra: opts.redisExtra } : {},
  );
  const queue = trialQueue(redis);
  const progress = safeProgress(opts.progress ?? createProgress());
  try {
    let last = '';
    for (;;) {
      // Read each time: a sweep may grow (more seeds enqueued) while watched.
      const meta = await requireSweep(redis, opts.name);
      const counts = countStates(meta, await trialStates(queue, meta));
      const line = formatStatus(counts);
      const done = counts.ok + counts.failedTrials + counts.failed;
      progress.trial(
        `waiting ${counts.waiting} · active ${counts.active} · failed ${counts.failedTrials + counts.failed}`,
        Math.max(0, done - 1),
        counts.total,
      );
      progress.epoch(counts.name, done, Math.max(1, counts.total));
      if (line !== last) {
        last = line;
        progress.done(line);
      }
      if (finished(counts)) return counts;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
    }
  } finally {
    progress.close();
    await queue.close();
    redis.disconnect();
  }
}
