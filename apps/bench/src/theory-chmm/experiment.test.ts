import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Progress } from '../progress.js';
import type { TrialRecord } from '../results.js';
import { runChmmExperiment, testErrorSe } from './experiment.js';
import { type ChmmSuite, formatChmmTable, runChmmSuite } from './suite.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const at = (records: TrialRecord[], method: string, n: number, seed: number) => {
  const r = records.find((x) => x.method === method && x.metrics.n_target === n && x.seed === seed);
  if (!r) throw new Error(`no record for ${method} n=${n} seed ${seed}`);
  expect(r.status).toBe('ok');
  return r;
};

describe('runChmmExperiment', () => {
  it('with identical source and target, transfer beats random features at small n_target', async () => {
    // The paper's basic finding: features learned on a data-rich source make a few target
    // labels enough. With δ_F = δ_θ = 0 the transferred layer already encodes the teacher
    // (source test error ≈ 10%); random features with 20–40 labels are near 30–45% error.
    const records = await runChmmExperiment({
      params: { D: 40, N: 80, activation: 'erf' },
      nSource: 2000,
      nTargetList: [20, 40],
      hidden: 60,
      seeds: [0, 1],
      methods: ['transfer', 'random-features'],
      targetRepeats: 3,
      nTest: 5000,
      sourceTraining: { steps: 300, lr: 0.01 },
    });
    expect(records).toHaveLength(2 * 2 * 2);
    for (const seed of [0, 1]) {
      for (const n of [20, 40]) {
        const tf = at(records, 'transfer', n, seed).metrics;
        const rf = at(records, 'random-features', n, seed).metrics;
        expect(tf.source_test_error).toBeLessThan(0.2);
        expect(tf.measured_test_error).toBeLessThan(0.2);
        expect(rf.measured_test_error).toBeGreaterThan(0.25);
        expect(tf.measured_test_error as number).toBeLessThan(
          (rf.measured_test_error as number) - 0.1,
        );
        // The prediction ranks them the same way.
        expect(tf.predicted_test_error as number).toBeLessThan(rf.predicted_test_error as number);
      }
    }
  });

  it('the GCM learning curve of random features matches the simulation within 2 points at α = 2, 4', async () => {
    // K = 100 random erf features of a D = 50, N = 100 hidden manifold; each measurement is the
    // mean over 8 independent target training sets, on a 20,000-example test pool.
    // Tolerance 0.02 absolute (~10% of errors around 0.15–0.2), from three sources:
    //  - sampling: the sd of the mean over 8 training sets was ≤ 0.005 at these α, and the
    //    test pool adds ≤ 0.003;
    //  - finite size: the GCM is exact as K, D, n → ∞ together; at K = 100 and K = 200 over
    //    two seeds each, |predicted − measured| was ≤ 0.01 at α ≥ 2 (≤ 0.017 at α ≤ 1),
    //    with the prediction slightly high on average (+0.004);
    //  - Monte Carlo covariances (M = 20,000 ≫ K): O(K/M) relative, ≈ 0.001.
    // The prediction also follows the seed-to-seed variation (different W, F, θ).
    const records = await runChmmExperiment({
      params: { D: 50, N: 100, activation: 'erf' },
      nSource: 1,
      nTargetList: [200, 400],
      hidden: 100,
      seeds: [0, 1],
      methods: ['random-features'],
      targetRepeats: 8,
      nTest: 20_000,
      readout: { loss: 'square', lambda: 0.1 },
    });
    expect(records).toHaveLength(4);
    for (const r of records) {
      expect(r.status).toBe('ok');
      const { measured_test_error: m, predicted_test_error: p } = r.metrics as Record<
        string,
        number
      >;
      expect(p).toBeDefined();
      expect(Math.abs((p as number) - (m as number))).toBeLessThan(0.02);
      expect(r.metrics.explained_teacher_variance).toBeGreaterThan(0.5);
      expect(r.metrics.explained_teacher_variance).toBeLessThanOrEqual(1);
    }
  });

  it('writes TrialRecords for every seed × level × method × n, reproducibly, through the suite runner', async () => {
    const suite: ChmmSuite = {
      kind: 'theory-chmm',
      id: 'theory-chmm-tiny',
      description: 'test',
      seeds: 1,
      experiment: {
        params: { D: 10, N: 20, activation: 'tanh' },
        levels: [{}, { teacherPerturbation: 1, label: 'rotated' }],
        nSource: 200,
        nTargetList: [10, 30],
        hidden: 8,
        activation: 'tanh',
        sourceTraining: { steps: 20 },
        scratchTraining: { steps: 20 },
        nTest: 1000,
        nSourceTest: 200,
        targetRepeats: 3,
        scratchRepeats: 1,
      },
    };
    const out = mkdtempSync(join(tmpdir(), 'tl-chmm-'));
    const { records, resultsPath } = await runChmmSuite({ suite, outDir: out, progress: silent });
    expect(records).toHaveLength(2 * 3 * 2);
    const lines = readFileSync(resultsPath, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(12);
    const first = JSON.parse(lines[0] as string) as TrialRecord;
    expect(first).toMatchObject({
      suite: 'theory-chmm-tiny',
      task: 'dF=0 dT=0 · n=10',
      method: 'transfer',
      seed: 0,
      status: 'ok',
    });
    expect(typeof first.backend).toBe('string');
    expect(typeof first.run).toBe('string');
    for (const r of records) {
      expect(r.status).toBe('ok');
      expect(r.metrics.measured_test_error).toBeGreaterThanOrEqual(0);
      expect(r.metrics.measured_test_error).toBeLessThanOrEqual(1);
      expect([10, 30]).toContain(r.metrics.n_target);
      // se: the spread over the 3 training sets (1 for scratch) plus the 1000-example pool's binomial term
      const e = r.metrics.measured_test_error as number;
      const se = r.metrics.measured_test_error_se as number;
      expect(se).toBeGreaterThanOrEqual(Math.sqrt((e * (1 - e)) / 1000) - 1e-15);
      if (r.method === 'scratch') expect(se).toBeCloseTo(Math.sqrt((e * (1 - e)) / 1000), 14);
      expect(r.task).toMatch(/^(dF=0 dT=0|rotated) · n=(10|30)$/);
      if (r.method === 'scratch') expect(r.metrics.predicted_test_error).toBeUndefined();
      else expect(r.metrics.predicted_test_error).toBeGreaterThan(0);
      expect(r.metrics.teacher_overlap).toBeCloseTo(
        r.task.startsWith('rotated') ? (r.metrics.teacher_overlap as number) : 1,
        12,
      );
    }
    expect(
      records.filter((r) => r.task.startsWith('rotated'))[0]?.metrics.teacher_overlap,
    ).toBeLessThan(0.99);
    const table = formatChmmTable(records);
    expect(table).toContain('dF=0 dT=0');
    expect(table).toContain('rotated');
    expect(table).toMatch(
      /\| n_target \| transfer +\| transfer pred \| random-features +\| random-features pred \| scratch +\|/,
    );

    // Same seed, same numbers.
    const again = await runChmmExperiment({ ...suite.experiment, seeds: 1 });
    expect(again.map((r) => r.metrics.measured_test_error)).toEqual(
      records.map((r) => r.metrics.measured_test_error),
    );
  });

  it('records failures per trial: a failed source training fails only transfer; a failing predictor only drops the prediction', async () => {
    const tiny = {
      params: { D: 8, N: 12, activation: 'erf' as const },
      nSource: 50,
      nTargetList: [10],
      hidden: 6,
      seeds: 1,
      nTest: 500,
      nSourceTest: 50,
      scratchTraining: { steps: 5 },
    };
    const broken = await runChmmExperiment({ ...tiny, sourceTraining: { lr: -1 } });
    const byMethod = Object.fromEntries(broken.map((r) => [r.method, r]));
    expect(byMethod.transfer?.status).toBe('failed');
    expect(byMethod.transfer?.error).toMatch(
      /source training failed: adam: lr must be a positive number/,
    );
    expect(byMethod['random-features']?.status).toBe('ok');
    expect(byMethod.scratch?.status).toBe('ok');

    const throwing = await runChmmExperiment({
      ...tiny,
      methods: ['random-features'],
      predictor: {
        name: 'broken',
        predict() {
          throw new Error('no theory today');
        },
      },
    });
    expect(throwing[0]?.status).toBe('ok');
    expect(throwing[0]?.metrics.predicted_test_error).toBeUndefined();
    expect(throwing[0]?.config?.predictError).toBe('no theory today');
    const none = await runChmmExperiment({
      ...tiny,
      methods: ['random-features'],
      predictor: null,
    });
    expect(none[0]?.metrics.predicted_test_error).toBeUndefined();
    expect(none[0]?.metrics.measured_test_error).toBe(throwing[0]?.metrics.measured_test_error);
  });

  it('rejects bad options before any work', async () => {
    const base = {
      params: { D: 5, N: 5, activation: 'erf' as const },
      nSource: 10,
      nTargetList: [5],
      hidden: 3,
      seeds: 1,
    };
    await expect(
      runChmmExperiment({ ...base, methods: ['fine-tune' as 'scratch'] }),
    ).rejects.toThrow(
      /unknown method "fine-tune"; valid methods: transfer, random-features, scratch/,
    );
    await expect(
      runChmmExperiment({ ...base, levels: [{}, { featurePerturbation: 0 }] }),
    ).rejects.toThrow(/two levels are labelled "dF=0 dT=0"/);
    await expect(runChmmExperiment({ ...base, nTargetList: [0] })).rejects.toThrow(
      /n_target must be a positive integer/,
    );
    await expect(runChmmExperiment({ ...base, seeds: [] })).rejects.toThrow(/seed list is empty/);
    await expect(runChmmExperiment({ ...base, readout: { lambda: 0 } })).rejects.toThrow(
      /lambda must be positive/,
    );
  });
});

describe('testErrorSe', () => {
  it('is √(s²/R + ē(1 − ē)/nTest)', () => {
    const s2 = ((0.1 - 0.2) ** 2 + 0 + (0.3 - 0.2) ** 2) / 2;
    expect(testErrorSe([0.1, 0.2, 0.3], 1000)).toBeCloseTo(
      Math.sqrt(s2 / 3 + (0.2 * 0.8) / 1000),
      15,
    );
    expect(testErrorSe([0.25], 400)).toBeCloseTo(Math.sqrt((0.25 * 0.75) / 400), 15);
  });
});
