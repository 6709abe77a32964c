import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groundTruthRepresentation, spectralRisk } from '@transferlab/evaluation';
import { describe, expect, it } from 'vitest';
import type { Progress } from './progress.js';
import { readRecords } from './results.js';
import { defaultRegistries } from './run-suite.js';
import { BUILTIN_SUITE_DIR, loadSuite, readSuiteFile } from './suite-file.js';
import {
  measureSpectralRisk,
  runTheoryLinear,
  type TheoryLinearSuite,
  theoryLinearKind,
  theoryLinearProfile,
} from './theory-linear.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const triples = (rs: readonly { task: string; method: string; seed: number }[]) =>
  rs.map((r) => `${r.task} | ${r.method} | ${r.seed}`);

const suite: TheoryLinearSuite = {
  kind: 'theory-linear',
  id: 'tl-test',
  description: 'test',
  seeds: 1,
  d: 40,
  sigmaDecay: 1,
  taskDecay: 0.5,
  noiseVariance: 0.1,
  sampleSizes: [20, 100],
  supportSize: 10,
  draws: 10,
};

describe('theory-linear', () => {
  it('Monte Carlo risk matches the asymptotic risk away from the interpolation threshold', () => {
    const profile = theoryLinearProfile(suite);
    const w = groundTruthRepresentation(profile);
    // n = 100 > d = 40: underparameterised; 200 draws give a standard error of ~2% of the mean
    const predicted = spectralRisk(profile, w, { n: 100, lambda: 0, noiseVariance: 0.1 }).risk;
    const measured = measureSpectralRisk(profile, w, 100, 0.1, 200, 1);
    // tolerance: 3 standard errors plus ~3% finite-size bias at d = 40
    expect(Math.abs(measured.mean - predicted)).toBeLessThan(3 * measured.se + 0.03 * predicted);
    expect(predicted).toBeGreaterThan(0);
  });

  it('records predicted beside measured for each representation and n', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'tl-'));
    const out = await runTheoryLinear({ suite, outDir, progress: silent });
    expect(out.records).toHaveLength(2 * 3);
    for (const r of out.records) {
      expect(r.status).toBe('ok');
      expect(Number.isFinite(r.metrics.predicted_risk)).toBe(true);
      expect(Number.isFinite(r.metrics.measured_risk)).toBe(true);
    }
    // the optimal representation is never worse than the ground truth (predicted)
    for (const n of suite.sampleSizes) {
      const get = (m: string) =>
        out.records.find((r) => r.method === m && r.metrics.n === n)?.metrics
          .predicted_risk as number;
      expect(get('optimal')).toBeLessThanOrEqual(get('ground-truth') + 1e-9);
    }
    // A second run into the same directory resumes: nothing to do, nothing appended.
    const again = await runTheoryLinear({ suite, outDir, progress: silent });
    expect(again.resumed).toBe(6);
    expect(again.records.map((r) => r.metrics)).toEqual(out.records.map((r) => r.metrics));
    expect(readRecords(out.resultsPath)).toHaveLength(6);
    // …unless asked for a fresh run, whose Monte Carlo draws repeat exactly.
    const fresh = await runTheoryLinear({ suite, outDir, progress: silent, fresh: true });
    expect(fresh.resumed).toBe(0);
    expect(fresh.run).not.toBe(out.run);
    expect(fresh.records.map((r) => r.metrics)).toEqual(out.records.map((r) => r.metrics));
    expect(readRecords(out.resultsPath)).toHaveLength(12);
  });

  it('runs its units in worker processes (--jobs) with the same results', async () => {
    const one = await runTheoryLinear({
      suite,
      outDir: mkdtempSync(join(tmpdir(), 'tl-')),
      progress: silent,
    });
    const two = await runTheoryLinear({
      suite,
      outDir: mkdtempSync(join(tmpdir(), 'tl-')),
      progress: silent,
      jobs: 2,
    });
    const byTrial = (rs: typeof one.records) =>
      Object.fromEntries(rs.map((r) => [`${r.task} | ${r.method} | ${r.seed}`, r.metrics]));
    expect(byTrial(two.records)).toEqual(byTrial(one.records));
    expect(two.records.map((r) => r.key).sort()).toEqual(one.records.map((r) => r.key).sort());
  }, 120_000);

  it('the built-in suite parses, and plan gives exactly the trials a run records', async () => {
    const raw = readSuiteFile(join(BUILTIN_SUITE_DIR, 'theory-linear.yaml'));
    const builtin = theoryLinearKind.schema.parse(raw);
    expect(loadSuite('theory-linear').kind).toBe(theoryLinearKind);
    const ctx = { registries: defaultRegistries() };
    const planned = theoryLinearKind.plan(builtin, [0, 1], ctx);
    expect(planned).toHaveLength(2 * builtin.sampleSizes.length);
    // A tiny version of it, run: the records are the plan's trials, in order.
    const small = { ...builtin, d: 12, sampleSizes: [5, 30], supportSize: 4, draws: 3 };
    const out = await runTheoryLinear({
      suite: small,
      seeds: 2,
      outDir: mkdtempSync(join(tmpdir(), 'tl-')),
      progress: silent,
    });
    const trials = theoryLinearKind.plan(small, [0, 1], ctx).flatMap((u) => u.trials);
    expect(triples(out.records)).toEqual(triples(trials));
    expect(out.records.every((r) => r.status === 'ok')).toBe(true);
    // Its report is the risk table, not accuracy ("failed" in every cell).
    const text = theoryLinearKind.summarize(out.records, {});
    expect(text).toContain('| n | ground-truth | support-4 | optimal |');
    expect(text).not.toContain('failed');
    expect(text).toContain('prediction vs Monte Carlo');
  });

  it('refuses unknown keys, a missing kind and impossible sizes', () => {
    const { kind: _kind, ...withoutKind } = suite;
    expect(theoryLinearKind.schema.safeParse(withoutKind).success).toBe(false);
    expect(theoryLinearKind.schema.safeParse({ ...suite, draw: 3 }).success).toBe(false);
    expect(theoryLinearKind.schema.safeParse({ ...suite, draws: 0 }).success).toBe(false);
    const registries = defaultRegistries();
    expect(() => theoryLinearKind.check?.({ ...suite, supportSize: 41 }, registries)).toThrow(
      /^supportSize: 41 exceeds the dimension d = 40/,
    );
    expect(() => theoryLinearKind.check?.({ ...suite, sampleSizes: [20, 20] }, registries)).toThrow(
      /^sampleSizes\[1\]: n = 20 appears twice/,
    );
  });
});
