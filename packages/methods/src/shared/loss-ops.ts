/**
 * The ops a method's loss is written against, once, for both engines: tfjs
 * (eager tensors, the reference) and onnxruntime (graph values compiled into
 * one training step). A method says what its loss is; the engine decides how
 * it runs. A value `T` is a tfjs tensor or the name of a graph value.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Params, softmaxCrossEntropy } from '@transferlab/core';
import {
  attr,
  softmaxCrossEntropy as graphCrossEntropy,
  type OnnxGraphBuilder,
} from '@transferlab/graph';
import type { LinearHead } from '@transferlab/models';
import type { NormSession } from './batch-norm.js';

export interface LossOps<T> {
  /** The step's target batch: inputs and integer labels. */
  readonly target: { readonly x: T; readonly y: T };
  /** The step's source batch, for methods whose `needs.sourceBatches`. */
  readonly source: { readonly x: T; readonly y: T } | undefined;
  /** The trained backbone's features of `x` (normalisation in training mode when the backbone trains). */
  features(x: T): T;
  /** A linear head's logits on (flattened) features. */
  linear(features: T, head: LinearHead): T;
  /** Mean softmax cross-entropy against integer labels. */
  crossEntropy(logits: T, labels: T): T;
  add(a: T, b: T): T;
  scale(a: T, factor: number): T;
}

/** A method's training loss: generic in the engine's value type, so one definition serves both. */
export type LossFn = <T>(ops: LossOps<T>) => T;

/** The tfjs ops: eager tensors inside the optimizer's gradient closure. */
export function tfjsLossOps(
  params: Params,
  norm: NormSession,
  batches: { target: { x: tf.Tensor; y: tf.Tensor }; source?: { x: tf.Tensor; y: tf.Tensor } },
): LossOps<tf.Tensor> {
  return {
    target: batches.target,
    source: batches.source,
    features: (x) => norm.apply(params, x).features,
    linear: (f, head) => head.apply(params, f),
    crossEntropy: (logits, labels) => softmaxCrossEntropy(logits, labels),
    add: (a, b) => tf.add(a, b),
    scale: (a, s) => tf.mul(a, s),
  };
}

/** The graph ops: each call appends nodes; `features` emits a forward pass of the backbone. */
export function graphLossOps(
  g: OnnxGraphBuilder,
  args: {
    target: { x: string; y: string };
    source?: { x: string; y: string };
    /** Emit one forward pass of the backbone on `x` (a fresh name prefix per pass); returns its features. */
    features: (x: string) => string;
    /** The graph value of a head parameter. */
    param: (name: string) => string;
  },
): LossOps<string> {
  return {
    target: args.target,
    source: args.source,
    features: args.features,
    linear: (f, head) => {
      const dims = g.dims(f);
      const flat = dims && dims.length === 2 ? f : g.op('Flatten', [f], { axis: attr.int(1) });
      return g.op('Gemm', [
        flat,
        args.param(`${head.prefix}.weight`),
        args.param(`${head.prefix}.bias`),
      ]);
    },
    crossEntropy: (logits, labels) => graphCrossEntropy(g, logits, labels),
    add: (a, b) => g.op('Add', [a, b]),
    scale: (a, s) => g.op('Mul', [a, g.scalar(s, 'scale')]),
  };
}
