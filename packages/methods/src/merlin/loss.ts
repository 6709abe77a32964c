import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import type { LinearHead } from '@transferlab/models';
import { createBatch, disposeBatch } from '../shared/batch.js';
import { normSession } from '../shared/batch-norm.js';
import { type LossFn, type LossOps, type StepValues, tfjsLossOps } from '../shared/loss-ops.js';
import type { Batch } from '../types.js';
import type { MerlinConfig, MerlinState } from './config.js';
import { fitAndPredictWith } from './head-fit.js';
import { stratifiedSplit } from './split.js';

/**
 * A target batch ready for MeRLin's loss: its rows reordered as
 * [train half; val half], and the step values the loss reads — selectors of
 * the two halves (so one compiled graph serves every split size), the train
 * half's regression targets, the val half's labels, n, the identity of the
 * head's system, and whether the meta term counts (a single example cannot
 * be split: it trains the evaluation and source heads only).
 */
export interface PreparedBatch {
  /** The reordered batch (owned here). */
  batch: Batch;
  values: StepValues;
  /** Absent when the batch has a single example and cannot be split. */
  split?: { nTrain: number };
  /** The reordered inputs and labels as tensors. */
  readonly x: tf.Tensor;
  readonly y: tf.Tensor;
  /** The step values as tensors (made once, owned here). */
  valueTensors(): Record<string, tf.Tensor>;
  dispose(): void;
}

/** The step values MeRLin's loss reads, with their symbolic sizes for the engine. */
export function merlinValueSpecs(numClasses: number, eyeDim: number | 'T') {
  return {
    trainSelector: { type: 'float32', dims: ['T', 'N'] },
    valSelector: { type: 'float32', dims: ['V', 'N'] },
    trainTargets: { type: 'float32', dims: ['T', numClasses] },
    valLabels: { type: 'int32', dims: ['V'] },
    nTrain: { type: 'float32', dims: [] },
    eye: { type: 'float32', dims: [eyeDim, eyeDim] },
    metaWeight: { type: 'float32', dims: [] },
  } as const;
}

/** Rows `from … from + count` of an n-column identity: a selector of a contiguous block. */
function selector(count: number, from: number, n: number): Float32Array {
  const s = new Float32Array(count * n);
  for (let i = 0; i < count; i++) s[i * n + from + i] = 1;
  return s;
}

function identity(d: number): Float32Array {
  return selector(d, 0, d);
}

/**
 * Split the target batch (stratified, from the state's split stream for
 * this step) and build the step values.
 */
export function prepareBatch(state: MerlinState, target: Batch, step: number): PreparedBatch {
  const labels = target.yData;
  const n = target.n;
  const c = state.config;
  const split =
    n >= 2 ? stratifiedSplit(labels, c.valFraction, state.splitRng.derive(step)) : undefined;
  const order = split?.order ?? Int32Array.from({ length: n }, (_, i) => i);
  // A single example: "both halves" are that example, with the meta term weighted 0.
  const nTrain = split?.nTrain ?? n;
  const nVal = split ? n - nTrain : n;
  const size = target.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n * size);
  order.forEach((i, k) => {
    x.set(target.xData.subarray(i * size, (i + 1) * size), k * size);
  });
  const y = Int32Array.from(order, (i) => labels[i] as number);
  const batch = createBatch(x, y, target.shape);
  const C = state.numClasses;
  const targets = new Float32Array(nTrain * C).fill(-1 / C);
  for (let i = 0; i < nTrain; i++) targets[i * C + (y[i] as number)] = 1 - 1 / C;
  const eyeDim = state.form === 'dual' ? nTrain : state.backbone.featureDim;
  const values: StepValues = {
    trainSelector: { data: selector(nTrain, 0, n), dims: [nTrain, n] },
    valSelector: { data: selector(nVal, split ? nTrain : 0, n), dims: [nVal, n] },
    trainTargets: { data: targets, dims: [nTrain, C] },
    valLabels: { data: y.slice(split ? nTrain : 0), dims: [nVal] },
    nTrain: { data: Float32Array.of(nTrain), dims: [] },
    eye: { data: identity(eyeDim), dims: [eyeDim, eyeDim] },
    metaWeight: { data: Float32Array.of(split ? 1 : 0), dims: [] },
  };
  let tensors: Record<string, tf.Tensor> | undefined;
  return {
    batch,
    values,
    ...(split ? { split: { nTrain } } : {}),
    get x() {
      return batch.x;
    },
    get y() {
      return batch.y;
    },
    valueTensors() {
      tensors ??= Object.fromEntries(
        Object.entries(values).map(([k, v]) => [
          k,
          tf.keep(
            tf.tensor(v.data, [...v.dims], v.data instanceof Int32Array ? 'int32' : 'float32'),
          ),
        ]),
      );
      return tensors;
    },
    dispose: () => {
      if (tensors) tf.dispose(Object.values(tensors));
      disposeBatch(batch);
    },
  };
}

/**
 * The terms of MeRLin's loss, once for both engines: the evaluation head's
 * cross-entropy on stop-gradient features (trains only that head), the meta
 * loss (trains the backbone; weighted 0 for an unsplittable batch) and the
 * unweighted source cross-entropy (with a source head).
 */
export function merlinTerms<T>(
  ops: LossOps<T>,
  c: MerlinConfig,
  heads: { target: LinearHead; source?: LinearHead },
  form: 'primal' | 'dual',
): { evalHead: T; meta: T; source?: T } {
  // One forward pass for both halves: with normalisation in training mode
  // they share the batch's statistics, as in the reference implementation.
  const feats = ops.features(ops.target.x);
  const evalHead = ops.crossEntropy(ops.linear(ops.detach(feats), heads.target), ops.target.y);
  const pred = fitAndPredictWith(
    ops,
    ops.matMul(ops.value('trainSelector'), feats),
    ops.matMul(ops.value('valSelector'), feats),
    ops.value('trainTargets'),
    c,
    { n: ops.value('nTrain'), eye: ops.value('eye'), form },
  );
  const logits = c.logitScale === 1 ? pred : ops.scale(pred, c.logitScale);
  const meta = ops.mul(ops.crossEntropy(logits, ops.value('valLabels')), ops.value('metaWeight'));
  const batch = ops.source;
  const source =
    heads.source && batch
      ? ops.crossEntropy(ops.linear(ops.features(batch.x), heads.source), batch.y)
      : undefined;
  return { evalHead, meta, ...(source ? { source } : {}) };
}

/** evalHead + meta + sourceWeight · source: what a step minimises. */
export function merlinLoss(
  c: MerlinConfig,
  heads: { target: LinearHead; source?: LinearHead },
  form: 'primal' | 'dual',
): LossFn {
  return (ops) => {
    const t = merlinTerms(ops, c, heads, form);
    const total = ops.add(t.evalHead, t.meta);
    return t.source ? ops.add(total, ops.scale(t.source, c.sourceWeight)) : total;
  };
}

/**
 * The terms on tfjs at `params` (normalisation in inference mode): for tests
 * and analyses that differentiate or evaluate the loss outside a step.
 */
export function lossTerms(
  state: MerlinState,
  params: Params,
  prepared: PreparedBatch,
  source?: Batch,
): { evalHead: tf.Scalar; meta?: tf.Scalar; source?: tf.Scalar } {
  const ops = tfjsLossOps(
    params,
    normSession(state.backbone, false),
    {
      target: { x: prepared.x, y: prepared.y },
      ...(source ? { source: { x: source.x, y: source.y } } : {}),
    },
    { values: prepared.valueTensors() },
  );
  const t = merlinTerms(ops, state.config, state.heads, state.form);
  return {
    evalHead: t.evalHead as tf.Scalar,
    ...(prepared.split ? { meta: t.meta as tf.Scalar } : {}),
    ...(t.source ? { source: t.source as tf.Scalar } : {}),
  };
}
