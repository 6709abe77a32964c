import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import type { Progress } from './progress.js';
import { formatTable } from './report.js';
import { readRecords } from './results.js';
import { defaultRegistries, runSuite } from './run-suite.js';
import type { SuiteSpec } from './suites.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const tmp = () => mkdtempSync(join(tmpdir(), 'tl-bench-'));

// Small but real: MNIST digits → parity, tiny pre-training and few epochs.
const tiny: SuiteSpec = {
  id: 'tiny',
  description: 'test',
  backbone: 'mlp',
  seeds: 1,
  tasks: [{ id: 'mnist-digits-to-parity', options: { labelsPerClass: 10, testPerClass: 200 } }],
  methods: [
    { id: 'scratch', options: { epochs: 5 } },
    { id: 'linear-probe', options: { epochs: 5 } },
    { id: 'fine-tune', options: { epochs: 5 } },
  ],
  pretrain: { epochs: 1, maxExamples: 1500 },
};

describe('runSuite', () => {
  it('runs every trial, appends one JSON line per trial, and is reproducible per seed', async () => {
    const out = tmp();
    const first = await runSuite({
      suite: tiny,
      outDir: out,
      backend: 'wasm',
      progress: silent,
      diskCache: false,
    });
    expect(first.records.map((r) => r.method)).toEqual(['scratch', 'linear-probe', 'fine-tune']);
    for (const r of first.records) {
      expect(r.status).toBe('ok');
      expect(r.backend).toBe('wasm');
      expect(r.metrics.target_test_acc).toBeGreaterThan(0.3);
      expect(r.metrics.target_test_acc).toBeLessThanOrEqual(1);
    }
    const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);
    const parsed = JSON.parse(lines[1] as string);
    expect(Object.keys(parsed)).toEqual(
      expect.arrayContaining([
        'suite',
        'task',
        'method',
        'seed',
        'status',
        'metrics',
        'durationMs',
        'backend',
      ]),
    );
    expect(parsed.suite).toBe('tiny');

    const second = await runSuite({
      suite: tiny,
      outDir: out,
      backend: 'wasm',
      progress: silent,
      diskCache: false,
      fresh: true,
    });
    // same seed, same backend → identical metrics; wall-clock times live apart, in timings
    expect(second.records.map((r) => r.metrics)).toEqual(first.records.map((r) => r.metrics));
    for (const r of first.records) expect(r.metrics.pretrain_ms).toBeUndefined();
    expect(first.records[2]?.timings?.pretrain_ms).toBeGreaterThan(0);
    expect(readRecords(join(out, 'results.jsonl'))).toHaveLength(6);
    expect(formatTable(second.records)).toMatch(/mnist-digits-to-parity \| \d+\.\d/);
  });

  it('firstSeed runs seeds firstSeed … firstSeed + seeds − 1: a split sweep gives the same records', async () => {
    const suite: SuiteSpec = { ...tiny, methods: [{ id: 'scratch', options: { epochs: 2 } }] };
    const common = { suite, backend: 'wasm', progress: silent, diskCache: false };
    const whole = await runSuite({ ...common, seeds: 2, outDir: tmp() });
    const tail = await runSuite({ ...common, seeds: 1, firstSeed: 1, outDir: tmp() });
    expect(whole.records.map((r) => r.seed)).toEqual([0, 1]);
    expect(tail.records.map((r) => r.seed)).toEqual([1]);
    expect(tail.records[0]?.metrics.target_test_acc).toBe(
      whole.records[1]?.metrics.target_test_acc,
    );
    await expect(runSuite({ ...common, firstSeed: -1, outDir: tmp() })).rejects.toThrow(
      /--first-seed must be a non-negative integer/,
    );
  });

  it('a diverging trial is recorded as failed and the suite goes on', async () => {
    const suite: SuiteSpec = {
      ...tiny,
      methods: [
        { id: 'scratch', options: { epochs: 2, optimizer: 'sgd', lr: 1e30, momentum: 0 } },
        { id: 'linear-probe', options: { epochs: 2 } },
      ],
    };
    const out = tmp();
    const result = await runSuite({ suite, outDir: out, backend: 'wasm', progress: silent });
    expect(result.records[0]?.status).toBe('failed');
    expect(result.records[0]?.error).toMatch(/diverged at step \d+: loss is (NaN|Infinity)/);
    // …on the default engine, which the record names.
    expect(result.records.map((r) => r.engine)).toEqual(['onnxruntime', 'onnxruntime']);
    expect(result.records[1]?.status).toBe('ok');
    // the disk cache holds the pre-trained backbone: a second run reuses it
    const again = await runSuite({
      suite,
      outDir: out,
      backend: 'wasm',
      progress: silent,
      fresh: true,
    });
    expect(again.records[1]?.metrics.target_test_acc).toBe(
      result.records[1]?.metrics.target_test_acc,
    );
    expect(again.records[1]?.timings).toBeUndefined();
  });

  it('a truncated pre-training cache entry is a miss: rebuilt, and the run succeeds', async () => {
    const suite: SuiteSpec = { ...tiny, methods: [{ id: 'linear-probe', options: { epochs: 1 } }] };
    const out = tmp();
    const common = { suite, outDir: out, backend: 'wasm', progress: silent };
    const first = await runSuite(common);
    const cache = join(out, 'cache');
    const files = readdirSync(cache).filter((f) => f.endsWith('.tlparams'));
    expect(files).toHaveLength(1);
    const file = join(cache, files[0] as string);
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
    const again = await runSuite({ ...common, fresh: true });
    expect(again.records.map((r) => r.status)).toEqual(['ok']);
    expect(again.records[0]?.metrics).toEqual(first.records[0]?.metrics);
    // rebuilt in place: the third run reads it from the cache again
    expect(readFileSync(file).length).toBe(bytes.length);
  });

  it('refuses a misspelt task option before any work, listing the valid ones; records carry the task options', async () => {
    const bad: SuiteSpec = {
      ...tiny,
      tasks: [{ id: 'mnist-digits-to-parity', options: { labelsPerClas: 5 } }],
    };
    await expect(
      runSuite({ suite: bad, outDir: tmp(), backend: 'wasm', progress: silent }),
    ).rejects.toThrow(
      /suite "tiny": task "mnist-digits-to-parity" has no option "labelsPerClas". Valid options: labelsPerClass, valPerClass, testPerClass,/,
    );
    const suite: SuiteSpec = { ...tiny, methods: [{ id: 'scratch', options: { epochs: 1 } }] };
    const result = await runSuite({ suite, outDir: tmp(), backend: 'wasm', progress: silent });
    expect(result.records[0]?.taskOptions).toEqual({ labelsPerClass: 10, testPerClass: 200 });
  });

  it('a progress display that throws neither fails an ok trial nor records it twice', async () => {
    const broken: Progress = {
      trial() {},
      epoch() {
        throw new RangeError('Invalid count value: -1');
      },
      done() {
        throw new RangeError('Invalid count value: -1');
      },
      close() {},
    };
    const suite: SuiteSpec = { ...tiny, methods: [{ id: 'scratch', options: { epochs: 1 } }] };
    const out = tmp();
    const result = await runSuite({ suite, outDir: out, backend: 'wasm', progress: broken });
    expect(result.records.map((r) => r.status)).toEqual(['ok']);
    expect(readRecords(join(out, 'results.jsonl')).map((r) => r.status)).toEqual(['ok']);
  });

  it('a method entry may train its own backbone (scratch on the target architecture); pre-trained methods may not', async () => {
    const suite: SuiteSpec = {
      ...tiny,
      tasks: [{ id: 'mnist-digits-to-parity', options: { labelsPerClass: 5, testPerClass: 50 } }],
      methods: [
        { id: 'scratch', options: { epochs: 1 } },
        { id: 'scratch', label: 'scratch-cnn', backbone: 'cnn', options: { epochs: 1 } },
      ],
    };
    const result = await runSuite({ suite, outDir: tmp(), backend: 'wasm', progress: silent });
    expect(result.records.map((r) => [r.method, r.status, r.backbone])).toEqual([
      ['scratch', 'ok', 'mlp-256-128'],
      ['scratch-cnn', 'ok', 'cnn-16-32-128'],
    ]);
    await expect(
      runSuite({
        suite: { ...tiny, methods: [{ id: 'fine-tune', backbone: 'cnn' }] },
        outDir: tmp(),
        progress: silent,
      }),
    ).rejects.toThrow(
      'suite "tiny": method "fine-tune" starts from the pre-trained "mlp" backbone and cannot train backbone "cnn"',
    );
    await expect(
      runSuite({
        suite: { ...tiny, methods: [{ id: 'scratch', backbone: 'vgg' }] },
        outDir: tmp(),
        progress: silent,
      }),
    ).rejects.toThrow(/Unknown backbone "vgg". Valid backbone ids: mlp, cnn, cnn-small, resnet/);
  });

  it('unknown ids are refused before any work, listing the valid ones', async () => {
    const reg = defaultRegistries();
    await expect(
      runSuite({ suite: { ...tiny, tasks: [{ id: 'cifar' }] }, outDir: tmp(), progress: silent }),
    ).rejects.toThrow(`Unknown task "cifar". Valid task ids: ${reg.tasks.ids.join(', ')}`);
    await expect(
      runSuite({ suite: { ...tiny, methods: [{ id: 'dann' }] }, outDir: tmp(), progress: silent }),
    ).rejects.toThrow(
      /Unknown method "dann". Valid method ids: scratch, linear-probe, fine-tune, joint, merlin, l2t-ww/,
    );
    await expect(
      runSuite({ suite: { ...tiny, backbone: 'vit' }, outDir: tmp(), progress: silent }),
    ).rejects.toThrow(/Unknown backbone "vit"/);
    await expect(
      runSuite({
        suite: { ...tiny, methods: [{ id: 'scratch', options: { lr: -1 } }] },
        outDir: tmp(),
        progress: silent,
      }),
    ).rejects.toThrow(/lr must be a positive number/);
  });

  it('a missing dataset file fails the trials with the file and the fix, without stopping the suite', async () => {
    const saved = process.env.TRANSFERLAB_FASHION_MNIST_DIR;
    process.env.TRANSFERLAB_FASHION_MNIST_DIR = '/nonexistent/fashion';
    try {
      const suite: SuiteSpec = {
        ...tiny,
        tasks: [{ id: 'fashion-to-fashion-coarse' }, tiny.tasks[0] as SuiteSpec['tasks'][number]],
        methods: [{ id: 'scratch', options: { epochs: 1 } }],
      };
      const result = await runSuite({ suite, outDir: tmp(), backend: 'wasm', progress: silent });
      expect(result.records[0]?.status).toBe('failed');
      expect(result.records[0]?.error).toMatch(
        /\/nonexistent\/fashion\/.*ubyte.*dataset-fashion-mnist/s,
      );
      expect(result.records[1]?.status).toBe('ok');
    } finally {
      if (saved === undefined) delete process.env.TRANSFERLAB_FASHION_MNIST_DIR;
      else process.env.TRANSFERLAB_FASHION_MNIST_DIR = saved;
    }
  });
});

describe('CLI', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
  const cli = (...args: string[]) =>
    spawnSync(
      process.execPath,
      ['--conditions=@transferlab/source', '--import', 'tsx', 'apps/bench/src/cli.ts', ...args],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );

  it('list shows suites, methods, tasks and backbones', () => {
    const r = cli('list');
    expect(r.status).toBe(0);
    for (const word of ['quick', 'fine-tune', 'mnist-digits-to-parity', 'mlp'])
      expect(r.stdout).toContain(word);
  });

  it('each command has its own --help; an unknown command lists the valid ones', () => {
    const r = cli('run', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^pnpm bench run <suite-id \| path\/to\/suite.yaml>/);
    for (const flag of ['--jobs', '--fresh', '--set', '--methods', '--plugin'])
      expect(r.stdout).toContain(flag);
    expect(r.stdout).not.toContain('step-cost');
    expect(cli('report', '-h').stdout).toMatch(/^pnpm bench report/);
    const bad = cli('fly');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/Unknown command "fly". Valid commands: list, run, report/);
  });

  it('report writes HTML, CSV and JSON beside the records; compare pairs two runs on their seeds', () => {
    const dir = tmp();
    const fixture = join(root, 'apps/bench/src/report-html/fixtures/quick.jsonl');
    writeFileSync(join(dir, 'results.jsonl'), readFileSync(fixture));
    const r = cli('report', dir, '--html', '--csv', '--json', join(dir, 'rows.json'));
    expect(r.status, r.stderr).toBe(0);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    const csv = readFileSync(join(dir, 'summary.csv'), 'utf8').trim().split(/\r?\n/);
    expect(csv[0]).toBe('task,method,metric,n,mean,ci95,n_failed');
    const rows = JSON.parse(readFileSync(join(dir, 'rows.json'), 'utf8')) as {
      rows: { task: string; method: string; n: number; mean: number }[];
    };
    // the CSV and JSON agree with the records: the mean over seeds of one cell
    const records = readRecords(join(dir, 'results.jsonl')).filter(
      (x) => x.task === 'mnist-digits-to-parity' && x.method === 'fine-tune' && x.status === 'ok',
    );
    const mean =
      records.reduce((a, x) => a + (x.metrics.target_test_acc as number), 0) / records.length;
    const row = rows.rows.find(
      (x) => x.task === 'mnist-digits-to-parity' && x.method === 'fine-tune',
    );
    expect(row?.n).toBe(records.length);
    expect(row?.mean).toBeCloseTo(mean, 12);
    expect(csv.length).toBe(rows.rows.length + 1);
    const same = cli('compare', dir, dir);
    expect(same.status, same.stderr).toBe(0);
    expect(same.stdout).toMatch(
      /\| mnist-digits-to-parity \| fine-tune \| [\d.]+ \(n = \d\) \| [\d.]+ \(n = \d\) \| \+0\.0 ± 0\.0 \| paired/,
    );
    const badMetric = cli('report', dir, '--metric', 'nonsense');
    expect(badMetric.status).toBe(2);
    expect(badMetric.stderr).toMatch(/unknown metric "nonsense"/);
  });

  it('an unknown suite exits 2 and lists the valid suites', () => {
    const r = cli('run', 'nosuch');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('Unknown suite "nosuch". Valid suite ids: class-split,');
    expect(r.stderr).toMatch(/Valid suite ids: .*\bquick\b/);
    const bad = cli('run', 'quick', '--backend', 'gpu');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('Valid backends: tensorflow, wasm, cpu');
  });
});

describe('predictDataset', () => {
  it('chunks by input size (1000 small images, 27 at 224×224×3) and the chunks join up exactly', async () => {
    const { initBackend } = await import('@transferlab/core');
    const { predictChunkSize, predictDataset } = await import('./runner.js');
    await initBackend({ backend: 'wasm' });
    expect(predictChunkSize([28, 28, 1])).toBe(1000);
    expect(predictChunkSize([224, 224, 3])).toBe(27);
    expect(predictChunkSize([1e8])).toBe(1);
    const n = 23;
    const ds = {
      name: 'd',
      x: Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(i)),
      y: new Int32Array(n),
      shape: [4],
      numClasses: 2,
      classNames: ['a', 'b'],
    };
    const w = tf.tensor2d([1, -1, 2, 0.5, -0.3, 1, 0, 2], [4, 2]);
    const predict = (x: tf.Tensor) => tf.matMul(x as tf.Tensor2D, w);
    const whole = predictDataset(predict, ds, 1000);
    const chunked = predictDataset(predict, ds, 5);
    expect(Array.from(chunked.dataSync())).toEqual(Array.from(whole.dataSync()));
    tf.dispose([w, whole, chunked]);
  });
});
