import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, type Params } from '@transferlab/core';
import { type Backbone, linearHead } from '@transferlab/models';
import type { AnyTransferMethod, Batch, Engine } from '../types.js';
import { disposeBatch } from './batch.js';
import { measureTensorGrowthAsync, randomBatch } from './testing.js';

export const TEST_SOURCE_CLASSES = 4;

/**
 * A pretrained start for a method test: backbone weights, a source head and
 * a small labelled target training set (the context a regulariser reads
 * before training). For tests.
 */
export function testStart(backbone: Backbone, numClasses = 3) {
  const pretrained = backbone.init(createRng(4));
  const sourceHead = linearHead(backbone.featureDim, TEST_SOURCE_CLASSES, 'source_head').init(
    createRng(5),
  );
  const targetTrain = randomBatch(backbone.inputShape, 12, 6, numClasses);
  return {
    pretrained,
    sourceHead,
    targetTrain,
    context: (method: AnyTransferMethod, options: Record<string, unknown>, engine: Engine) => ({
      config: method.validate({ epochs: 1, batchSize: 8, ...options }),
      engine,
      backbone,
      numClasses,
      pretrained,
      sourceHead,
      sourceNumClasses: TEST_SOURCE_CLASSES,
      targetTrain,
      rng: createRng(1),
      totalSteps: 3,
    }),
    dispose() {
      disposeParams(pretrained);
      disposeParams(sourceHead);
      disposeBatch(targetTrain);
    },
  };
}

/**
 * Three steps of `method`: the weights before the third (copies), the loss
 * the third step reports and its batch — for a by-hand check of the loss
 * after the weights moved. Call `dispose` when done. For tests.
 */
export async function thirdStep(
  method: AnyTransferMethod,
  engine: Engine,
  options: Record<string, unknown>,
  backbone: Backbone,
) {
  const start = testStart(backbone);
  let state = await method.init(start.context(method, options, engine));
  const batches = [0, 1, 2].map((s) => randomBatch(backbone.inputShape, 8, 10 + s, 3));
  for (const step of [0, 1])
    state = (await method.trainStep(state, { target: batches[step] as Batch, step })).state;
  const before: Params = Object.fromEntries(
    Object.entries(await method.predictParams(state)).map(([k, v]) => [k, tf.clone(v)]),
  );
  const { loss } = await method.trainStep(state, { target: batches[2] as Batch, step: 2 });
  await method.dispose(state);
  return {
    ...start,
    before,
    loss,
    batch: batches[2] as Batch,
    dispose() {
      start.dispose();
      disposeParams(before);
      for (const b of batches) disposeBatch(b);
    },
  };
}

/** Live tensors after each of 12 steps of `method` on one batch (tfjs engine): flat when nothing leaks. For tests. */
export async function stepTensorCounts(
  method: AnyTransferMethod,
  options: Record<string, unknown>,
  backbone: Backbone,
): Promise<{ grew: boolean; counts: number[] }> {
  const start = testStart(backbone);
  let state = await method.init(start.context(method, options, 'tfjs'));
  const batch = randomBatch(backbone.inputShape, 8, 3, 3);
  let step = 0;
  const growth = await measureTensorGrowthAsync(
    async () => {
      state = (await method.trainStep(state, { target: batch, step: step++ })).state;
    },
    { warmup: 2, steps: 12 },
  );
  await method.dispose(state);
  disposeBatch(batch);
  start.dispose();
  return growth;
}
