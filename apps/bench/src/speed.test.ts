import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  formatSpeedJson,
  formatStepCost,
  measureSpeed,
  measureStepCost,
  type SpeedResult,
} from './speed.js';

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
    // Each method on its first engine (onnxruntime here); the tfjs backend only matters for tfjs rows.
    expect(merlin?.engine).toBe('onnxruntime');
    expect(table).toContain('| merlin | mlp-256-128 | onnxruntime | — | 64 |');
    expect(table).toMatch(/\| typo .*not measured: Unknown method "merln"/);
  });
});

describe('measureSpeed', () => {
  it('times each backbone on the onnxruntime engine and a tfjs backend, as JSON lines', async () => {
    const { results, unavailable } = await measureSpeed({
      backends: ['wasm'],
      backbones: ['mlp', 'cnn'],
      batchSize: 16,
      seconds: 0.2,
      threads: [1],
    });
    expect(unavailable).toEqual([]);
    expect(results.map((r) => [r.engine, r.backend, r.backbone])).toEqual([
      ['onnxruntime', null, 'mlp-256-128'],
      ['onnxruntime', null, 'cnn-16-32-128'],
      ['tfjs', 'wasm', 'mlp-256-128'],
      ['tfjs', 'wasm', 'cnn-16-32-128'],
    ]);
    for (const r of results) {
      expect(r.steps).toBeGreaterThanOrEqual(1);
      expect(r.examplesPerSecond).toBeCloseTo(r.stepsPerSecond * 16, 6);
    }
    const lines = formatSpeedJson(results)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({
      engine: 'onnxruntime',
      backend: null,
      backbone: 'mlp-256-128',
      batchSize: 16,
      stepsPerSecond: Number((results[0] as SpeedResult).stepsPerSecond.toFixed(2)),
      threads: 1,
      best: true,
    });
    expect(lines[2]).toMatchObject({ engine: 'tfjs', backend: 'wasm', backbone: 'mlp-256-128' });
  });

  it('times the engine at each thread count and marks the faster row', async () => {
    const { results } = await measureSpeed({
      backends: [],
      backbones: ['mlp'],
      batchSize: 16,
      seconds: 0.1,
      threads: [1, 2],
    });
    expect(results.map((r) => r.threads)).toEqual([1, 2]);
    const best = results.filter((r) => r.best);
    expect(best).toHaveLength(1);
    expect(best[0]?.stepsPerSecond).toBe(Math.max(...results.map((r) => r.stepsPerSecond)));
  });

  it('an unknown backbone lists the valid ones before any work', async () => {
    await expect(measureSpeed({ backbones: ['mlpp'], seconds: 0.1 })).rejects.toThrow(/mlpp.*mlp/);
  });
});
