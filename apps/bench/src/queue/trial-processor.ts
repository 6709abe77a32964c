/**
 * The file a worker's sandboxed child processes load (BullMQ's sandboxed
 * processor): each child runs one trial at a time here, while the worker's
 * own process keeps the jobs' locks renewed. In-process, a trial that holds
 * the event loop — a long synchronous tfjs evaluation, a plugin's blocking
 * step — stops the renewals: the job stalls and a second worker runs it again.
 */
import { hostname } from 'node:os';
import { initBackend } from '@transferlab/core';
import { CHILD_OPTIONS_ENV, childOptionsSchema } from './child-options.js';
import { createTrialRunner, type TrialJob, type TrialRunner } from './trial-runner.js';

let runner: Promise<TrialRunner> | undefined;

async function start(): Promise<TrialRunner> {
  const raw = process.env[CHILD_OPTIONS_ENV];
  if (!raw) throw new Error(`${CHILD_OPTIONS_ENV} is not set: this file is loaded by a worker`);
  const opts = childOptionsSchema.parse(JSON.parse(raw));
  await initBackend({ backend: opts.backend });
  const made = createTrialRunner({
    backend: opts.backend,
    name: `${opts.name} (child ${hostname()}:${process.pid})`,
    log: (line) => process.stderr.write(`${line}\n`),
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
  });
  process.once('exit', () => made.close());
  return made;
}

// The worker died without closing its children (SIGKILL, a crash): stop at the
// next turn of the event loop instead of finishing a trial nobody will record.
process.once('disconnect', () => process.exit(1));

export default async function processTrial(job: TrialJob) {
  if (!runner) {
    runner = start();
    // A start that failed is tried again with the next job, not kept.
    runner.catch(() => {
      runner = undefined;
    });
  }
  return (await runner).run(job);
}
