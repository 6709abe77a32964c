import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Progress } from './progress.js';
import { readRecords } from './results.js';
import { defaultRegistries } from './run-suite.js';
import { BUILTIN_SUITE_DIR, loadSuite, readSuiteFile } from './suite-file.js';
import {
  formatTheoryGcm,
  linspace,
  runTheoryGcm,
  type TheoryGcmSuite,
  theoryGcmKind,
} from './theory-gcm.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const triples = (rs: readonly { task: string; method: string; seed: number }[]) =>
  rs.map((r) => `${r.task} | ${r.method} | ${r.seed}`);

describe('theory-gcm', () => {
  it('linspace matches numpy', () => {
    const xs = linspace(0.01, 3, 50);
    expect(xs).toHaveLength(50);
    expect(xs[1]).toBeCloseTo(0.01 + 2.99 / 49, 15);
    expect(xs[49]).toBe(3);
  });

  it('records a converged prediction beside Monte Carlo ± se at every α (tiny sizes)', async () => {
    const suite: TheoryGcmSuite = {
      kind: 'theory-gcm',
      id: 'theory-gcm-tiny',
      description: 'tiny',
      seeds: 1,
      d: 60,
      p: 80,
      k: 40,
      student: 'erf',
      teacher: 'sign',
      lambda: 0.05,
      alphas: [0.5, 1, 2],
      draws: 4,
      smallAlpha: 0.5,
      smallAlphaDraws: 8,
      testSize: 4000,
    };
    const out = mkdtempSync(join(tmpdir(), 'tl-gcm-'));
    const { records, resultsPath } = await runTheoryGcm({ suite, outDir: out, progress: silent });
    expect(records).toHaveLength(3);
    for (const r of records) {
      expect(r.status).toBe('ok');
      const m = r.metrics;
      expect(m.draws).toBe(m.alpha === 0.5 ? 8 : 4);
      expect(m.n).toBe(Math.round((m.alpha as number) * 80));
      expect(m.measured_test_error_se).toBeGreaterThan(0);
      // p = 80 is far from the limit; the curve still tracks the simulation within a few points.
      expect(
        Math.abs((m.predicted_test_error as number) - (m.measured_test_error as number)),
      ).toBeLessThan(4 * (m.measured_test_error_se as number) + 0.03);
      expect(m.predicted_train_loss).toBeGreaterThan(0);
    }
    // More data, lower error, in both.
    const errs = records.map((r) => r.metrics.predicted_test_error as number);
    expect(errs[0]).toBeGreaterThan(errs[2] as number);
    const text = formatTheoryGcm(records, 8);
    expect(text).toContain('| 1.000 | 80 |');
    expect(text).toMatch(/· predicted, o measured/);
    // Run again into the same directory: resumed, nothing recomputed or appended.
    const again = await runTheoryGcm({ suite, outDir: out, progress: silent });
    expect(again.resumed).toBe(3);
    expect(again.records.map((r) => r.metrics)).toEqual(records.map((r) => r.metrics));
    expect(readRecords(resultsPath)).toHaveLength(3);
  });

  it('the built-in suite parses, and plan gives exactly the trials a run records', async () => {
    const builtin = theoryGcmKind.schema.parse(
      readSuiteFile(join(BUILTIN_SUITE_DIR, 'theory-gcm.yaml')),
    );
    expect(loadSuite('theory-gcm').kind).toBe(theoryGcmKind);
    const ctx = { registries: defaultRegistries() };
    expect(theoryGcmKind.plan(builtin, [0], ctx)[0]?.trials).toHaveLength(50);
    const small: TheoryGcmSuite = {
      ...builtin,
      d: 20,
      p: 30,
      k: 15,
      alphas: [2, 0.5, 1],
      draws: 2,
      smallAlphaDraws: 3,
      testSize: 500,
    };
    const out = await runTheoryGcm({
      suite: small,
      seeds: 2,
      outDir: mkdtempSync(join(tmpdir(), 'tl-gcm-')),
      progress: silent,
    });
    const trials = theoryGcmKind.plan(small, [0, 1], ctx).flatMap((u) => u.trials);
    expect(triples(out.records)).toEqual(triples(trials));
    expect(triples(trials).slice(0, 3)).toEqual([
      'α=0.500 | logistic λ=0.01 | 0',
      'α=1.000 | logistic λ=0.01 | 0',
      'α=2.000 | logistic λ=0.01 | 0',
    ]);
    const text = theoryGcmKind.summarize(out.records, {});
    expect(text).toContain('| 0.500 | 15 |');
    expect(text).toContain('prediction vs Monte Carlo');
  });

  it('refuses a missing kind, unknown keys and α that round to one label', () => {
    const suite = theoryGcmKind.schema.parse(
      readSuiteFile(join(BUILTIN_SUITE_DIR, 'theory-gcm.yaml')),
    );
    const { kind: _kind, ...withoutKind } = suite;
    expect(theoryGcmKind.schema.safeParse(withoutKind).success).toBe(false);
    expect(theoryGcmKind.schema.safeParse({ ...suite, student: 'gelu' }).success).toBe(false);
    expect(theoryGcmKind.schema.safeParse({ ...suite, alpha: [1] }).success).toBe(false);
    expect(() =>
      theoryGcmKind.check?.({ ...suite, alphas: [0.5, 1, 1.0001] }, defaultRegistries()),
    ).toThrow(/^alphas\[2\]: 1.0001 is α=1.000 as alphas\[1\]/);
  });
});
