import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { appendRecord, createResultsLog, readRecords, type TrialRecord } from './results.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'tl-results-'));
const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = (...args: string[]) =>
  spawnSync(
    process.execPath,
    ['--conditions=@transferlab/source', '--import', 'tsx', 'apps/bench/src/cli.ts', ...args],
    // today's code spun forever on /proc: the timeout turns that into a failure
    { cwd: root, encoding: 'utf8', timeout: 30_000 },
  );

const rec = (seed: number, metrics: Record<string, number> = { target_test_acc: 0.5 }) =>
  ({
    suite: 's',
    task: 't',
    method: 'm',
    seed,
    status: 'ok',
    metrics,
    durationMs: 1,
    backend: 'cpu',
  }) satisfies TrialRecord;

describe('results directory', () => {
  it('--out under /proc fails fast with a clear error instead of spinning', () => {
    const r = cli('run', 'quick', '--out', '/proc/x/y');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/cannot create output directory \/proc\/x\/y: ENOENT/);
  });

  it('--out naming a file (or a path under one) says that it is a file', () => {
    const file = join(tmp(), 'results.txt');
    writeFileSync(file, 'x');
    expect(() => createResultsLog(file)).toThrow(/is a file, not a directory/);
    expect(() => createResultsLog(join(file, 'sub'))).toThrow(
      new RegExp(`${file.replace(/[.]/g, '\\.')} is a file, not a directory`),
    );
  });
});

describe('readRecords', () => {
  it('names the file, line and what is wrong for valid JSON of the wrong shape', () => {
    const path = join(tmp(), 'results.jsonl');
    writeFileSync(
      path,
      `${JSON.stringify(rec(0))}\n${JSON.stringify({ ...rec(1), metrics: null })}\n`,
    );
    expect(() => readRecords(path)).toThrow(
      `${path}:2: not a trial record: "metrics" must be an object of numbers, got null`,
    );
    writeFileSync(path, 'null\n');
    expect(() => readRecords(path)).toThrow(`${path}:1: not a trial record: expected an object`);
    writeFileSync(path, `${JSON.stringify({ ...rec(0), status: 'done' })}\n`);
    expect(() => readRecords(path)).toThrow(
      /:1: not a trial record: "status" must be "ok" or "failed"/,
    );
  });

  it('a torn last line: the next append starts a fresh line and readers skip the torn one with a warning', () => {
    const path = join(tmp(), 'results.jsonl');
    const torn = JSON.stringify(rec(1)).slice(0, 40);
    writeFileSync(path, `${JSON.stringify(rec(0))}\n${torn}`);
    const warnings: string[] = [];
    expect(readRecords(path, (m) => warnings.push(m)).map((r) => r.seed)).toEqual([0]);
    expect(warnings).toEqual([`${path}:2: skipping a torn line (a run stopped mid-write)`]);

    appendRecord(path, rec(2));
    expect(readFileSync(path, 'utf8').split('\n')).toEqual([
      JSON.stringify(rec(0)),
      torn,
      JSON.stringify(rec(2)),
      '',
    ]);
    warnings.length = 0;
    expect(readRecords(path, (m) => warnings.push(m)).map((r) => r.seed)).toEqual([0, 2]);
    expect(warnings).toHaveLength(1);
    // a complete line that is not JSON is still an error, not skipped
    appendFileSync(path, 'hello\n');
    expect(() => readRecords(path)).toThrow(/:4: not a JSON line/);
  });

  it('moves a wall-clock pretrain_ms of older records out of the metrics into timings', () => {
    const path = join(tmp(), 'results.jsonl');
    writeFileSync(path, `${JSON.stringify(rec(0, { target_test_acc: 0.5, pretrain_ms: 1234 }))}\n`);
    const [r] = readRecords(path);
    expect(r?.metrics).toEqual({ target_test_acc: 0.5 });
    expect(r?.timings).toEqual({ pretrain_ms: 1234 });
  });
});

describe('report --metric', () => {
  it('refuses an unknown metric, listing the metrics present', () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'results.jsonl'),
      `${JSON.stringify(rec(0, { target_test_acc: 0.5, best_epoch: 3 }))}\n`,
    );
    const r = cli('report', dir, '--metric', 'nonsense');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      'unknown metric "nonsense". Metrics in these records: best_epoch, target_test_acc',
    );
    expect(cli('report', dir, '--metric', 'best_epoch').status).toBe(0);
  });
});
