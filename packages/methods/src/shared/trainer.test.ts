import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, mergeParams, type Params } from '@transferlab/core';
import { liveSessionCount, OnnxGraphBuilder } from '@transferlab/graph';
import {
  type Backbone,
  createBackbone,
  exportBackboneToOnnx,
  importOnnx,
  linearHead,
  mlpSpec,
} from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../types.js';
import { createBatch } from './batch.js';
import type { LossFn } from './loss-ops.js';
import type { OptimConfig } from './optim.js';
import { denseBnSpec, maxRelDifference, type Weights } from './testing.js';
import { createNetworkTrainer, requireEngine } from './trainer.js';

/**
 * Full garbage collections, so buffer counts measure what is still
 * referenced. V8 frees array-buffer memory on a concurrent sweeper: collect
 * a few times with pauses between, or freed buffers still count.
 */
async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const config: OptimConfig = {
  epochs: 1,
  batchSize: 8,
  optimizer: 'adam',
  lr: 1e-2,
  momentum: 0.9,
  weightDecay: 1e-3,
  schedule: 'cosine',
};

async function train(engine: Engine, backbone: Backbone, steps: number, c = config) {
  const rng = createRng(3);
  const head = linearHead(backbone.featureDim, 3);
  const params: Params = mergeParams(backbone.init(rng.derive('b')), head.init(rng.derive('h')));
  const loss: LossFn = (ops) =>
    ops.crossEntropy(ops.linear(ops.features(ops.target.x), head), ops.target.y);
  const trainer = await createNetworkTrainer({
    engine,
    backbone,
    params,
    isHead: (n) => head.paramNames.includes(n),
    config: c,
    totalSteps: steps,
    backboneLrMultiplier: 0.5,
    loss,
  });
  const data = createRng(9);
  const shape = [...backbone.inputShape];
  const size = shape.reduce((a, b) => a * b, 1);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    // The last batch is smaller: the engine's batch dimension is symbolic.
    const n = s === steps - 1 ? 5 : 8;
    const batch = createBatch(
      Float32Array.from(data.normalArray(n * size)),
      Int32Array.from({ length: n }, () => data.int(3)),
      shape,
    );
    losses.push(await trainer.step({ target: batch, step: s }));
  }
  const out = Object.fromEntries(
    Object.entries(trainer.params()).map(([k, v]) => [k, Float32Array.from(v.dataSync())]),
  );
  await trainer.dispose();
  return { params: out, losses };
}

const maxRelDiff = (a: Weights, b: Weights) => maxRelDifference(a, b).worst;

describe('network trainer: onnxruntime engine = tfjs', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });

  it('MLP + head, Adam with decay and a cosine schedule, backbone at half rate', async () => {
    const backbone = createBackbone(mlpSpec([6, 6, 1], [16, 12]));
    const a = await train('tfjs', backbone, 6);
    const b = await train('onnxruntime', backbone, 6);
    expect(maxRelDiff(b.params, a.params)).toBeLessThan(1e-4);
    b.losses.forEach((l, i) => {
      expect(l).toBeCloseTo(a.losses[i] as number, 5);
    });
  });

  it('SGD with momentum, batch-normalised dense backbone (statistics carried)', async () => {
    const backbone = createBackbone(denseBnSpec(10, 8));
    const sgd: OptimConfig = { ...config, optimizer: 'sgd', lr: 0.1, schedule: 'constant' };
    const a = await train('tfjs', backbone, 5, sgd);
    const b = await train('onnxruntime', backbone, 5, sgd);
    expect(maxRelDiff(b.params, a.params)).toBeLessThan(1e-4);
    // The statistics moved away from their start (0 and 1).
    expect(
      Math.max(...Array.from(b.params['bn1.running_mean'] as Float32Array, Math.abs)),
    ).toBeGreaterThan(1e-3);
  });

  it('an imported ONNX model (exported, re-imported; BatchNormalization trained) trains alike', async () => {
    const built = createBackbone(denseBnSpec(10, 8, 6));
    const weights = built.init(createRng(1));
    const { backbone, params } = importOnnx(exportBackboneToOnnx(built, weights), {
      source: 'dense-bn.onnx',
    });
    for (const t of Object.values({ ...weights, ...params })) t.dispose();
    // SGD: fc1's bias feeds batch norm, so its true gradient is 0 and Adam would
    // turn each engine's float32 rounding noise into full-size (different) steps.
    const sgd: OptimConfig = { ...config, optimizer: 'sgd', lr: 0.1 };
    const a = await train('tfjs', backbone, 4, sgd);
    const b = await train('onnxruntime', backbone, 4, sgd);
    expect(maxRelDiff(b.params, a.params)).toBeLessThan(1e-4);
    expect(Object.keys(b.params)).toContain('bn1.running_var');
  });

  it('a model with an op the autodiff has no rule for fails at compile time, naming op and node', async () => {
    // An imported graph: Gemm → LeakyRelu (tfjs runs it; the gradient table has no LeakyRelu).
    const g = new OnnxGraphBuilder('leaky');
    g.input('input', ['N', 4]);
    g.initializer('fc.weight', new Float32Array(12).fill(0.1), [4, 3]);
    g.initializer('fc.bias', [0, 0, 0], [3]);
    g.op(
      'LeakyRelu',
      [g.op('Gemm', ['input', 'fc.weight', 'fc.bias'])],
      {},
      'features',
      'act/leaky',
    );
    g.output('features', ['N', 3]);
    const { backbone, params } = importOnnx(g.toBytes({ opset: 13 }), { source: 'leaky.onnx' });
    const head = linearHead(3, 2);
    const spec = {
      backbone,
      isHead: (n: string) => head.paramNames.includes(n),
      config,
      totalSteps: 1,
      backboneLrMultiplier: 1,
      loss: ((ops) =>
        ops.crossEntropy(ops.linear(ops.features(ops.target.x), head), ops.target.y)) as LossFn,
    };
    const tensors = tf.memory().numTensors;
    await expect(
      createNetworkTrainer({
        ...spec,
        engine: 'onnxruntime',
        params: mergeParams(backbone.init(), head.init(createRng(0))),
      }),
    ).rejects.toThrow(/no gradient rule for op "LeakyRelu" \(node "act\/leaky"\).*--engine tfjs/);
    // Nothing leaks on the failed compile; tfjs trains the same model.
    expect(tf.memory().numTensors).toBe(tensors);
    const trainer = await createNetworkTrainer({
      ...spec,
      engine: 'tfjs',
      params: mergeParams(backbone.init(), head.init(createRng(0))),
    });
    await trainer.dispose();
    for (const t of Object.values(params)) t.dispose();
  });

  it('an unknown engine lists the valid ones', () => {
    expect(() => requireEngine('torch')).toThrow(
      /unknown engine "torch" \(valid: onnxruntime, tfjs\)/,
    );
  });

  it('no leaks on the engine: sessions released, no tensors or buffers growing across steps', async () => {
    const tensors = tf.memory().numTensors;
    const sessions = liveSessionCount();
    await train('onnxruntime', createBackbone(mlpSpec([4], [5])), 4);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(liveSessionCount()).toBe(sessions);
    // Many steps, with a prediction snapshot after each: the snapshot is replaced, not
    // accumulated, and the typed arrays fed and returned each step are garbage.
    const backbone = createBackbone(mlpSpec([8, 8, 1], [32]));
    const head = linearHead(backbone.featureDim, 3);
    const trainer = await createNetworkTrainer({
      engine: 'onnxruntime',
      backbone,
      params: mergeParams(backbone.init(createRng(0)), head.init(createRng(1))),
      isHead: (n) => head.paramNames.includes(n),
      config,
      totalSteps: 1000,
      backboneLrMultiplier: 1,
      loss: (ops) => ops.crossEntropy(ops.linear(ops.features(ops.target.x), head), ops.target.y),
    });
    expect(liveSessionCount()).toBe(sessions + 1);
    const batch = createBatch(
      Float32Array.from(createRng(2).normalArray(16 * 64)),
      Int32Array.from({ length: 16 }, (_, i) => i % 3),
      [8, 8, 1],
    );
    const run = async (steps: number) => {
      for (let s = 0; s < steps; s++) {
        await trainer.step({ target: batch, step: s });
        trainer.params();
      }
    };
    await run(50);
    const afterWarmup = tf.memory().numTensors;
    await collectGarbage();
    const heap = process.memoryUsage().arrayBuffers;
    await run(400);
    expect(tf.memory().numTensors).toBe(afterWarmup);
    await collectGarbage();
    // Kept by mistake, 400 steps would hold ~400 × 35 kB (weights, Adam's slots, snapshots).
    expect(process.memoryUsage().arrayBuffers - heap).toBeLessThan(1e6);
    await trainer.dispose();
    await trainer.dispose();
    expect(liveSessionCount()).toBe(sessions);
    await expect(trainer.step({ target: batch, step: 0 })).rejects.toThrow(/after dispose/);
    expect(tf.memory().numTensors).toBe(tensors);
  });
});
