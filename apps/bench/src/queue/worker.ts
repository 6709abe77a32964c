/**
 * `pnpm bench worker`: takes trials from the queue and runs each in a
 * sandboxed child process (trial-processor.ts; `concurrency` of them), so
 * this process keeps the jobs' locks renewed however long a trial holds its
 * own event loop. What a job is checked for before it runs, and refused for,
 * is in trial-runner.ts.
 */
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initBackend } from '@transferlab/core';
import { Worker } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { ensureDir, type TrialRecord } from '../results.js';
import { CHILD_OPTIONS_ENV, type ChildOptions } from './child-options.js';
import { connectRedis, redactRedisUrl } from './redis.js';
import { TRIAL_QUEUE, type TrialJobData } from './sweep.js';

export interface StartWorkerOptions {
  redisUrl: string;
  /** Trials this worker runs at once, each in a child process of its own (default 1). */
  concurrency?: number;
  /** Where pre-trained sources are kept (default: a directory of each child process, removed when it stops). Share it between workers to pre-train each source once; entries are written atomically. */
  cacheDir?: string;
  /** The tfjs backend this worker initialises once (default: the automatic choice). */
  backend?: string;
  /** How long a job's lock lasts without renewal: a worker that dies loses its job after this (default 30 s). */
  lockDurationMs?: number;
  /** How often stalled jobs (their worker gone) are looked for (default 30 s). */
  stalledIntervalMs?: number;
  /** Times a job may stall (its worker dies) before it fails (default 2). */
  maxStalledCount?: number;
  redisExtra?: Partial<RedisOptions>;
  /** One line per event of the worker (default: stderr); its children write their own messages (a commit mismatch) to stderr. */
  log?: (line: string) => void;
}

export interface RunningWorker {
  /** host:pid, also stored on each job it takes (`processedBy`). */
  name: string;
  backend: string;
  worker: Worker<TrialJobData, TrialRecord>;
  /** Stop taking jobs, finish the ones running, disconnect. */
  close(): Promise<void>;
}

/**
 * The sandboxed processor's file and the Node options its children need:
 * from source (tsx) the .ts file and the loader; from a build, the .js file.
 */
function childProcessor(): { file: URL; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const fromSource = here.endsWith('.ts');
  const file = pathToFileURL(join(dirname(here), `trial-processor.${fromSource ? 'ts' : 'js'}`));
  // A debugger's port is this process's: children started with it would clash or wait.
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  if (fromSource) {
    // A worker started inside another tool (a test runner) may not carry the loader flags.
    if (!execArgv.some((a) => a.includes('@transferlab/source')))
      execArgv.push('--conditions=@transferlab/source');
    const loadsTsx = execArgv.some(
      (a, i) => a === '--import=tsx' || (a === 'tsx' && execArgv[i - 1] === '--import'),
    );
    if (!loadsTsx) execArgv.push('--import', 'tsx');
  }
  return { file, execArgv };
}

/** Start a BullMQ worker on the trial queue; resolves once connected and the backend is up. */
export async function startWorker(opts: StartWorkerOptions): Promise<RunningWorker> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const concurrency = opts.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Error(`--concurrency must be a positive integer, got ${concurrency}`);
  // A cache that cannot be made stops the worker here, not every job in its children.
  if (opts.cacheDir) ensureDir(resolve(opts.cacheDir));
  const redis = await connectRedis(opts.redisUrl, {
    worker: true,
    ...(opts.redisExtra ? { extra: opts.redisExtra } : {}),
  });
  const backend = (await initBackend(opts.backend ? { backend: opts.backend } : {})).name;
  const name = `${hostname()}:${process.pid}`;
  const child: ChildOptions = {
    backend,
    name,
    ...(opts.cacheDir ? { cacheDir: resolve(opts.cacheDir) } : {}),
  };
  const processor = childProcessor();
  const worker = new Worker<TrialJobData, TrialRecord>(TRIAL_QUEUE, processor.file, {
    connection: redis,
    concurrency,
    name,
    lockDuration: opts.lockDurationMs ?? 30_000,
    stalledInterval: opts.stalledIntervalMs ?? 30_000,
    maxStalledCount: opts.maxStalledCount ?? 2,
    workerForkOptions: {
      execArgv: processor.execArgv,
      env: { ...process.env, [CHILD_OPTIONS_ENV]: JSON.stringify(child) },
    },
  });
  worker.on('completed', (job, r) => {
    const what =
      r.status === 'ok'
        ? Object.entries(r.metrics)
            .slice(0, 1)
            .map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`)
            .join('')
        : `FAILED: ${r.error}`;
    log(
      `${name}: ${r.task} · ${r.method} · seed ${r.seed} (${job.id}): ${r.status} ${what} (${(r.durationMs / 1000).toFixed(1)} s)`,
    );
  });
  worker.on('failed', (job, err) =>
    log(
      `${name}: job ${job?.id ?? '?'} failed (attempt ${job?.attemptsMade ?? '?'}): ${err.message}`,
    ),
  );
  worker.on('stalled', (id) =>
    log(`${name}: job ${id} stalled (its worker stopped): queued again`),
  );
  worker.on('error', (err) => log(`${name}: ${err.message}`));
  await worker.waitUntilReady();
  log(
    `${name}: worker on ${redactRedisUrl(opts.redisUrl)}, backend ${backend}, concurrency ${concurrency}, pre-training cache ${opts.cacheDir ? resolve(opts.cacheDir) : 'a directory of each child process (not shared)'}`,
  );
  return {
    name,
    backend,
    worker,
    async close() {
      await worker.close();
      redis.disconnect();
    },
  };
}
