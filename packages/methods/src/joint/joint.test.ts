import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params, softmaxCrossEntropy } from '@transferlab/core';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { fineTune } from '../fine-tune/index.js';
import { createMethodRegistry } from '../registry.js';
import { batchFromTensors } from '../shared/batch.js';
import { measureTensorGrowthAsync } from '../shared/testing.js';
import type { AnyTransferMethod, Batch } from '../types.js';
import { joint } from './index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const backbone = createBackbone(mlpSpec([8], [16, 8]));

/** Class-dependent means; the source has 4 classes, the target 3. */
function batch(seed: number, classes: number, n = 24): Batch {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, () => rng.int(classes));
  const x = Float32Array.from(
    { length: n * 8 },
    (_, i) =>
      rng.normal() +
      ((i % 8) + (classes === 4 ? 4 : 0) === (y[Math.floor(i / 8)] as number) ? 2 : 0),
  );
  return batchFromTensors(tf.tensor2d(x, [n, 8]), tf.tensor1d(y, 'int32'));
}
const disposeBatch = (b: Batch) => tf.dispose([b.x, b.y]);

async function start(method: AnyTransferMethod, options: Record<string, unknown> = {}, seed = 0) {
  const pretrained = backbone.init(createRng(100));
  const state = await method.init({
    config: method.validate(options),
    backbone,
    numClasses: 3,
    pretrained,
    sourceNumClasses: 4,
    rng: createRng(seed),
    totalSteps: 50,
  });
  return { state, pretrained };
}

const values = (p: Params, name: string) => Array.from((p[name] as tf.Tensor).dataSync());
const maxAbsDiff = (a: number[], b: number[]) =>
  Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))));

/** Run `steps` steps; returns the final params as arrays and the losses. */
async function run(
  method: AnyTransferMethod,
  options: Record<string, unknown>,
  steps: number,
  seed = 0,
): Promise<{ params: Record<string, number[]>; losses: number[] }> {
  let { state, pretrained } = await start(method, options, seed);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const target = batch(100 + step, 3);
    const source = batch(200 + step, 4);
    const out = await method.trainStep(state, { target, source, step });
    state = out.state;
    losses.push(out.loss);
    disposeBatch(target);
    disposeBatch(source);
  }
  const live = await method.predictParams(state);
  const params = Object.fromEntries(Object.keys(live).map((n) => [n, values(live, n)]));
  await method.dispose(state);
  for (const t of Object.values(pretrained)) t.dispose();
  return { params, losses };
}

describe('joint method', () => {
  it('is registered and needs source batches', async () => {
    expect(createMethodRegistry().get('joint')).toBe(joint);
    expect(joint.needs).toEqual({ pretrainedBackbone: true, sourceBatches: true });
  });

  it('validate and init give clear errors', async () => {
    expect(() => joint.validate({ alpha: 1 })).toThrow(/unknown option "alpha"/);
    expect(() => joint.validate({ targetWeight: 0 })).toThrow(
      /targetWeight must be a positive number, got 0/,
    );
    expect(() => joint.validate({ backboneLrMultiplier: -1 })).toThrow(
      /backboneLrMultiplier must be ≥ 0/,
    );
    const ctx = {
      config: joint.validate({}),
      backbone,
      numClasses: 3,
      rng: createRng(0),
      totalSteps: 1,
    };
    await expect(async () => joint.init({ ...ctx, sourceNumClasses: 4 })).rejects.toThrow(
      /fromPretrained is true but no pretrained backbone/,
    );
    const stray = backbone.init(createRng(1));
    await expect(async () => joint.init({ ...ctx, pretrained: stray })).rejects.toThrow(
      /needs the source task's number of classes/,
    );
    for (const t of Object.values(stray)) t.dispose();
    const { state, pretrained } = await start(joint);
    const target = batch(1, 3);
    await expect(async () => joint.trainStep(state, { target, step: 0 })).rejects.toThrow(
      /every step needs a source minibatch/,
    );
    await joint.dispose(state);
    disposeBatch(target);
    for (const t of Object.values(pretrained)) t.dispose();
  });

  it('its loss is source CE + targetWeight × target CE', async () => {
    const { state, pretrained } = await start(joint, { targetWeight: 2.5 });
    const target = batch(1, 3);
    const source = batch(2, 4);
    const p = await joint.predictParams(state);
    const expected = tf.tidy(() => {
      const tgt = softmaxCrossEntropy(joint.predict(state, p, target.x), target.y);
      const feats = backbone.apply(p, source.x).features;
      const srcLogits = tf.add(
        tf.matMul(feats as tf.Tensor2D, p['source_head.weight'] as tf.Tensor2D),
        p['source_head.bias'] as tf.Tensor,
      );
      const src = softmaxCrossEntropy(srcLogits, source.y);
      return (src.dataSync()[0] as number) + 2.5 * (tgt.dataSync()[0] as number);
    });
    const out = await joint.trainStep(state, { target, source, step: 0 });
    expect(out.loss).toBeCloseTo(expected, 5);
    await joint.dispose(out.state);
    disposeBatch(target);
    disposeBatch(source);
    for (const t of Object.values(pretrained)) t.dispose();
  });

  it('loss falls and no tensor leaks', async () => {
    let { state, pretrained } = await start(joint);
    const target = batch(3, 3);
    const source = batch(4, 4);
    let step = 0;
    const losses: number[] = [];
    const growth = await measureTensorGrowthAsync(
      async () => {
        const out = await joint.trainStep(state, { target, source, step: step++ });
        state = out.state;
        losses.push(out.loss);
      },
      { warmup: 2, steps: 25 },
    );
    expect(growth.grew).toBe(false);
    expect(losses[losses.length - 1]).toBeLessThan((losses[0] as number) * 0.8);
    const count = tf.memory().numTensors;
    await joint.dispose(state);
    expect(tf.memory().numTensors).toBeLessThan(count);
    disposeBatch(target);
    disposeBatch(source);
    for (const t of Object.values(pretrained)) t.dispose();
  });

  it('with a huge targetWeight (and lr scaled down by it) it is fine-tuning on the target', async () => {
    // SGD: joint's update is lr·(g_source + α g_target); with lr = lr_ft / α
    // it is lr_ft·g_target + O(1/α): fine-tune's update, from the same target
    // head initialisation and the same pretrained backbone.
    const steps = 6;
    const ft = await run(fineTune, { optimizer: 'sgd', momentum: 0, lr: 0.2 }, steps);
    const alpha = 1e5;
    const huge = await run(
      joint,
      { optimizer: 'sgd', momentum: 0, lr: 0.2 / alpha, targetWeight: alpha },
      steps,
    );
    const equal = await run(
      joint,
      { optimizer: 'sgd', momentum: 0, lr: 0.2, targetWeight: 1 },
      steps,
    );
    for (const name of ['fc1.weight', 'fc2.weight', 'head.weight', 'head.bias']) {
      const ref = ft.params[name] as number[];
      expect(maxAbsDiff(huge.params[name] as number[], ref), name).toBeLessThan(1e-5);
    }
    // A joint run that does weigh the source moves the backbone elsewhere.
    expect(
      maxAbsDiff(equal.params['fc1.weight'] as number[], ft.params['fc1.weight'] as number[]),
    ).toBeGreaterThan(3e-4);
  });

  it('is deterministic per seed; fromPretrained: false starts from a random backbone', async () => {
    const a = await run(joint, {}, 3, 1);
    expect(await run(joint, {}, 3, 1)).toEqual(a);
    expect((await run(joint, {}, 3, 2)).losses).not.toEqual(a.losses);
    const { state, pretrained } = await start(joint, { fromPretrained: false });
    expect(values(await joint.predictParams(state), 'fc1.weight')).not.toEqual(
      values(pretrained, 'fc1.weight'),
    );
    await joint.dispose(state);
    for (const t of Object.values(pretrained)) t.dispose();
  });
});
