import * as tf from '@tensorflow/tfjs-core';
import {
  adam,
  createRng,
  disposeParams,
  initBackend,
  mergeParams,
  type Params,
  sgd,
  softmaxCrossEntropy,
  trainStep,
} from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BackboneSpec, cnnSpec, createBackbone, mlpSpec } from '../backbone.js';
import { linearHead } from '../head.js';
import { buildTrainStepGraph, compileTrainStep } from './train-step.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const measured: string[] = [];

/** Largest |a − b| relative to the largest |b| over every parameter. */
function relDiff(a: Record<string, Float32Array>, b: Params): number {
  let diff = 0;
  let scale = 0;
  for (const [n, t] of Object.entries(b)) {
    const ref = t.dataSync();
    const got = a[n] as Float32Array;
    expect(got, n).toBeDefined();
    for (let i = 0; i < ref.length; i++) {
      diff = Math.max(diff, Math.abs((got[i] as number) - (ref[i] as number)));
      scale = Math.max(scale, Math.abs(ref[i] as number));
    }
  }
  return diff / scale;
}

const cases: {
  id: string;
  spec: BackboneSpec;
  momentum: number;
  weightDecay: number;
  headOnly?: boolean;
  adam?: { decoupled: boolean };
}[] = [
  {
    id: 'Adam, coupled weight decay',
    spec: mlpSpec([12], [16, 8]),
    momentum: 0,
    weightDecay: 1e-2,
    adam: { decoupled: false },
  },
  {
    id: 'AdamW (decoupled), head only',
    spec: mlpSpec([12], [10]),
    momentum: 0,
    weightDecay: 5e-2,
    headOnly: true,
    adam: { decoupled: true },
  },
  {
    id: 'relu MLP, momentum + weight decay',
    spec: mlpSpec([3, 4], [16, 8]),
    momentum: 0.9,
    weightDecay: 1e-3,
  },
  {
    id: 'quadratic activation, plain SGD',
    spec: {
      name: 'quad',
      inputShape: [12],
      layers: [{ kind: 'dense', name: 'q1', units: 6, activation: 'square' }],
    },
    momentum: 0,
    weightDecay: 0,
  },
  {
    id: 'head only (a linear probe)',
    spec: mlpSpec([12], [10]),
    momentum: 0.5,
    weightDecay: 0,
    headOnly: true,
  },
];

describe('ONNX training step (onnxruntime) against tfjs autodiff + core sgd', () => {
  it.each(cases)(
    '$id: the same weights and losses after 6 steps',
    async ({ id, spec, momentum, weightDecay, headOnly, adam: adamOpts }) => {
      const backbone = createBackbone(spec);
      const head = linearHead(backbone.featureDim, 4);
      const rng = createRng(3);
      const init = mergeParams(backbone.init(rng.derive('b')), head.init(rng.derive('h')));
      // Non-zero biases so that a bias mix-up cannot hide.
      for (const n of Object.keys(init))
        if (n.endsWith('.bias')) {
          const t = init[n] as tf.Tensor;
          (init as Record<string, tf.Tensor>)[n] = tf.tensor(
            rng.derive(n).normalArray(t.size, 0.1),
            t.shape,
          );
          t.dispose();
        }
      const trainable = headOnly ? head.paramNames : Object.keys(init);
      const trainer = await compileTrainStep(backbone, head, init, {
        momentum,
        weightDecay,
        trainable,
        ...(adamOpts ? { optimizer: 'adam' as const, decoupled: adamOpts.decoupled } : {}),
      });
      const optimizer = adamOpts
        ? adam({ lr: 0.05, weightDecay, decoupled: adamOpts.decoupled })
        : sgd({ lr: 0.05, momentum, weightDecay });
      let params: Params = Object.fromEntries(
        Object.entries(init).map(([n, t]) => [n, tf.clone(t)]),
      );
      let state = optimizer.init(
        Object.fromEntries(trainable.map((n) => [n, params[n] as tf.Tensor])),
      );
      const size = backbone.inputShape.reduce((a, b) => a * b, 1);
      const n = 10;
      for (let step = 0; step < 6; step++) {
        const r = rng.derive(`batch${step}`);
        const x = Float32Array.from(r.normalArray(n * size));
        const y = Int32Array.from({ length: n }, () => r.int(4));
        const lr = 0.05 * (1 - step / 10); // a schedule: lr is a graph input
        const ours = await trainer.step(x, y, n, lr);
        const xt = tf.tensor(x, [n, ...backbone.inputShape]);
        const yt = tf.tensor1d(y, 'int32');
        const result = trainStep({
          params,
          state,
          optimizer,
          trainable,
          lrFactor: lr / 0.05,
          loss: (p) => softmaxCrossEntropy(head.apply(p, backbone.apply(p, xt).features), yt),
        });
        params = result.params;
        state = result.state;
        expect(ours, `loss at step ${step}`).toBeCloseTo(result.loss, 4);
        tf.dispose([xt, yt]);
      }
      const rel = relDiff(trainer.params(), params);
      measured.push(`${id}: max rel. weight difference after 6 steps ${rel.toExponential(2)}`);
      expect(rel).toBeLessThan(1e-5);
      // The frozen parameters really stayed put.
      if (headOnly)
        for (const name of Object.keys(backbone.paramShapes))
          expect(Array.from(trainer.params()[name] ?? [])).toEqual(
            Array.from(init[name]?.dataSync() ?? []),
          );
      await trainer.dispose();
      disposeParams(params);
      disposeParams(init);
      console.log(measured.at(-1));
    },
  );

  it('refuses what it cannot compile, by name', () => {
    const cnn = createBackbone(cnnSpec([8, 8, 1], [4], 8));
    expect(() => buildTrainStepGraph(cnn, linearHead(cnn.featureDim, 3))).toThrow(
      'compileTrainStep: backbone "cnn-4-8" has a conv2d layer ("conv1"); the ONNX training step supports flatten and dense layers only',
    );
    const mlp = createBackbone(mlpSpec([4], [5]));
    expect(() => buildTrainStepGraph(mlp, linearHead(7, 3))).toThrow(
      'head expects 7 features, backbone gives 5',
    );
    expect(() => buildTrainStepGraph(mlp, linearHead(5, 3), { momentum: 1 })).toThrow(
      'momentum must be in [0, 1)',
    );
    expect(() =>
      buildTrainStepGraph(mlp, linearHead(5, 3), { optimizer: 'rmsprop' as never }),
    ).toThrow(`optimizer must be 'sgd' or 'adam', got "rmsprop"`);
    expect(() => buildTrainStepGraph(mlp, linearHead(5, 3), { trainable: ['fc9.weight'] })).toThrow(
      'unknown trainable parameter "fc9.weight" (have: fc1.weight, fc1.bias, head.weight, head.bias)',
    );
  });
});
