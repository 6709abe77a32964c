import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Progress } from './progress.js';
import { formatTtaTable, runTtaBound, type TtaBoundSuite } from './tta-bound.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

describe('tta-bound suite', () => {
  it('records the bound per setting beside the target loss reached, and the bound is above it', async () => {
    const suite: TtaBoundSuite = {
      kind: 'tta-bound',
      id: 'tta-test',
      description: 'test',
      backbone: 'mlp',
      seeds: 1,
      pairs: [
        {
          task: 'mnist-digits-to-parity',
          options: { labelsPerClass: 40, valPerClass: 5, testPerClass: 150 },
          labelMap: [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        },
      ],
      settings: ['none', 'A'],
      sourcePoints: 300,
      targetTestPoints: 300,
      tau: 0.2,
      epochs: 20,
      pretrain: { epochs: 1, maxExamples: 1000 },
    };
    const out = await runTtaBound({
      suite,
      outDir: mkdtempSync(join(tmpdir(), 'tta-')),
      backend: 'wasm',
      progress: silent,
    });
    expect(out.records.map((r) => r.method)).toEqual(['none', 'A']);
    for (const r of out.records) {
      expect(r.status, r.error).toBe('ok');
      // the paper's guarantee: the bound is at least the loss a Lipschitz target head reaches
      expect(r.metrics.predicted_bound).toBeGreaterThanOrEqual(
        r.metrics.measured_target_loss as number,
      );
      expect(r.metrics.predicted_conditional_entropy).toBeCloseTo(0, 6); // B is a fixed 0/1 map here
    }
    expect(formatTtaTable(out.records)).toMatch(
      /mnist-digits-to-parity \| \d\.\d{3} \| \d+\.\d{3} \| \d+\.\d{3} \|/,
    );
  });
});
