import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Progress } from './progress.js';
import { appendRecord, latestRun, readRecords, type TrialRecord } from './results.js';
import { runSuite, type SuiteSpec } from './run-suite.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const tmp = () => mkdtempSync(join(tmpdir(), 'tl-exec-'));
const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

const tiny: SuiteSpec = {
  id: 'tiny-resume',
  description: 'test',
  backbone: 'mlp',
  seeds: 2,
  tasks: [{ id: 'mnist-digits-to-parity', options: { labelsPerClass: 10, testPerClass: 100 } }],
  methods: [
    { id: 'scratch', options: { epochs: 3 } },
    { id: 'fine-tune', options: { epochs: 3 } },
  ],
  pretrain: { epochs: 1, maxExamples: 1000 },
};

const triples = (rs: readonly TrialRecord[]) =>
  rs.map((r) => `${r.task}|${r.method}|${r.seed}|${r.status}`).sort();
const metricsByTrial = (rs: readonly TrialRecord[]) =>
  Object.fromEntries(rs.map((r) => [`${r.task}|${r.method}|${r.seed}`, r.metrics]));

describe('executeSuite: trial keys and resume', () => {
  it('a second run into the same directory skips ok trials, retries failed ones, and reports each key once', async () => {
    const out = tmp();
    const first = await runSuite({ suite: tiny, outDir: out, backend: 'wasm', progress: silent });
    expect(triples(first.records)).toHaveLength(4);
    expect(new Set(first.records.map((r) => r.key)).size).toBe(4);
    for (const r of first.records) {
      expect(r.kind).toBe('transfer');
      expect(r.provenance?.node).toBe(process.version);
      expect(r.provenance?.cores).toBeGreaterThan(0);
      expect(r.provenance?.packages['@transferlab/methods']).toMatch(/^\d+\.\d+\.\d+/);
    }
    // A failed record for one key, as a crashed or failing trial leaves it.
    const path = join(out, 'results.jsonl');
    const victim = first.records[1] as TrialRecord;
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    writeFileSync(
      path,
      `${lines
        .map((l) => JSON.parse(l) as TrialRecord)
        .map((r) =>
          r.key === victim.key ? { ...r, status: 'failed', metrics: {}, error: 'x' } : r,
        )
        .map((r) => JSON.stringify(r))
        .join('\n')}\n`,
    );
    const again = await runSuite({ suite: tiny, outDir: out, backend: 'wasm', progress: silent });
    expect(again.resumed).toBe(3);
    expect(again.run).toBe(first.run);
    // one new line: the retried trial, with the metrics it had the first time
    expect(readRecords(path)).toHaveLength(5);
    expect(triples(again.records)).toEqual(triples(first.records));
    expect(metricsByTrial(again.records)).toEqual(metricsByTrial(first.records));
    expect(latestRun(readRecords(path))).toHaveLength(4);
    // more seeds later: only the new seed's trials run
    const more = await runSuite({
      suite: tiny,
      seeds: 3,
      outDir: out,
      backend: 'wasm',
      progress: silent,
    });
    expect(more.resumed).toBe(4);
    expect(readRecords(path)).toHaveLength(7);
  });

  it('a changed suite is refused in an old directory unless --fresh', async () => {
    const out = tmp();
    const suite: SuiteSpec = {
      ...tiny,
      seeds: 1,
      methods: [{ id: 'scratch', options: { epochs: 1 } }],
    };
    await runSuite({ suite, outDir: out, backend: 'wasm', progress: silent });
    const changed: SuiteSpec = { ...suite, methods: [{ id: 'scratch', options: { epochs: 2 } }] };
    await expect(
      runSuite({ suite: changed, outDir: out, backend: 'wasm', progress: silent }),
    ).rejects.toThrow(
      /made with a different definition: mnist-digits-to-parity · scratch · seed 0 has key \w+, now \w+\. Give --fresh/,
    );
    const fresh = await runSuite({
      suite: changed,
      outDir: out,
      backend: 'wasm',
      progress: silent,
      fresh: true,
    });
    expect(fresh.records).toHaveLength(1);
    expect(fresh.resumed).toBe(0);
    expect(readRecords(join(out, 'results.jsonl'))).toHaveLength(2);
  });

  it('records written before keys existed make a resume refuse, naming the cause', async () => {
    const out = tmp();
    appendRecord(join(out, 'results.jsonl'), {
      suite: 'tiny-resume',
      run: '2020-01-01T00:00:00.000Z',
      task: 'mnist-digits-to-parity',
      method: 'scratch',
      seed: 0,
      status: 'ok',
      metrics: { target_test_acc: 0.5 },
      durationMs: 1,
      backend: 'wasm',
    });
    await expect(runSuite({ suite: tiny, outDir: out, progress: silent })).rejects.toThrow(
      /has no trial key \(written before resume existed\)/,
    );
  });
});

const cli = (args: string[]) => [
  '--conditions=@transferlab/source',
  '--import',
  'tsx',
  'apps/bench/src/cli.ts',
  ...args,
];

const SUITE_FILE = `
id: user-suite
description: a user's own suite
backbone: mlp
seeds: 2
tasks:
  - id: mnist-digits-to-parity
    options: { labelsPerClass: 10, testPerClass: 100 }
  - id: fashion-to-fashion-coarse
    options: { labelsPerClass: 5, testPerClass: 60 }
methods:
  - id: scratch
    options: { epochs: 30 }
  - id: fine-tune
    options: { epochs: 30 }
pretrain: { epochs: 1, maxExamples: 1000 }
`;

function waitForLines(path: string, n: number, child: ChildProcess): Promise<void> {
  return new Promise((resolveWait, rejectWait) => {
    const timer = setInterval(() => {
      const count = existsSync(path)
        ? readFileSync(path, 'utf8').split('\n').filter(Boolean).length
        : 0;
      if (count >= n) {
        clearInterval(timer);
        resolveWait();
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        rejectWait(new Error(`the run ended (code ${child.exitCode}) before ${n} records`));
      }
    }, 100);
  });
}

describe('run --jobs and a crash mid-run', () => {
  it('a suite file with --jobs 2, SIGKILLed mid-run and started again, ends with one ok record per trial and the metrics of an uninterrupted --jobs 1 run', async () => {
    const dir = tmp();
    const file = join(dir, 'my-suite.yaml');
    writeFileSync(file, SUITE_FILE);
    const killed = join(dir, 'killed');
    const child = spawn(process.execPath, cli(['run', file, '--jobs', '2', '--out', killed]), {
      cwd: root,
      stdio: 'ignore',
    });
    await waitForLines(join(killed, 'results.jsonl'), 1, child);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const partial = readRecords(join(killed, 'results.jsonl'));
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(8);
    const resumed = spawnSync(
      process.execPath,
      cli(['run', file, '--jobs', '2', '--out', killed]),
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/8 trials \([1-7] resumed from earlier\), 0 failed/);
    const whole = join(dir, 'whole');
    const serial = spawnSync(process.execPath, cli(['run', file, '--jobs', '1', '--out', whole]), {
      cwd: root,
      encoding: 'utf8',
    });
    expect(serial.status, serial.stderr).toBe(0);
    const after = latestRun(readRecords(join(killed, 'results.jsonl')));
    const reference = readRecords(join(whole, 'results.jsonl'));
    expect(after).toHaveLength(8);
    expect(after.every((r) => r.status === 'ok')).toBe(true);
    expect(triples(after)).toEqual(triples(reference));
    expect(new Set(after.map((r) => r.key))).toEqual(new Set(reference.map((r) => r.key)));
    expect(metricsByTrial(after)).toEqual(metricsByTrial(reference));
    // The resolved suite is kept beside the records.
    const report = spawnSync(process.execPath, cli(['report', killed]), {
      cwd: root,
      encoding: 'utf8',
    });
    expect(report.stdout).toMatch(/\(n = 2\)/);
  }, 300_000);
});
