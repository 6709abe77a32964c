import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { formatStepCost, measureSpeed, measureStepCost } from './speed.js';

describe('measureStepCost', () => {
  it('times each method on the same batch relative to fine-tuning, reports failures and frees everything', async () => {
    // The first call initialises the backend and compiles kernels: measure tensors after it.
    await measureStepCost({
      backbone: 'mlp',
      backend: 'wasm',
      seconds: 0.05,
      entries: [{ label: 'fine-tune', method: 'fine-tune' }],
    });
    const before = tf.memory().numTensors;
    const results = await measureStepCost({
      backbone: 'mlp',
      backend: 'wasm',
      seconds: 0.2,
      entries: [
        { label: 'fine-tune', method: 'fine-tune' },
        { label: 'merlin', method: 'merlin' },
        { label: 'merlin ridge', method: 'merlin', options: { head: 'ridge', sourceWeight: 1 } },
        { label: 'attention-transfer', method: 'attention-transfer' },
        { label: 'typo', method: 'merln' },
      ],
    });
    expect(tf.memory().numTensors).toBe(before);
    const [fine, merlin, ridge, at, typo] = results;
    expect(fine?.costVsFineTune).toBe(1);
    for (const r of [merlin, ridge]) {
      expect(r?.error).toBeUndefined();
      expect(r?.steps).toBeGreaterThanOrEqual(1);
      expect(r?.costVsFineTune).toBeCloseTo(
        (fine?.stepsPerSecond as number) / (r?.stepsPerSecond as number),
        10,
      );
    }
    // An MLP has no feature maps for attention transfer; an unknown id lists the valid ones.
    expect(at?.error).toMatch(/spatial extent/);
    expect(at?.costVsFineTune).toBeUndefined();
    expect(typo?.error).toMatch(/Unknown method "merln".*merlin/);
    const table = formatStepCost(results);
    expect(table).toContain('| merlin | mlp-256-128 | wasm | 64 |');
    expect(table).toMatch(/\| typo .*not measured: Unknown method "merln"/);
  });
});

describe('measureSpeed', () => {
  it('times the compiled ONNX step for the backbones it compiles, and only those', async () => {
    const { results, unavailable } = await measureSpeed({
      backends: [],
      backbones: ['mlp', 'cnn'],
      seconds: 0.2,
    });
    expect(unavailable).toEqual([]);
    expect(results.map((r) => [r.backend, r.backbone])).toEqual([['onnxruntime', 'mlp-256-128']]);
    const [r] = results;
    expect(r?.steps).toBeGreaterThanOrEqual(1);
    expect(r?.examplesPerSecond).toBeCloseTo((r?.stepsPerSecond ?? 0) * 64, 6);
  });
});
