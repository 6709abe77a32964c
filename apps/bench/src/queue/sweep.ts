/**
 * What the queue's producer, workers, status and collect share: the queue's
 * name, a sweep's metadata in Redis, and the data of one trial's job.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Engine } from '@transferlab/methods';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { KeyedUnit } from '../execute.js';
import type { Provenance } from '../provenance.js';
import type { BaseSuite } from '../suite-kind.js';

/** The one BullMQ queue every sweep's trials go to: a worker serves all sweeps. */
export const TRIAL_QUEUE = 'transferlab-trials';

/** Job options of every trial. `attempts` bounds retries of errors outside the trial (a trial's own failure is a completed job). */
export const TRIAL_ATTEMPTS = 3;

export interface TrialJobData {
  /** The shape of this data; a worker refuses others. */
  format: 1;
  /** The sweep that enqueued the job first (a later sweep of the same trial shares it). */
  sweep: string;
  /** The trial's key; also the job's id. */
  key: string;
  /** The suite kind's id: must be a built-in kind. */
  kind: string;
  /** The resolved suite, as `loadSuite` returns it (method plugin paths absolute on the enqueuing host). */
  suite: BaseSuite;
  /** The sweep's seeds: the worker plans the suite as the producer did and checks the unit against it. */
  seeds: number[];
  /** The trial's unit; every other trial of it is `done`, so the unit runs this trial only. */
  unit: KeyedUnit;
  /** Fields every record of the sweep carries. */
  base: { suite: string; run: string; kind: string };
  engine?: Engine;
  backend?: string;
  /** The enqueuing host's checkout: plugin paths under it are found under the worker's own. */
  root: string;
  /** The enqueuing checkout's commit, so a worker on another commit can say so. */
  commit?: string;
}

/** A sweep as stored in Redis under its name. */
export interface SweepMeta {
  name: string;
  kind: string;
  suite: BaseSuite;
  seeds: number;
  /** The `run` of every collected record (when the sweep was first enqueued). */
  run: string;
  engine?: Engine;
  backend?: string;
  /** Every trial of the sweep, in plan order. */
  trials: { key: string; task: string; method: string; seed: number }[];
  created: string;
  updated: string;
  provenance: Provenance;
}

const SWEEP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function checkSweepName(name: string): string {
  if (!SWEEP_NAME.test(name))
    throw new Error(
      `sweep name "${name}": use letters, digits, ".", "_" and "-" (at most 100, starting with a letter or digit)`,
    );
  return name;
}

const sweepKey = (name: string) => `transferlab:sweep:${name}`;
const SWEEPS = 'transferlab:sweeps';

export async function readSweep(redis: Redis, name: string): Promise<SweepMeta | undefined> {
  const raw = await redis.get(sweepKey(checkSweepName(name)));
  return raw === null ? undefined : (JSON.parse(raw) as SweepMeta);
}

export async function requireSweep(redis: Redis, name: string): Promise<SweepMeta> {
  const meta = await readSweep(redis, name);
  if (!meta) {
    const names = await listSweeps(redis);
    throw new Error(
      `no sweep "${name}" in this Redis database${names.length > 0 ? `; sweeps here: ${names.join(', ')}` : ' (none enqueued yet: pnpm bench queue …)'}`,
    );
  }
  return meta;
}

export async function writeSweep(redis: Redis, meta: SweepMeta): Promise<void> {
  await redis.multi().set(sweepKey(meta.name), JSON.stringify(meta)).sadd(SWEEPS, meta.name).exec();
}

export async function listSweeps(redis: Redis): Promise<string[]> {
  return (await redis.smembers(SWEEPS)).sort();
}

/** The trial queue on an open connection (shared: closing the queue leaves the connection open). */
export function trialQueue(redis: Redis): Queue<TrialJobData, unknown> {
  return new Queue<TrialJobData, unknown>(TRIAL_QUEUE, { connection: redis });
}

/**
 * The checkout this code runs from (the folder with pnpm-workspace.yaml above
 * this file), else the working directory: plugin files must lie inside it.
 */
export function checkoutRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    if (dirname(dir) === dir) return process.cwd();
  }
}
