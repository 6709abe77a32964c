/**
 * Feature matching and attention transfer on the onnxruntime engine take the
 * same steps as on tfjs (the reference): same target weights after several
 * steps, with the frozen source compiled in, maps resized between
 * resolutions, and batch-normalised sources and targets.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params } from '@transferlab/core';
import { liveSessionCount } from '@transferlab/graph';
import { type BackboneSpec, cnnSpec, createBackbone, resnetSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { attentionTransfer } from '../attention-transfer/index.js';
import { featureMatching } from '../feature-matching/index.js';
import type { AnyTransferMethod, Engine } from '../types.js';
import { disposeBatch } from './batch.js';
import { bilinearWeights } from './feature-transfer-graph.js';
import { maxRelDifference, measureTensorGrowthAsync, randomBatch } from './testing.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const NUM_CLASSES = 3;

async function weightsAfter(
  engine: Engine,
  method: AnyTransferMethod,
  options: Record<string, unknown>,
  sourceSpec: BackboneSpec,
  steps: number,
): Promise<Record<string, Float32Array>> {
  const source = createBackbone(sourceSpec);
  const rng = createRng(7);
  const pretrained: Params = source.init(rng.derive('pretrained'));
  const config = method.validate({ batchSize: 6, lr: 0.05, ...options });
  let state = await method.init({
    config,
    engine,
    backbone: source,
    numClasses: NUM_CLASSES,
    pretrained,
    rng: rng.derive('init'),
    totalSteps: steps,
  });
  for (let step = 0; step < steps; step++) {
    const b = randomBatch(source.inputShape, step === steps - 1 ? 4 : 6, 50 + step, NUM_CLASSES);
    const out = await method.trainStep(state, { target: b, step });
    state = out.state;
    expect(Number.isFinite(out.loss)).toBe(true);
    disposeBatch(b);
  }
  const params = await method.predictParams(state);
  const out = Object.fromEntries(
    Object.entries(params).map(([k, v]) => [k, Float32Array.from(v.dataSync())]),
  );
  await method.dispose(state);
  tf.dispose(Object.values(pretrained));
  return out;
}

const cnn = cnnSpec([8, 8, 1], [4, 6], 8);
const resnetBn = resnetSpec([8, 8, 1], [4, 6], 1, { batchNorm: true });
const cases: [string, AnyTransferMethod, Record<string, unknown>, BackboneSpec][] = [
  // 'all' pairs conv1's 4×4 maps with conv2's 2×2 ones: source maps resized both ways.
  ['feature matching, pairs all (maps resized)', featureMatching, { pairs: 'all' }, cnn],
  [
    'feature matching, smaller CNN target',
    featureMatching,
    { pairs: 'one-to-one', targetBackbone: 'cnn', targetChannels: [2, 3] },
    cnn,
  ],
  [
    'feature matching, batch-normalised ResNet source → CNN target',
    featureMatching,
    { pairs: 'all', targetBackbone: 'cnn', targetChannels: [3, 5] },
    resnetBn,
  ],
  ['attention transfer, one-to-one', attentionTransfer, { beta: 50 }, cnn],
  [
    'attention transfer, resized attention',
    attentionTransfer,
    { beta: 50, pairs: 'all', targetBackbone: 'cnn', targetChannels: [2, 3] },
    cnn,
  ],
];

describe('feature transfer on the onnxruntime engine', () => {
  it('bilinear weights reproduce tfjs resizeBilinear (half-pixel centres) up and down', () => {
    for (const [from, to] of [
      [7, 4],
      [4, 7],
      [8, 2],
      [3, 3],
    ] as const) {
      const x = tf.randomNormal([1, from, from, 1], 0, 1, 'float32', 3);
      const expected = tf.image.resizeBilinear(x as tf.Tensor4D, [to, to], false, true);
      const m = tf.tensor2d(bilinearWeights(from, to), [to, from]);
      const got = tf.matMul(tf.matMul(m, tf.reshape(x, [from, from])), m, false, true);
      expect(
        maxRelDifference({ a: got.dataSync() }, { a: expected.dataSync() }).worst,
      ).toBeLessThan(1e-6);
      tf.dispose([x, expected, m, got]);
    }
  });

  for (const [name, method, options, spec] of cases) {
    it(`${name}: engine weights = tfjs weights after 4 steps`, async () => {
      const sessions = liveSessionCount();
      const ref = await weightsAfter('tfjs', method, options, spec, 4);
      const got = await weightsAfter('onnxruntime', method, options, spec, 4);
      expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
      const { worst, at } = maxRelDifference(got, ref);
      expect(worst, `worst at ${at}`).toBeLessThan(2e-4);
      expect(liveSessionCount()).toBe(sessions);
    });
  }

  it('the engine path leaks no tfjs tensors across steps', async () => {
    const growth = await measureTensorGrowthAsync(
      () => weightsAfter('onnxruntime', featureMatching, { pairs: 'all' }, cnn, 2),
      { warmup: 1, steps: 3 },
    );
    expect(growth.grew, `live tensors ${growth.counts}`).toBe(false);
  });
});
