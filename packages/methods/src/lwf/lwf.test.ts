import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params } from '@transferlab/core';
import { createBackbone, linearHead, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { fineTune } from '../fine-tune/index.js';
import { batchFromTensors } from '../shared/batch.js';
import { measureTensorGrowthAsync } from '../shared/testing.js';
import type { Batch } from '../types.js';
import { distillationLoss, type LwfContext, type LwfState, lwf } from './index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const backbone = createBackbone(mlpSpec([8], [16, 8]));
const SOURCE_CLASSES = 4;

function batch(seed: number, n = 24): Batch {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, () => rng.int(3));
  const x = Float32Array.from(
    { length: n * 8 },
    (_, i) => rng.normal() + (i % 8 === (y[Math.floor(i / 8)] as number) ? 2 : 0),
  );
  return batchFromTensors(tf.tensor2d(x, [n, 8]), tf.tensor1d(y, 'int32'));
}

/** The source network as pre-training leaves it: backbone weights and a `source_head`. */
function sourceNetwork(): { backbone: Params; head: Params } {
  return {
    backbone: backbone.init(createRng(100)),
    head: linearHead(backbone.featureDim, SOURCE_CLASSES, 'source_head').init(createRng(101)),
  };
}

function context(
  options: Record<string, unknown>,
  src: { backbone: Params; head: Params },
  how: 'field' | 'pretrained' = 'field',
): LwfContext {
  return {
    config: lwf.validate(options),
    backbone,
    numClasses: 3,
    pretrained: how === 'field' ? src.backbone : { ...src.backbone, ...src.head },
    ...(how === 'field' ? { sourceHead: src.head } : {}),
    sourceNumClasses: SOURCE_CLASSES,
    rng: createRng(0),
    totalSteps: 30,
  };
}

const arrays = (p: Params) =>
  Object.fromEntries(Object.entries(p).map(([n, t]) => [n, Array.from(t.dataSync())]));

describe('lwf', () => {
  it('needs the source head, and says what the runner must pass', async () => {
    const src = sourceNetwork();
    expect(lwf.engines).toEqual(['onnxruntime', 'tfjs']);
    await expect(async () =>
      lwf.init({
        config: lwf.validate({}),
        backbone,
        numClasses: 3,
        pretrained: src.backbone,
        rng: createRng(0),
        totalSteps: 1,
      }),
    ).rejects.toThrow(
      /needs the source network's head \(source_head.weight, source_head.bias\).*MethodContext.sourceHead/,
    );
    await expect(async () =>
      lwf.init({ ...context({}, src), sourceNumClasses: 5 }),
    ).rejects.toThrow(/the source head has 4 outputs but sourceNumClasses is 5/);
    await expect(async () =>
      lwf.init({
        ...context({}, src),
        pretrained: { 'fc1.weight': src.backbone['fc1.weight'] as tf.Tensor },
      }),
    ).rejects.toThrow(/the pretrained weights lack fc1.bias, fc2.weight, fc2.bias/);
    // Either route works: a `sourceHead` field or the names inside `pretrained`.
    for (const how of ['field', 'pretrained'] as const) {
      const state = await lwf.init(context({}, src, how));
      expect(Object.keys(await lwf.predictParams(state)).sort()).toEqual([
        'fc1.bias',
        'fc1.weight',
        'fc2.bias',
        'fc2.weight',
        'head.bias',
        'head.weight',
        'source_head.bias',
        'source_head.weight',
      ]);
      await lwf.dispose(state);
    }
    expect(() => lwf.validate({ temperature: 0 })).toThrow(/temperature must be a positive number/);
    tf.dispose([...Object.values(src.backbone), ...Object.values(src.head)]);
  });

  it('distillation loss: Li & Hoiem’s L_old; its gradient vanishes when the student equals the teacher', async () => {
    tf.tidy(() => {
      const t = tf.tensor2d([
        [1, 2, 0.5],
        [0, -1, 3],
      ]);
      const T = 2;
      const p = tf.softmax(tf.div(t, T));
      const expected = tf.neg(tf.mean(tf.sum(tf.mul(p, tf.log(p)), 1))).dataSync()[0] as number;
      expect(distillationLoss(t, t, T).dataSync()[0]).toBeCloseTo(expected, 5);
      const g = tf.grad((s) => distillationLoss(s, t, T))(t.clone());
      expect(tf.max(tf.abs(g)).dataSync()[0]).toBeLessThan(1e-6);
      const g2 = tf.grad((s) => distillationLoss(s, t, T))(tf.zerosLike(t));
      expect(tf.max(tf.abs(g2)).dataSync()[0]).toBeGreaterThan(1e-2);
    });
  });

  it('with λ_o = 0 it is fine-tuning (same backbone and new head after k steps)', async () => {
    const src = sourceNetwork();
    const options = { optimizer: 'sgd', lr: 0.1, momentum: 0.9, backboneLrMultiplier: 0.5 };
    let a: LwfState = await lwf.init(context({ ...options, lambdaOld: 0 }, src));
    let b = await fineTune.init({ ...context({}, src), config: fineTune.validate(options) });
    for (let step = 0; step < 5; step++) {
      const t = batch(step);
      a = (await lwf.trainStep(a, { target: t, step })).state;
      b = (await fineTune.trainStep(b, { target: t, step })).state;
      tf.dispose([t.x, t.y]);
    }
    const pa = arrays(await lwf.predictParams(a));
    for (const [n, v] of Object.entries(arrays(b.trainer.params()))) expect(pa[n], n).toEqual(v);
    await lwf.dispose(a);
    await fineTune.dispose(b);
    tf.dispose([...Object.values(src.backbone), ...Object.values(src.head)]);
  });

  it('the distillation term keeps the old head’s outputs close to the original network’s', async () => {
    const src = sourceNetwork();
    const drift = async (lambdaOld: number) => {
      let state = await lwf.init(context({ lambdaOld, lr: 0.05, backboneLrMultiplier: 1 }, src));
      const t = batch(7);
      let step = 0;
      const growth = await measureTensorGrowthAsync(
        async () => {
          state = (await lwf.trainStep(state, { target: t, step: step++ })).state;
        },
        { warmup: 2, steps: 20 },
      );
      expect(growth.grew).toBe(false);
      const p = await lwf.predictParams(state);
      const d = tf.tidy(() => {
        const now = state.oldHead.apply(p, backbone.apply(p, t.x).features);
        // The original network: the runner's weights, which LwF never touches.
        const then = state.oldHead.apply(src.head, backbone.apply(src.backbone, t.x).features);
        return tf.mean(tf.abs(tf.sub(tf.softmax(now), tf.softmax(then)))).dataSync()[0] as number;
      });
      await lwf.dispose(state);
      tf.dispose([t.x, t.y]);
      return d;
    };
    const free = await drift(0);
    const kept = await drift(10);
    expect(kept).toBeLessThan(free / 2);
    // The runner-owned weights are untouched.
    expect(Array.from(src.head['source_head.weight']?.dataSync() ?? [])).toEqual(
      Array.from(
        linearHead(backbone.featureDim, SOURCE_CLASSES, 'source_head')
          .init(createRng(101))
          ['source_head.weight']?.dataSync() ?? [],
      ),
    );
    tf.dispose([...Object.values(src.backbone), ...Object.values(src.head)]);
  });
});
