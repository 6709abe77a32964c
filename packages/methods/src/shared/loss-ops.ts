/**
 * The ops a method's loss is written against, once, for both engines: tfjs
 * (eager tensors, the reference) and onnxruntime (graph values compiled into
 * one training step). A method says what its loss is; the engine decides how
 * it runs. A value `T` is a tfjs tensor or the name of a graph value.
 *
 * Besides the batches, a loss may read per-step values the method computes
 * on the host (`StepValues`: MeRLin's split selectors and regression
 * targets), and a frozen copy of the network (`frozen`: LwF's teacher).
 */
import * as tf from '@tensorflow/tfjs-core';
import { choleskySolve, type Params, softmaxCrossEntropy } from '@transferlab/core';
import {
  attr,
  softmaxCrossEntropy as graphCrossEntropy,
  type OnnxDim,
  type OnnxGraphBuilder,
} from '@transferlab/graph';
import type { LinearHead } from '@transferlab/models';
import type { NormSession } from './batch-norm.js';
import { detach } from './detach.js';

/** A per-step value a method hands its loss: float data, or int32 (labels). */
export interface StepValue {
  data: Float32Array | Int32Array;
  /** Its dims this step. */
  dims: readonly number[];
}

export type StepValues = Readonly<Record<string, StepValue>>;

/** What the engine must know of a step value to compile: element type and (symbolic) dims. */
export interface StepValueSpec {
  type: 'float32' | 'int32';
  /** Dims, a string for a size that changes from step to step. */
  dims: readonly OnnxDim[];
}

/** Which network a pass uses: the one being trained, or the frozen copy (`NetworkTrainerSpec.frozen`). */
export type Net = 'trained' | 'frozen';

/** Tensor arithmetic both engines implement (a loss's vocabulary beyond the network). */
export interface TensorOps<T> {
  /** Mean softmax cross-entropy against integer labels. */
  crossEntropy(logits: T, labels: T): T;
  /** A float32 scalar. */
  constant(value: number): T;
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  mul(a: T, b: T): T;
  div(a: T, b: T): T;
  scale(a: T, factor: number): T;
  square(a: T): T;
  sqrt(a: T): T;
  /** Σ over `axis` (keeping it as size 1), or over everything to a scalar. */
  sum(a: T, axis?: number): T;
  /** Mean over `axis` (kept as size 1), or over everything to a scalar. */
  mean(a: T, axis?: number): T;
  matMul(a: T, b: T, transposeA?: boolean, transposeB?: boolean): T;
  /** softmax / log-softmax over the last axis. */
  softmax(a: T): T;
  logSoftmax(a: T): T;
  /** The same value with no gradient flowing back through it. */
  detach(a: T): T;
  /** X with A X = B for a symmetric positive-definite A; differentiable in both, twice. */
  solveSpd(a: T, b: T): T;
}

export interface LossOps<T> extends TensorOps<T> {
  /** The step's target batch: inputs and integer labels. */
  readonly target: { readonly x: T; readonly y: T };
  /** The step's source batch, for methods whose `needs.sourceBatches`. */
  readonly source: { readonly x: T; readonly y: T } | undefined;
  /**
   * The backbone's features of `x`, flattened to [N, featureDim]. The trained
   * network's normalisation runs in training mode when it trains; the frozen
   * copy always answers in inference mode and passes no gradient.
   */
  features(x: T, net?: Net): T;
  /** A linear head's logits on features (its parameters from the trained or the frozen set). */
  linear(features: T, head: LinearHead, net?: Net): T;
  /** A step value the method supplies with each step (see `StepValues`). */
  value(name: string): T;
  /** A parameter's value in the trained or the frozen set (regularisers toward a starting point: L2-SP). */
  param(name: string, net?: Net): T;
}

/** A method's training loss: generic in the engine's value type, so one definition serves both. */
export type LossFn = <T>(ops: LossOps<T>) => T;

const flat = (t: tf.Tensor) => (t.rank === 2 ? t : tf.reshape(t, [t.shape[0] as number, -1]));

/** The tensor ops on tfjs, eager. */
export const tfjsTensorOps: TensorOps<tf.Tensor> = {
  crossEntropy: (logits, labels) => softmaxCrossEntropy(logits, labels),
  constant: (v) => tf.scalar(v),
  add: (a, b) => tf.add(a, b),
  sub: (a, b) => tf.sub(a, b),
  mul: (a, b) => tf.mul(a, b),
  div: (a, b) => tf.div(a, b),
  scale: (a, s) => tf.mul(a, s),
  square: (a) => tf.square(a),
  sqrt: (a) => tf.sqrt(a),
  sum: (a, axis) => (axis === undefined ? tf.sum(a) : tf.sum(a, axis, true)),
  mean: (a, axis) => (axis === undefined ? tf.mean(a) : tf.mean(a, axis, true)),
  matMul: (a, b, ta = false, tb = false) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, ta, tb),
  softmax: (a) => tf.softmax(a),
  logSoftmax: (a) => tf.logSoftmax(a),
  detach: (a) => detach(a),
  solveSpd: (a, b) => choleskySolve(a as tf.Tensor2D, b as tf.Tensor2D),
};

/** The tfjs ops: eager tensors inside the optimizer's gradient closure. */
export function tfjsLossOps(
  params: Params,
  norm: NormSession,
  batches: { target: { x: tf.Tensor; y: tf.Tensor }; source?: { x: tf.Tensor; y: tf.Tensor } },
  extra: {
    values?: Readonly<Record<string, tf.Tensor>>;
    frozen?: Params;
    backbone?: { apply: NormSession['apply'] };
  } = {},
): LossOps<tf.Tensor> {
  const frozenParams = () => {
    if (!extra.frozen || !extra.backbone)
      throw new Error(
        'this loss reads the frozen network, but the trainer was given none (frozen)',
      );
    return extra.frozen;
  };
  return {
    target: batches.target,
    source: batches.source,
    features: (x, net = 'trained') =>
      flat(
        net === 'frozen'
          ? (extra.backbone as { apply: NormSession['apply'] }).apply(frozenParams(), x).features
          : norm.apply(params, x).features,
      ),
    linear: (f, head, net = 'trained') => head.apply(net === 'frozen' ? frozenParams() : params, f),
    value: (name) => {
      const v = extra.values?.[name];
      if (!v)
        throw new Error(`this loss reads step value "${name}", which the step did not supply`);
      return v;
    },
    param: (name, net = 'trained') => {
      const p = (net === 'frozen' ? frozenParams() : params)[name];
      if (!p) throw new Error(`this loss reads parameter "${name}" (${net}), which does not exist`);
      return p;
    },
    ...tfjsTensorOps,
  };
}

/** The graph ops: each call appends nodes; `features` emits a forward pass of the backbone. */
export function graphLossOps(
  g: OnnxGraphBuilder,
  args: {
    target: { x: string; y: string };
    source?: { x: string; y: string };
    /** Emit one forward pass of the backbone on `x` (a fresh name prefix per pass); returns its features. */
    features: (x: string, net: Net) => string;
    /** The graph value of a head parameter in the trained or frozen set. */
    param: (name: string, net: Net) => string;
    /** The graph input of a step value. */
    value: (name: string) => string;
  },
): LossOps<string> {
  const flatten = (f: string) => {
    const dims = g.dims(f);
    return dims && dims.length === 2 ? f : g.op('Flatten', [f], { axis: attr.int(1) });
  };
  return {
    target: args.target,
    source: args.source,
    features: (x, net = 'trained') => flatten(args.features(x, net)),
    linear: (f, head, net = 'trained') =>
      g.op('Gemm', [
        flatten(f),
        args.param(`${head.prefix}.weight`, net),
        args.param(`${head.prefix}.bias`, net),
      ]),
    value: args.value,
    param: (name, net = 'trained') => args.param(name, net),
    ...graphTensorOps(g),
  };
}

/** The tensor ops on a graph being built. */
export function graphTensorOps(g: OnnxGraphBuilder): TensorOps<string> {
  const axes = (axis: number) => g.ints([axis], 'axes');
  const swapLast = (x: string) => g.op('Transpose', [x], { perm: attr.ints([1, 0]) });
  return {
    crossEntropy: (logits, labels) => graphCrossEntropy(g, logits, labels),
    constant: (v) => g.scalar(v, 'constant'),
    add: (a, b) => g.op('Add', [a, b]),
    sub: (a, b) => g.op('Sub', [a, b]),
    mul: (a, b) => g.op('Mul', [a, b]),
    div: (a, b) => g.op('Div', [a, b]),
    scale: (a, s) => g.op('Mul', [a, g.scalar(s, 'scale')]),
    square: (a) => g.op('Mul', [a, a]),
    sqrt: (a) => g.op('Sqrt', [a]),
    sum: (a, axis) =>
      axis === undefined
        ? g.op('ReduceSum', [a], { keepdims: attr.int(0) })
        : g.op('ReduceSum', [a, axes(axis)], { keepdims: attr.int(1) }),
    mean: (a, axis) =>
      g.op('ReduceMean', [a], {
        ...(axis === undefined ? {} : { axes: attr.ints([axis]) }),
        keepdims: attr.int(axis === undefined ? 0 : 1),
      }),
    matMul: (a, b, ta = false, tb = false) =>
      g.op('MatMul', [ta ? swapLast(a) : a, tb ? swapLast(b) : b]),
    softmax: (a) => g.op('Softmax', [a], { axis: attr.int(-1) }),
    logSoftmax: (a) => g.op('LogSoftmax', [a], { axis: attr.int(-1) }),
    detach: (a) => g.stopGradient(a),
    // The inverse is onnxruntime's contrib op; for the small SPD systems a loss
    // solves (MeRLin's n × n kernel) it agrees with a Cholesky solve to float32 noise.
    solveSpd: (a, b) => {
      const inverse = g.op('Inverse', [a]);
      const x = g.op('MatMul', [inverse, b]);
      // One step of iterative refinement, x + A⁻¹(b − A x): at MeRLin's λ = 1e-4
      // (condition ~1e4) the plain inverse leaves the engine 1.2e-3 away from
      // tfjs's Cholesky solve after 5 SGD steps; refined, < 1e-4.
      return g.op('Add', [x, g.op('MatMul', [inverse, g.op('Sub', [b, g.op('MatMul', [a, x])])])]);
    },
  };
}

/** β/2 ‖w‖² over a linear head's weights and bias: the plain L2 the regularised fine-tuning methods put on the new head. */
export function headL2<T>(ops: LossOps<T>, head: LinearHead, beta: number): T {
  let total = ops.constant(0);
  for (const name of head.paramNames)
    total = ops.add(total, ops.scale(ops.sum(ops.square(ops.param(name))), beta / 2));
  return total;
}
