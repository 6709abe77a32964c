/**
 * The CLI's queue commands — queue, worker, status, collect — in the shape
 * of cli.ts's command table, so cli.ts only lists them.
 */
import { join } from 'node:path';
import { requireEngine } from '@transferlab/methods';
import { type Command, intOption, loadSuiteFromArgs, str } from '../command.js';
import { builtinKindRegistry } from '../kinds.js';
import { builtinSuiteIds } from '../suite-file.js';
import { collectSweep } from './collect.js';
import { enqueueSweep } from './queue.js';
import { connectRedis, REDIS_URL_ENV, redactRedisUrl, requireRedisUrl } from './redis.js';
import { formatStatus, sweepStatus, watchStatus } from './status.js';
import { listSweeps } from './sweep.js';
import { startWorker } from './worker.js';

export type QueueCommand = Command;

const REDIS_HELP = `  --redis URL          redis://[:password@]host:port[/db], or rediss://… for TLS (default: $${REDIS_URL_ENV})`;

export const queue: QueueCommand = {
  usage: `pnpm bench queue <suite-id | path/to/suite.yaml> --redis URL [options]   enqueue a sweep, one job per trial
${REDIS_HELP}
  --seeds N            seeds 0 … N−1 (default: the suite's)
  --name SWEEP         the sweep's name for status and collect (default: the suite's id)
  --methods a,b        only these methods (labels), --tasks x,y only these tasks
  --set path=value     change the suite for this sweep (repeatable), as for run
  --plugin FILE        a method plugin module (inside the checkout: workers import it from theirs)
  --engine E           onnxruntime|tfjs, --backend B: wasm|cpu|tensorflow (workers must run it)
  Enqueueing again adds nothing for trials queued, running or ok; failed trials are queued again.`,
  options: {
    redis: { type: 'string' },
    seeds: { type: 'string' },
    name: { type: 'string' },
    methods: { type: 'string' },
    tasks: { type: 'string' },
    set: { type: 'string', multiple: true },
    plugin: { type: 'string', multiple: true },
    engine: { type: 'string' },
    backend: { type: 'string' },
  },
  async run(values, [ref]) {
    if (!ref)
      throw new Error(
        `queue: which suite? Valid suite ids: ${builtinSuiteIds().join(', ')} (or a suite file)`,
      );
    const redisUrl = requireRedisUrl(str(values.redis), 'queue');
    const loaded = await loadSuiteFromArgs(ref, values);
    const seeds = intOption('seeds', values.seeds);
    const name = str(values.name);
    const r = await enqueueSweep({
      redisUrl,
      loaded,
      ...(name ? { name } : {}),
      ...(seeds !== undefined ? { seeds } : {}),
      ...(str(values.engine) ? { engine: requireEngine(str(values.engine) as string) } : {}),
      ...(str(values.backend) ? { backend: str(values.backend) as string } : {}),
    });
    const shown = redactRedisUrl(redisUrl);
    process.stdout.write(
      `sweep ${r.name}: ${r.total} trials — ${r.added} jobs added, ${r.ok} already ok, ${r.pending} queued or running, ${r.retried} failed ones queued again
run workers:  pnpm bench worker --redis ${shown}
progress:     pnpm bench status --redis ${shown} --name ${r.name} --watch
records:      pnpm bench collect --redis ${shown} --name ${r.name} --out results/${r.name}
`,
    );
    return 0;
  },
};

export const worker: QueueCommand = {
  usage: `pnpm bench worker --redis URL [--concurrency N] [--cache DIR]   run queued trials until stopped (Ctrl-C)
${REDIS_HELP}
  --concurrency N      trials at once, each in a child process of this worker (default 1; at most one per core)
  --cache DIR          keep pre-trained sources in DIR (shared by workers that share DIR; default: each child process its own)
  --backend B          the tfjs backend (default: automatic); a trial that asks for another is refused
  --lock-ms MS         a job's lock: a worker that dies gives its trial back after this (default 30000)
  --stalled-ms MS      how often lost trials are looked for (default 30000)
  --max-stalled N      times a trial may lose its worker before it fails (default 2)
  Runs only trials of built-in suite kinds, with built-in methods or plugin files of its own checkout.`,
  options: {
    redis: { type: 'string' },
    concurrency: { type: 'string' },
    cache: { type: 'string' },
    backend: { type: 'string' },
    'lock-ms': { type: 'string' },
    'stalled-ms': { type: 'string' },
    'max-stalled': { type: 'string' },
  },
  async run(values) {
    const lock = intOption('lock-ms', values['lock-ms']);
    const stalled = intOption('stalled-ms', values['stalled-ms']);
    const maxStalled = intOption('max-stalled', values['max-stalled']);
    const concurrency = intOption('concurrency', values.concurrency);
    const running = await startWorker({
      redisUrl: requireRedisUrl(str(values.redis), 'worker'),
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(str(values.cache) ? { cacheDir: str(values.cache) as string } : {}),
      ...(str(values.backend) ? { backend: str(values.backend) as string } : {}),
      ...(lock !== undefined ? { lockDurationMs: lock } : {}),
      ...(stalled !== undefined ? { stalledIntervalMs: stalled } : {}),
      ...(maxStalled !== undefined ? { maxStalledCount: maxStalled } : {}),
    });
    await new Promise<void>((stop) => {
      const onSignal = (signal: NodeJS.Signals) => {
        process.stderr.write(
          `${running.name}: ${signal}: finishing the trials in hand (again to stop now)\n`,
        );
        process.once(signal, () => process.exit(130));
        stop();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    });
    await running.close();
    return 0;
  },
};

export const status: QueueCommand = {
  usage: `pnpm bench status --redis URL --name SWEEP [--watch]   a sweep's trials: waiting, active, done, failed
${REDIS_HELP}
  --name SWEEP         the sweep (without it: the sweeps in this Redis database)
  --watch              redraw until no trial is waiting or running`,
  options: { redis: { type: 'string' }, name: { type: 'string' }, watch: { type: 'boolean' } },
  async run(values) {
    const redisUrl = requireRedisUrl(str(values.redis), 'status');
    const name = str(values.name);
    if (!name) {
      const redis = await connectRedis(redisUrl);
      try {
        const names = await listSweeps(redis);
        process.stdout.write(
          names.length > 0 ? `${names.join('\n')}\n` : 'no sweeps in this Redis database\n',
        );
      } finally {
        redis.disconnect();
      }
      return 0;
    }
    const counts = values.watch
      ? await watchStatus({ redisUrl, name })
      : (await sweepStatus({ redisUrl, name })).counts;
    if (!values.watch) process.stdout.write(`${formatStatus(counts)}\n`);
    return 0;
  },
};

export const collect: QueueCommand = {
  usage: `pnpm bench collect --redis URL --name SWEEP --out DIR   the sweep's records into DIR/results.jsonl
${REDIS_HELP}
  --name SWEEP         the sweep
  --out DIR            results directory (default results/<SWEEP>); one record per trial key, again and again
  Exit code 0 when every trial is ok; records of unfinished trials are left out.`,
  options: { redis: { type: 'string' }, name: { type: 'string' }, out: { type: 'string' } },
  async run(values) {
    const redisUrl = requireRedisUrl(str(values.redis), 'collect');
    const name = str(values.name);
    if (!name)
      throw new Error('collect: which sweep? Give --name SWEEP (pnpm bench status lists them)');
    const outDir = str(values.out) ?? join('results', name);
    const r = await collectSweep({ redisUrl, name, outDir });
    const kind = builtinKindRegistry().get(r.kind);
    if (r.records.length > 0) process.stdout.write(`${kind.summarize(r.records, {})}\n\n`);
    process.stdout.write(
      `${formatStatus(r.counts)}\n${r.records.length} records in ${r.path}${r.pending > 0 ? `; ${r.pending} trials not finished yet (collect again later)` : ''}\n`,
    );
    return r.pending === 0 && r.records.every((x) => x.status === 'ok') ? 0 : 1;
  },
};

/** The four commands, for cli.ts's table. */
export const queueCommands = { queue, worker, status, collect };
