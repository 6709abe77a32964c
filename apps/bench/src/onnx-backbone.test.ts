import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type OnnxBackboneSuite, runOnnxBackbone } from './onnx-backbone.js';
import type { Progress } from './progress.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

describe('onnx-backbone suite', () => {
  it('exports, re-imports, probes through onnxruntime and fine-tunes the import', async () => {
    const suite: OnnxBackboneSuite = {
      kind: 'onnx-backbone',
      id: 'onnx-test',
      description: 'test',
      backbone: 'mlp',
      seeds: 1,
      task: { id: 'mnist-digits-to-parity', options: { labelsPerClass: 20, testPerClass: 100 } },
      testPoints: 200,
      probeEpochs: 60,
      mobilenet: false,
      pretrain: { epochs: 1, maxExamples: 1500 },
      fineTune: { epochs: 3 },
    };
    const out = await runOnnxBackbone({
      suite,
      outDir: mkdtempSync(join(tmpdir(), 'onnxb-')),
      backend: 'wasm',
      progress: silent,
    });
    expect(out.records.map((r) => r.method)).toEqual([
      'linear-probe (onnxruntime)',
      'fine-tune (imported)',
    ]);
    for (const r of out.records) {
      expect(r.status, r.error).toBe('ok');
      expect(r.metrics.roundtrip_max_abs_diff).toBeLessThan(1e-4);
      expect(r.metrics.target_test_acc).toBeGreaterThan(0.6); // parity from digit features; chance is 0.5
    }
    expect(out.records[0]?.metrics.images_per_second).toBeGreaterThan(0);
  });
});
