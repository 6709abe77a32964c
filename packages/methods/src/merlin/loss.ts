import * as tf from '@tensorflow/tfjs-core';
import { type Params, softmaxCrossEntropy } from '@transferlab/core';
import type { NormSession } from '../shared/batch-norm.js';
import { features, headLogits, SOURCE_HEAD, TARGET_HEAD } from '../shared/multi-head.js';
import type { Batch } from '../types.js';
import type { MerlinState } from './config.js';
import { detach } from '../shared/detach.js';
import { merlinOuterLoss, regressionTargets } from './head-fit.js';
import { stratifiedSplit } from './split.js';

/** A target batch ready for MeRLin's loss: reordered as [train half; val half]. */
export interface PreparedBatch {
  x: tf.Tensor;
  y: tf.Tensor;
  /** Absent when the batch has a single example and cannot be split. */
  split?: { nTrain: number; trainTargets: tf.Tensor2D; valLabels: tf.Tensor };
  /** Frees the tensors made here (never the original batch's). */
  dispose(): void;
}

/**
 * Split the target batch (stratified, from the state's split stream for
 * this step) and build the train half's regression targets and the val
 * half's labels.
 */
export function prepareBatch(state: MerlinState, target: Batch, step: number): PreparedBatch {
  const labels = target.yData;
  if (target.n < 2) return { x: target.x, y: target.y, dispose() {} };
  const { order, nTrain } = stratifiedSplit(
    labels,
    state.model.config.valFraction,
    state.splitRng.derive(step),
  );
  const ordered = Int32Array.from(order, (i) => labels[i] as number);
  const created = tf.tidy(() => ({
    x: tf.gather(target.x, tf.tensor1d(order, 'int32')),
    y: tf.tensor1d(ordered, 'int32'),
    trainTargets: regressionTargets(ordered.subarray(0, nTrain), state.numClasses),
    valLabels: tf.tensor1d(ordered.subarray(nTrain), 'int32'),
  }));
  return {
    x: created.x,
    y: created.y,
    split: { nTrain, trainTargets: created.trainTargets, valLabels: created.valLabels },
    dispose: () => tf.dispose([created.x, created.y, created.trainTargets, created.valLabels]),
  };
}

/**
 * The terms of MeRLin's loss at `params`: the evaluation head's
 * cross-entropy on stop-gradient features (trains only that head), the meta
 * loss (trains the backbone; absent for an unsplittable batch) and the
 * unweighted source cross-entropy (when a source batch is given).
 * `trainStep` minimises evalHead + meta + sourceWeight · source.
 */
export function lossTerms(
  state: MerlinState,
  params: Params,
  batch: PreparedBatch,
  source?: Batch,
  norm?: NormSession,
): { evalHead: tf.Scalar; meta?: tf.Scalar; source?: tf.Scalar } {
  const { model } = state;
  const c = model.config;
  // One forward pass for both halves: with normalisation in training mode
  // they share the batch's statistics, as in the reference implementation.
  const feats = features(model, params, batch.x, norm);
  const evalHead = softmaxCrossEntropy(
    headLogits(model, params, TARGET_HEAD, detach(feats)),
    batch.y,
  );
  const meta = batch.split
    ? merlinOuterLoss({
        feats,
        nTrain: batch.split.nTrain,
        trainTargets: batch.split.trainTargets,
        valLabels: batch.split.valLabels,
        logitScale: c.logitScale,
        fit: c,
      })
    : undefined;
  const src = source
    ? softmaxCrossEntropy(
        headLogits(model, params, SOURCE_HEAD, features(model, params, source.x, norm)),
        source.y,
      )
    : undefined;
  return { evalHead, ...(meta ? { meta } : {}), ...(src ? { source: src } : {}) };
}
