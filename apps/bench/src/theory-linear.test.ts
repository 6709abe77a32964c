import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groundTruthRepresentation, spectralRisk } from '@transferlab/evaluation';
import { describe, expect, it } from 'vitest';
import {
  measureSpectralRisk,
  runTheoryLinear,
  type TheoryLinearSuite,
  theoryLinearProfile,
} from './theory-linear.js';

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

  it('records predicted beside measured for each representation and n', () => {
    const out = runTheoryLinear({ suite, outDir: mkdtempSync(join(tmpdir(), 'tl-')) });
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
  });
});
