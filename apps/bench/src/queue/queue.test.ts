import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRecords, type TrialRecord } from '../results.js';
import { collectSweep } from './collect.js';
import { PAUSE_MS } from './fixtures/blocking-method.js';
import { enqueueSweep } from './queue.js';
import { connectRedis, redactRedisUrl, redisOptions } from './redis.js';
import { type LocalRedis, redisServerAvailable, startRedis } from './redis-server.js';
import { countStates, sweepStatus, trialStates } from './status.js';
import { type SweepMeta, TRIAL_QUEUE, type TrialJobData } from './sweep.js';
import { startWorker } from './worker.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
const tmp = (p = 'tl-queue-') => mkdtempSync(join(tmpdir(), p));
const cli = (args: string[]) => [
  '--conditions=@transferlab/source',
  '--import',
  'tsx',
  'apps/bench/src/cli.ts',
  ...args,
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const triple = (r: TrialRecord) => `${r.task}|${r.method}|${r.seed}`;

/** 2 tasks × 3 methods × 2 seeds = 12 trials, each well under a second. */
const TINY = `id: tiny-queue
description: queue test
backbone: mlp
seeds: 2
tasks:
  - id: mnist-digits-to-parity
    options: { labelsPerClass: 10, valPerClass: 10, testPerClass: 100 }
  - id: fashion-to-fashion-coarse
    options: { labelsPerClass: 5, testPerClass: 100 }
methods:
  - id: scratch
    options: { epochs: 10 }
  - id: linear-probe
    options: { epochs: 10 }
  - id: fine-tune
    options: { epochs: 10 }
pretrain: { epochs: 2, maxExamples: 2000 }
`;

/** 3 trials: two ok, one that diverges (a trial's own failure). */
const SMALL = `id: tiny-guard
description: queue refusal test
backbone: mlp
seeds: 1
tasks:
  - id: mnist-digits-to-parity
    options: { labelsPerClass: 5, valPerClass: 5, testPerClass: 50 }
methods:
  - id: scratch
    options: { epochs: 2 }
  - id: linear-probe
    options: { epochs: 2 }
  - id: scratch
    label: diverges
    options: { epochs: 2, lr: 1e12 }
pretrain: { epochs: 1, maxExamples: 500 }
`;

describe('Redis URLs', () => {
  it('take host, port, database, user and password from the URL; rediss:// turns TLS on', () => {
    expect(redisOptions('redis://127.0.0.1:6380/2')).toEqual({
      host: '127.0.0.1',
      port: 6380,
      db: 2,
    });
    expect(redisOptions('redis://:p%40ss%20w@h.example:7000')).toMatchObject({
      host: 'h.example',
      port: 7000,
      db: 0,
      password: 'p@ss w',
    });
    expect(redisOptions('redis://alice:pw@h')).toMatchObject({
      username: 'alice',
      password: 'pw',
      port: 6379,
    });
    expect(redisOptions('rediss://:pw@redis.example:6390').tls).toEqual({
      servername: 'redis.example',
    });
    expect(redisOptions('rediss://10.0.0.5').tls).toEqual({});
    expect(redisOptions('redis://h').tls).toBeUndefined();
    expect(() => redisOptions('http://h:6379')).toThrow(/redis:\/\/ or rediss:\/\//);
    expect(() => redisOptions('redis://h/abc')).toThrow(/database number/);
    expect(() => redisOptions('redis://:secret@h:1/x')).toThrow(/:\*\*\*@/);
    expect(redactRedisUrl('redis://:secret@h:1')).toBe('redis://:***@h:1');
  });
});

const available = redisServerAvailable();
const ci = Boolean(process.env.CI) && process.env.CI !== 'false';
if (!available && !ci)
  console.warn(
    'skipping the queue tests against a real redis-server: redis-server is not installed (scripts/setup.sh installs it)',
  );

describe('redis-server is installed', () => {
  it.runIf(ci)('under CI, redis-server must be there (scripts/setup.sh installs it)', () => {
    expect(available, 'redis-server not found on PATH under CI').toBe(true);
  });
});

describe.runIf(available)('sweeps on a real redis-server', () => {
  let redis: LocalRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('three workers, one SIGKILLed mid-trial: collect gives 12 ok records equal to `run --jobs 1`; enqueueing again adds nothing', async () => {
    const dir = tmp();
    const file = join(dir, 'tiny.yaml');
    writeFileSync(file, TINY);
    const url = `${redis.url}/0`;

    const first = await enqueueSweep({ redisUrl: url, suiteRef: file, name: 'tiny' });
    expect(first).toMatchObject({ total: 12, added: 12, ok: 0, pending: 0 });
    const again = await enqueueSweep({ redisUrl: url, suiteRef: file, name: 'tiny' });
    expect(again).toMatchObject({ total: 12, added: 0, pending: 12 });
    // status: everything waiting before any worker starts
    expect((await sweepStatus({ redisUrl: url, name: 'tiny' })).counts).toMatchObject({
      total: 12,
      waiting: 12,
      active: 0,
      ok: 0,
      failed: 0,
    });

    // The reference: the same suite file run in one process, meanwhile.
    const runOut = join(dir, 'run');
    const runChild = spawn(process.execPath, cli(['run', file, '--jobs', '1', '--out', runOut]), {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let runOutput = '';
    runChild.stdout?.on('data', (d) => {
      runOutput += String(d);
    });
    runChild.stderr?.on('data', (d) => {
      runOutput += String(d);
    });
    const runDone = new Promise<number | null>((r) => runChild.once('exit', (code) => r(code)));

    const cache = join(dir, 'shared-cache');
    const logs: string[] = ['', '', ''];
    const workers: ChildProcess[] = [0, 1, 2].map((i) => {
      const child = spawn(
        process.execPath,
        cli([
          'worker',
          '--redis',
          url,
          '--cache',
          cache,
          '--lock-ms',
          '3000',
          '--stalled-ms',
          '1000',
        ]),
        { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      child.stderr?.on('data', (d) => {
        logs[i] += String(d);
      });
      return child;
    });
    const exits = workers.map((w) => new Promise<void>((r) => w.once('exit', () => r())));

    const conn = new Redis(redisOptions(url));
    const queue = new Queue<TrialJobData>(TRIAL_QUEUE, { connection: conn });
    try {
      // Kill a worker right after it took a job, so the trial is surely in flight.
      let killed: { worker: number; job: string } | undefined;
      const deadline = Date.now() + 60_000;
      while (!killed && Date.now() < deadline) {
        for (const job of await queue.getJobs(['active'])) {
          const w = workers.findIndex((c) => job.processedBy === `${hostname()}:${c.pid}`);
          if (w >= 0 && job.processedOn && Date.now() - job.processedOn < 150) {
            workers[w]?.kill('SIGKILL');
            killed = { worker: w, job: job.id as string };
            break;
          }
        }
        if (!killed) await sleep(20);
      }
      expect(killed, `no worker took a job:\n${logs.join('\n')}`).toBeDefined();
      const victim = killed as { worker: number; job: string };

      // The others finish the sweep, the killed worker's trial included.
      let status = await sweepStatus({ redisUrl: url, name: 'tiny' });
      while (
        (status.counts.waiting > 0 || status.counts.active > 0) &&
        Date.now() < deadline + 30_000
      ) {
        await sleep(250);
        status = await sweepStatus({ redisUrl: url, name: 'tiny' });
      }
      const counts = status.counts;
      const failures = status.states
        .filter((s) => s.state === 'failed-trial' || s.state === 'failed')
        .map((s) => `${s.trial.key}: ${s.record?.error ?? s.failedReason}`);
      expect(counts, [...failures, ...logs].join('\n')).toMatchObject({
        total: 12,
        waiting: 0,
        active: 0,
        ok: 12,
        failedTrials: 0,
        failed: 0,
      });
      const retried = await queue.getJob(victim.job);
      expect(retried?.stalledCounter, 'the killed trial was recovered as stalled').toBeGreaterThan(
        0,
      );
      expect(retried?.processedBy).not.toBe(`${hostname()}:${workers[victim.worker]?.pid}`);
      expect(await retried?.getState()).toBe('completed');

      const out = join(dir, 'collected');
      const collected = await collectSweep({ redisUrl: url, name: 'tiny', outDir: out });
      expect(collected.pending).toBe(0);
      const records = readRecords(join(out, 'results.jsonl'));
      expect(records).toHaveLength(12);
      expect(records.every((r) => r.status === 'ok')).toBe(true);
      expect(new Set(records.map(triple)).size).toBe(12);
      expect(new Set(records.map((r) => r.run)).size).toBe(1);

      // Collecting again rewrites, never duplicates.
      await collectSweep({ redisUrl: url, name: 'tiny', outDir: out });
      expect(readRecords(join(out, 'results.jsonl'))).toHaveLength(12);

      // Enqueueing the finished sweep again adds no job.
      const third = await enqueueSweep({ redisUrl: url, suiteRef: file, name: 'tiny' });
      expect(third).toMatchObject({ total: 12, added: 0, ok: 12, retried: 0 });
      expect(await queue.getJobCountByTypes('waiting', 'active', 'delayed')).toBe(0);

      expect(await runDone, runOutput).toBe(0);
      const reference = readRecords(join(runOut, 'results.jsonl'));
      expect(reference).toHaveLength(12);
      const byKey = (rs: TrialRecord[]) =>
        Object.fromEntries(rs.map((r) => [r.key as string, { id: triple(r), m: r.metrics }]));
      expect(byKey(records)).toEqual(byKey(reference));

      // `report` reads the collected directory as it reads a run's.
      const report = spawnSync(process.execPath, cli(['report', out]), {
        cwd: root,
        encoding: 'utf8',
      });
      expect(report.status, report.stderr).toBe(0);
      expect(report.stdout).toContain('fashion-to-fashion-coarse');
    } finally {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
      await Promise.all(exits);
      await queue.close();
      conn.disconnect();
      if (runChild.exitCode === null) runChild.kill('SIGKILL');
    }
  });

  it('a worker refuses jobs that name an unknown method, a plugin outside its checkout, an unknown kind or an altered trial, without retrying them; runs a plugin of its checkout; a trial that fails on its own is recorded', async () => {
    const dir = tmp();
    const file = join(dir, 'small.yaml');
    writeFileSync(file, SMALL);
    const url = `${redis.url}/1`;
    const enq = await enqueueSweep({ redisUrl: url, suiteRef: file, name: 'guarded' });
    expect(enq).toMatchObject({ total: 3, added: 3 });

    const conn = new Redis(redisOptions(url));
    const queue = new Queue<TrialJobData>(TRIAL_QUEUE, { connection: conn });
    const marker = join(dir, 'evil-ran');
    const evil = join(dir, 'evil.mjs');
    writeFileSync(
      evil,
      `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(marker)}, 'x');\n`,
    );
    let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
    try {
      const jobs = await queue.getJobs(['waiting']);
      const byMethod = (m: string) => {
        const job = jobs.find((j) => j.data.unit.trials.find((t) => t.key === j.id)?.method === m);
        if (!job) throw new Error(`no job for ${m}`);
        return job;
      };
      const scratch = byMethod('scratch');
      const probe = byMethod('linear-probe');
      const diverges = byMethod('diverges');
      const methodsOf = (d: TrialJobData) =>
        (d.suite as unknown as { methods: Record<string, unknown>[] }).methods;
      // Someone with access to Redis rewrites jobs.
      const unknownMethod = structuredClone(scratch.data);
      methodsOf(unknownMethod)[0] = { id: 'rm-rf' };
      await scratch.updateData(unknownMethod);
      const outside = structuredClone(probe.data);
      methodsOf(outside)[1] = { id: 'linear-probe', from: evil };
      await probe.updateData(outside);
      const opts = { attempts: 3, removeOnComplete: false, removeOnFail: false };
      await queue.add(
        'trial',
        { ...diverges.data, kind: 'shell', key: '0123456789abcdef0123' },
        {
          ...opts,
          jobId: '0123456789abcdef0123',
        },
      );
      // The diverging trial's job with its learning rate changed: the key no longer matches.
      const altered = structuredClone(diverges.data);
      (methodsOf(altered)[2]?.options as Record<string, unknown>).lr = 0.01;
      await queue.add('trial', altered, { ...opts, jobId: 'fedcba9876543210fedc' });
      await queue.add(
        'trial',
        { ...altered, key: 'fedcba9876543210feda' },
        {
          ...opts,
          jobId: 'fedcba9876543210feda',
        },
      );

      // A plugin file of the checkout runs, even when the producer's checkout lies elsewhere.
      const plugin = await enqueueSweep({
        redisUrl: url,
        suiteRef: join(root, 'examples/method-plugin/suite.yaml'),
        overrides: { methods: ['lp-ft'] },
        seeds: 1,
        name: 'plugin',
      });
      expect(plugin).toMatchObject({ total: 1, added: 1 });
      const [lpft] = await queue
        .getJobs(['waiting'])
        .then((js) => js.filter((j) => j.data.sweep === 'plugin'));
      if (!lpft) throw new Error('no lp-ft job');
      const elsewhere = structuredClone(lpft.data);
      const other = '/elsewhere/transferlab';
      const from = methodsOf(elsewhere)[0]?.from as string;
      expect(from.startsWith(elsewhere.root)).toBe(true);
      methodsOf(elsewhere)[0] = {
        ...methodsOf(elsewhere)[0],
        from: `${other}${from.slice(elsewhere.root.length)}`,
      };
      elsewhere.root = other;
      await lpft.updateData(elsewhere);

      worker = await startWorker({ redisUrl: url, log: () => {} });
      const ids = [
        lpft.id,
        scratch.id,
        probe.id,
        diverges.id,
        '0123456789abcdef0123',
        'fedcba9876543210fedc',
        'fedcba9876543210feda',
      ] as string[];
      const deadline = Date.now() + 30_000;
      for (;;) {
        const states = await Promise.all(ids.map((id) => queue.getJobState(id)));
        if (states.every((s) => s === 'completed' || s === 'failed')) break;
        if (Date.now() > deadline) throw new Error(`jobs still ${states.join(', ')}`);
        await sleep(100);
      }
      const failedWith = async (id: string, reason: RegExp) => {
        const job = await queue.getJob(id);
        expect(await job?.getState()).toBe('failed');
        expect(job?.failedReason).toMatch(reason);
        // attempts: 3, yet tried once
        expect(job?.attemptsMade).toBe(1);
      };
      await failedWith(
        scratch.id as string,
        /refused: method "rm-rf" is neither a built-in method nor a plugin/,
      );
      await failedWith(probe.id as string, /refused: plugin file .* outside the checkout/);
      expect(existsSync(marker), 'the plugin outside the checkout was never imported').toBe(false);
      await failedWith('0123456789abcdef0123', /refused: unknown suite kind "shell"/);
      await failedWith('fedcba9876543210fedc', /refused: job .* carries the key of another trial/);
      await failedWith('fedcba9876543210feda', /refused: trial .* is not what the suite plans/);

      const own = await queue.getJob(diverges.id as string);
      expect(await own?.getState()).toBe('completed');
      expect(own?.returnvalue).toMatchObject({ status: 'failed', method: 'diverges' });
      expect((own?.returnvalue as TrialRecord | undefined)?.error).toMatch(/diverged/);

      // status: one trial failed on its own, two jobs refused
      expect((await sweepStatus({ redisUrl: url, name: 'guarded' })).counts).toMatchObject({
        total: 3,
        waiting: 0,
        active: 0,
        ok: 0,
        failedTrials: 1,
        failed: 2,
      });
      const out = join(dir, 'out');
      const c = await collectSweep({ redisUrl: url, name: 'guarded', outDir: out });
      expect(c.records).toHaveLength(3);
      expect(c.records.every((r) => r.status === 'failed')).toBe(true);
      expect(c.records.find((r) => r.method === 'scratch')?.error).toMatch(/refused/);
      const ran = await queue.getJob(lpft.id as string);
      expect(ran?.returnvalue).toMatchObject({ status: 'ok', method: 'lp-ft' });
    } finally {
      await worker?.close();
      await queue.close();
      conn.disconnect();
    }
  });

  it('a trial that holds its event loop longer than the lock is run once: the worker renews the lock from outside the trial', async () => {
    const dir = tmp();
    const file = join(dir, 'blocking.yaml');
    const plugin = join(root, 'apps/bench/src/queue/fixtures/blocking-method.ts');
    writeFileSync(
      file,
      `id: blocking
description: a trial that blocks its event loop
backbone: mlp
seeds: 1
tasks:
  - id: mnist-digits-to-parity
    options: { labelsPerClass: 5, valPerClass: 5, testPerClass: 50 }
methods:
  - id: blocks-event-loop
    from: ${JSON.stringify(plugin)}
    options: { epochs: 1 }
`,
    );
    const url = `${redis.url}/4`;
    expect(await enqueueSweep({ redisUrl: url, suiteRef: file, name: 'blocking' })).toMatchObject({
      total: 1,
      added: 1,
    });
    const lines: string[] = [];
    // The lock lasts a third of the pause (renewed every half lock, which leaves a
    // loaded CI machine a second of slack); stalled jobs are looked for twice a second.
    const worker = await startWorker({
      redisUrl: url,
      lockDurationMs: PAUSE_MS / 3,
      stalledIntervalMs: 500,
      maxStalledCount: 5,
      log: (line) => lines.push(line),
    });
    const conn = new Redis(redisOptions(url));
    const queue = new Queue<TrialJobData>(TRIAL_QUEUE, { connection: conn });
    try {
      let status = await sweepStatus({ redisUrl: url, name: 'blocking' });
      const deadline = Date.now() + 60_000;
      while (status.counts.ok + status.counts.failedTrials + status.counts.failed < 1) {
        if (Date.now() > deadline) throw new Error(`still ${JSON.stringify(status.counts)}`);
        await sleep(200);
        status = await sweepStatus({ redisUrl: url, name: 'blocking' });
      }
      expect(status.counts, lines.join('\n')).toMatchObject({ ok: 1, failed: 0 });
      const job = await queue.getJob(status.states[0]?.trial.key as string);
      expect(job?.stalledCounter, lines.join('\n')).toBe(0);
      expect(job?.attemptsMade).toBe(1);
      expect(lines.join('\n')).not.toMatch(/stalled|could not renew lock|Lock mismatch/);
      const record = job?.returnvalue as TrialRecord;
      expect(record.durationMs).toBeGreaterThanOrEqual(PAUSE_MS);
    } finally {
      await worker.close();
      await queue.close();
      conn.disconnect();
    }
  });

  it('a worker whose --cache cannot be made stops at start-up, before taking a job', async () => {
    await expect(
      startWorker({ redisUrl: `${redis.url}/5`, cacheDir: '/dev/null/cache', log: () => {} }),
    ).rejects.toThrow(/\/dev\/null/);
  });

  it('status never counts a job that completes while it is read as a failed trial', async () => {
    // Jobs complete back to back while the status is read over and over: a read
    // that takes the job before its state sees "completed" without the record.
    const url = `${redis.url}/3`;
    const conn = new Redis({ ...redisOptions(url), maxRetriesPerRequest: null });
    const queue = new Queue<TrialJobData, unknown>(TRIAL_QUEUE, { connection: conn });
    const n = 400;
    const trials = Array.from({ length: n }, (_, i) => ({
      key: `race-${i}`,
      task: 't',
      method: 'm',
      seed: i,
    }));
    const meta = { name: 'race', suite: { id: 'race' }, trials } as unknown as SweepMeta;
    await queue.addBulk(
      trials.map((t) => ({ name: t.key, data: {} as TrialJobData, opts: { jobId: t.key } })),
    );
    const worker = new Worker(
      TRIAL_QUEUE,
      async (job) => ({ key: job.id, status: 'ok', metrics: {} }),
      { connection: conn.duplicate(), concurrency: 8 },
    );
    try {
      let reads = 0;
      let done = 0;
      while (done < n && reads < 2000) {
        const states = await trialStates(queue, meta);
        reads++;
        const counts = countStates(meta, states);
        expect(counts.failedTrials, `read ${reads}: ${JSON.stringify(counts)}`).toBe(0);
        expect(counts.missing).toBe(0);
        done = counts.ok;
      }
      expect(done).toBe(n);
    } finally {
      await worker.close();
      await queue.close();
      conn.disconnect();
    }
  });

  it('a password-protected redis-server: the URL with the password works (queue, worker, status), without it a clear error', async () => {
    const password = 'p@ss w:rd/1';
    const secured = await startRedis({ password });
    try {
      const dir = tmp();
      const file = join(dir, 'small.yaml');
      writeFileSync(file, SMALL);
      const bare = `redis://127.0.0.1:${secured.port}`;
      await expect(enqueueSweep({ redisUrl: bare, suiteRef: file, name: 'pw' })).rejects.toThrow(
        /requires a password: give it in the URL/,
      );
      await expect(connectRedis(`redis://:wrong@127.0.0.1:${secured.port}`)).rejects.toThrow(
        /refused the password/,
      );
      const url = `redis://:${encodeURIComponent(password)}@127.0.0.1:${secured.port}`;
      expect(await enqueueSweep({ redisUrl: url, suiteRef: file, name: 'pw' })).toMatchObject({
        added: 3,
      });
      const worker = await startWorker({ redisUrl: url, log: () => {} });
      try {
        let counts = (await sweepStatus({ redisUrl: url, name: 'pw' })).counts;
        const deadline = Date.now() + 30_000;
        while ((counts.waiting > 0 || counts.active > 0) && Date.now() < deadline) {
          await sleep(100);
          counts = (await sweepStatus({ redisUrl: url, name: 'pw' })).counts;
        }
        expect(counts).toMatchObject({ ok: 2, failedTrials: 1, failed: 0 });
      } finally {
        await worker.close();
      }
      // The CLI says the same, and never prints the password.
      const cliRun = spawnSync(
        process.execPath,
        cli(['status', '--redis', `redis://:wrong@127.0.0.1:${secured.port}`, '--name', 'pw']),
        { cwd: root, encoding: 'utf8' },
      );
      expect(cliRun.status).toBe(2);
      expect(cliRun.stderr).toMatch(/refused the password/);
      expect(cliRun.stderr).not.toContain('wrong');
    } finally {
      await secured.stop();
    }
  });

  const openssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
  it.runIf(openssl)('rediss:// speaks TLS and checks the server certificate', async () => {
    const dir = tmp('tl-tls-');
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    expect(made.status).toBe(0);
    const tls = await startRedis({ password: 'tls-secret', tls: { cert, key, ca: cert } });
    try {
      const url = `rediss://:tls-secret@localhost:${tls.port}`;
      const ca = readFileSync(cert);
      const client = await connectRedis(url, { extra: { tls: { ca } } });
      expect(await client.ping()).toBe('PONG');
      client.disconnect();
      // The certificate is checked: unknown CA refused; plain redis:// is not answered.
      await expect(connectRedis(url)).rejects.toThrow(/certificate/i);
      await expect(
        connectRedis(`redis://:tls-secret@localhost:${tls.port}`, { timeoutMs: 2000 }),
      ).rejects.toThrow();
    } finally {
      await tls.stop();
    }
  });
});
