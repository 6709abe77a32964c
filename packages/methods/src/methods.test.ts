import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params } from '@transferlab/core';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMethodRegistry } from './registry.js';
import { scratch } from './scratch/index.js';
import { createBatch, disposeBatch } from './shared/batch.js';
import { measureTensorGrowthAsync } from './shared/testing.js';
import type { AnyTransferMethod, Batch } from './types.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const backbone = createBackbone(mlpSpec([8], [16, 8]));
const registry = createMethodRegistry();

function batch(seed: number, n = 24): Batch {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, () => rng.int(3));
  // class-dependent mean: learnable
  const x = Float32Array.from(
    { length: n * 8 },
    (_, i) => rng.normal() + (i % 8 === (y[Math.floor(i / 8)] as number) ? 2 : 0),
  );
  return createBatch(x, y, [8]);
}

async function start(method: AnyTransferMethod, options: Record<string, unknown> = {}, seed = 0) {
  const pretrained = backbone.init(createRng(100));
  const state = await method.init({
    config: method.validate(options),
    backbone,
    numClasses: 3,
    pretrained,
    rng: createRng(seed),
    totalSteps: 50,
  });
  return { state, pretrained };
}

const snapshot = (p: Params, name: string) => Array.from((p[name] as tf.Tensor).dataSync());

describe('built-in methods', () => {
  it('the registry lists them and names the valid ids for an unknown one', () => {
    expect(registry.ids).toEqual([
      'scratch',
      'linear-probe',
      'fine-tune',
      'joint',
      'merlin',
      'l2t-ww',
      'feature-matching',
      'attention-transfer',
      'lwf',
      'l2-sp',
      'delta',
      'bss',
      'co-tuning',
    ]);
    expect(() => registry.get('finetune')).toThrow(
      'Unknown method "finetune". Valid method ids: scratch, linear-probe, fine-tune, joint, merlin, l2t-ww, feature-matching, attention-transfer, lwf, l2-sp',
    );
  });

  it('validate rejects unknown options, wrong types and bad ranges', () => {
    const ft = registry.get('fine-tune');
    expect(() => ft.validate({ lrr: 1 })).toThrow(
      /unknown option "lrr". Valid options: epochs, batchSize/,
    );
    expect(() => ft.validate({ lr: '0.1' })).toThrow(/option "lr" must be a number/);
    expect(() => ft.validate({ lr: 0 })).toThrow(/lr must be a positive number/);
    expect(() => ft.validate({ backboneLrMultiplier: -1 })).toThrow(
      /backboneLrMultiplier must be ≥ 0/,
    );
    expect(() => ft.validate({ optimizer: 'rmsprop' })).toThrow(
      /optimizer must be one of adam, sgd/,
    );
    expect(ft.validate({ lr: 0.5 }).lr).toBe(0.5);
  });

  for (const id of ['scratch', 'linear-probe', 'fine-tune']) {
    it(`${id}: loss falls over steps and no tensor leaks`, async () => {
      const method = registry.get(id);
      let { state, pretrained } = await start(method);
      const b = batch(1);
      let step = 0;
      const losses: number[] = [];
      const growth = await measureTensorGrowthAsync(
        async () => {
          const out = await method.trainStep(state, { target: b, step: step++ });
          state = out.state;
          losses.push(out.loss);
        },
        { warmup: 2, steps: 25 },
      );
      expect(growth.grew).toBe(false);
      expect(losses[losses.length - 1]).toBeLessThan((losses[0] as number) * 0.8);
      const before = tf.memory().numTensors;
      await method.dispose(state);
      expect(tf.memory().numTensors).toBeLessThan(before);
      disposeBatch(b);
      for (const t of Object.values(pretrained)) t.dispose();
    });
  }

  it('linear-probe keeps the backbone fixed; fine-tune moves it; the runner-owned pretrained weights are untouched', async () => {
    for (const [id, moves] of [
      ['linear-probe', false],
      ['fine-tune', true],
    ] as const) {
      const method = registry.get(id);
      let { state, pretrained } = await start(method);
      const original = snapshot(pretrained, 'fc1.weight');
      const b = batch(2);
      for (let step = 0; step < 5; step++)
        state = (await method.trainStep(state, { target: b, step })).state;
      const now = snapshot(await method.predictParams(state), 'fc1.weight');
      const moved = now.some((v, i) => v !== original[i]);
      expect(moved, id).toBe(moves);
      expect(snapshot(pretrained, 'fc1.weight')).toEqual(original);
      await method.dispose(state);
      disposeBatch(b);
    }
  });

  it('fine-tune with backboneLrMultiplier 0 is exactly a linear probe', async () => {
    const run = async (id: string, options: Record<string, unknown>) => {
      const method = registry.get(id);
      let { state } = await start(method, options, 7);
      const b = batch(3);
      for (let step = 0; step < 5; step++)
        state = (await method.trainStep(state, { target: b, step })).state;
      const out = snapshot(await method.predictParams(state), 'head.weight');
      await method.dispose(state);
      disposeBatch(b);
      return out;
    };
    expect(await run('fine-tune', { backboneLrMultiplier: 0, lr: 0.01 })).toEqual(
      await run('linear-probe', { lr: 0.01 }),
    );
  });

  it('scratch ignores pretrained weights and is deterministic per seed', async () => {
    const run = async (seed: number) => {
      const method = registry.get('scratch');
      let { state } = await start(method, {}, seed);
      const b = batch(4);
      const losses: number[] = [];
      for (let step = 0; step < 3; step++) {
        const out = await method.trainStep(state, { target: b, step });
        state = out.state;
        losses.push(out.loss);
      }
      await method.dispose(state);
      disposeBatch(b);
      return losses;
    };
    expect(await run(1)).toEqual(await run(1));
    expect(await run(1)).not.toEqual(await run(2));
  });

  it('every built-in method states the v2 contract; the registry refuses another version by name', () => {
    for (const m of registry.items) expect(m.specificationVersion, m.id).toBe('v2');
    const old = {
      ...scratch,
      id: 'old-scratch',
      specificationVersion: 'v1',
    } as unknown as AnyTransferMethod;
    expect(() => createMethodRegistry([old])).toThrow(
      /method "old-scratch" implements TransferMethod specification "v1", but @transferlab\/methods expects "v2"/,
    );
    const { specificationVersion: _v, ...unversioned } = { ...scratch, id: 'bare' };
    expect(() => createMethodRegistry([unversioned as unknown as AnyTransferMethod])).toThrow(
      /method "bare" implements TransferMethod specification \(none: no specificationVersion\), but @transferlab\/methods expects "v2"/,
    );
  });

  it('an asynchronous method (every hook a promise) trains exactly like its synchronous twin', async () => {
    const later = <T>(v: T) => new Promise<T>((resolve) => setTimeout(() => resolve(v), 0));
    const asyncScratch: AnyTransferMethod = {
      ...scratch,
      id: 'async-scratch',
      init: async (ctx) => later(await scratch.init(ctx)),
      trainStep: async (state, input) => later(await scratch.trainStep(state, input)),
      predictParams: async (state) => later(await scratch.predictParams(state)),
      dispose: async (state) => later(await scratch.dispose(state)),
    };
    expect(createMethodRegistry([asyncScratch]).get('async-scratch')).toBe(asyncScratch);
    const run = async (method: AnyTransferMethod) => {
      let { state, pretrained } = await start(method, {}, 3);
      const b = batch(5);
      const losses: number[] = [];
      for (let step = 0; step < 3; step++) {
        const out = await method.trainStep(state, { target: b, step });
        state = out.state;
        losses.push(out.loss);
      }
      const head = snapshot(await method.predictParams(state), 'head.weight');
      await method.dispose(state);
      disposeBatch(b);
      tf.dispose(Object.values(pretrained));
      return { losses, head };
    };
    const before = tf.memory().numTensors;
    expect(await run(asyncScratch)).toEqual(await run(scratch));
    expect(tf.memory().numTensors).toBe(before);
  });
});
