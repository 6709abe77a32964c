import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ModelSelectionSuite,
  rankCorrelations,
  runModelSelection,
} from './model-selection.js';
import type { Progress } from './progress.js';
import type { TrialRecord } from './results.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

describe('rankCorrelations', () => {
  const rec = (source: string, seed: number, acc: number, leep: number): TrialRecord => ({
    suite: 'm',
    task: 't',
    method: 'fine-tune',
    source,
    seed,
    status: 'ok',
    metrics: {
      measured_target_test_acc: acc,
      predicted_leep: leep,
      predicted_nce: -acc,
      predicted_logme: acc,
      predicted_hscore: 1,
    },
    durationMs: 0,
    backend: 'cpu',
  });
  it('is +1 for a perfect ranking, −1 for a reversed one, per seed', () => {
    const records = [
      rec('a', 0, 0.9, -0.1),
      rec('b', 0, 0.8, -0.2),
      rec('c', 0, 0.7, -0.3),
      rec('a', 1, 0.6, -0.9),
      rec('b', 1, 0.7, -0.5),
      rec('c', 1, 0.8, -0.1),
    ];
    const byEstimator = Object.fromEntries(
      rankCorrelations(records).map((r) => [r.estimator, r.taus]),
    );
    expect(byEstimator.leep).toEqual([1, 1]);
    expect(byEstimator.nce).toEqual([-1, -1]);
    expect(byEstimator.logme).toEqual([1, 1]);
    expect(byEstimator.hscore).toEqual([]); // constant scores: no ranking
  });
});

describe('runModelSelection', () => {
  it('scores each source on the target, fine-tunes it, and records predicted beside measured', async () => {
    const suite: ModelSelectionSuite = {
      kind: 'model-selection',
      id: 'tiny-ms',
      description: 'test',
      backbone: 'mlp',
      seeds: 1,
      targets: [
        { id: 'mnist-digits-to-parity', options: { labelsPerClass: 10, testPerClass: 200 } },
      ],
      candidates: [
        { label: 'digits', task: 'mnist-digits-to-parity' },
        {
          label: 'digits-brief',
          task: 'mnist-digits-to-parity',
          pretrain: { epochs: 1, maxExamples: 200 },
        },
        { label: 'digits-0-4', task: 'mnist04-to-mnist59' },
      ],
      pretrain: { epochs: 1, maxExamples: 1000 },
      fineTune: { epochs: 3 },
    };
    const out = await runModelSelection({
      suite,
      outDir: mkdtempSync(join(tmpdir(), 'tl-ms-')),
      backend: 'wasm',
      progress: silent,
    });
    expect(out.records.map((r) => r.source)).toEqual(['digits', 'digits-brief', 'digits-0-4']);
    for (const r of out.records) {
      expect(r.status, r.error).toBe('ok');
      expect(r.metrics.measured_target_test_acc).toBeGreaterThan(0.4);
      expect(r.metrics.predicted_leep).toBeLessThan(0);
      expect(r.metrics.predicted_nce).toBeLessThanOrEqual(0);
      for (const k of ['predicted_logme', 'predicted_hscore'])
        expect(Number.isFinite(r.metrics[k])).toBe(true);
    }
    // a source whose inputs do not match the target's is a failed trial, not a crash
    const bad = await runModelSelection({
      suite: {
        ...suite,
        candidates: [
          { label: 'quadratic', task: 'mnist-digits-to-parity', options: { labelsPerClass: 10 } },
        ],
      },
      outDir: mkdtempSync(join(tmpdir(), 'tl-ms-')),
      backend: 'wasm',
      progress: silent,
    });
    expect(bad.records[0]?.status).toBe('ok');
  });
});
