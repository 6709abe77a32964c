import * as tf from '@tensorflow/tfjs-core';
import {
  adam,
  disposeOptimizerState,
  type Params,
  type Rng,
  softmaxCrossEntropy,
  trainStep,
} from '@transferlab/core';
import { type Backbone, linearHead } from '@transferlab/models';
import type { Batch } from '../types.js';

/**
 * The features of every example of `batch` under `params`, inference mode,
 * [n, featureDim], computed on tfjs in chunks (a 224×224 model's activations
 * for a whole training set would not fit the wasm heap): what a method
 * computes once from the target training set before training (DELTA's
 * channel attention, Co-Tuning's category relationship). The caller owns
 * the result.
 */
export function frozenFeatures(
  backbone: Backbone,
  params: Params,
  batch: Pick<Batch, 'n' | 'shape' | 'xData'>,
  chunk = 32,
): tf.Tensor2D {
  const size = batch.shape.reduce((a, b) => a * b, 1);
  const parts: tf.Tensor[] = [];
  for (let start = 0; start < batch.n; start += chunk) {
    const n = Math.min(chunk, batch.n - start);
    parts.push(
      tf.tidy(() => {
        const x = tf.tensor(batch.xData.subarray(start * size, (start + n) * size), [
          n,
          ...batch.shape,
        ]);
        return tf.reshape(backbone.apply(params, x).features, [n, backbone.featureDim]);
      }),
    );
  }
  const all = parts.length === 1 ? (parts[0] as tf.Tensor) : tf.concat(parts, 0);
  if (parts.length > 1) tf.dispose(parts);
  return all as tf.Tensor2D;
}

/** The target training set from the context, or a clear error naming the method that needs it. */
export function requireTargetTrain(id: string, ctx: { readonly targetTrain?: Batch }): Batch {
  if (!ctx.targetTrain)
    throw new Error(
      `method "${id}": needs the target training set before training (MethodContext.targetTrain); the bench runner passes it`,
    );
  return ctx.targetTrain;
}

/**
 * A linear head (`weight` [d, K], `bias` [K]) fitted on fixed features by
 * full-batch Adam (lr 1e-2) for `steps` steps: a probe of what the features
 * say about the labels (DELTA measures its channel attention with one). The
 * caller owns the result.
 */
export function fitLinearHead(
  features: tf.Tensor2D,
  labels: tf.Tensor1D,
  classes: number,
  steps: number,
  rng: Rng,
): { weight: tf.Tensor2D; bias: tf.Tensor1D } {
  const head = linearHead(features.shape[1], classes, 'probe');
  const optimizer = adam({ lr: 1e-2 });
  let params: Params = head.init(rng);
  let state = optimizer.init(params);
  for (let i = 0; i < steps; i++)
    ({ params, state } = trainStep({
      params,
      state,
      optimizer,
      loss: (p) => softmaxCrossEntropy(head.apply(p, features), labels),
    }));
  disposeOptimizerState(state);
  return {
    weight: params['probe.weight'] as tf.Tensor2D,
    bias: params['probe.bias'] as tf.Tensor1D,
  };
}
