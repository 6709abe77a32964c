import type * as tf from '@tensorflow/tfjs-core';
import type { Params, Rng } from '@transferlab/core';
import type { Backbone } from '@transferlab/models';

/**
 * The version of the `TransferMethod` contract this package implements. A
 * method states the version it was written against
 * (`specificationVersion`); the registry and the runner refuse any other.
 * v2: `init`, `trainStep`, `predictParams` and `dispose` may return promises;
 * batches carry typed arrays and create their tensors lazily.
 */
export const TRANSFER_METHOD_SPECIFICATION_VERSION: 'v2' = 'v2';

/** A value, or a promise of it: what a method may return from its asynchronous hooks. */
export type MaybePromise<T> = T | Promise<T>;

/** The part of every method's config that the runner's loop reads. */
export interface LoopConfig {
  /** Passes over the target training set. */
  epochs: number;
  batchSize: number;
}

export interface PaperReference {
  authors: string;
  title: string;
  year: number;
  arxiv?: string;
}

/** What a method needs the runner to provide. */
export interface MethodNeeds {
  /** Backbone weights pretrained on the source task. */
  pretrainedBackbone: boolean;
  /** Source minibatches alongside each target minibatch (joint training, MeRLin with source loss). */
  sourceBatches: boolean;
}

/**
 * Where a method's training steps run: `onnxruntime` compiles the step
 * (forward, autodiff backward, optimizer update) into one ONNX graph;
 * `tfjs` runs it eagerly and is the reference implementation.
 */
export const ENGINES = ['onnxruntime', 'tfjs'] as const;
export type Engine = (typeof ENGINES)[number];

export interface MethodContext<C> {
  readonly config: C;
  /** The engine the runner chose among the method's `engines`. Default tfjs. */
  readonly engine?: Engine;
  /** onnxruntime's intra-op threads for this trial's steps (default 1). */
  readonly threads?: number;
  /** The target network's architecture. */
  readonly backbone: Backbone;
  readonly numClasses: number;
  /** Source-pretrained backbone weights, when `needs.pretrainedBackbone`. Owned by the runner: clone what you keep. */
  readonly pretrained?: Params;
  readonly sourceNumClasses?: number;
  /** The source head learned in pre-training (`source_head.weight`, `source_head.bias`), for methods that distil it (LwF). Owned by the runner. */
  readonly sourceHead?: Params;
  /**
   * The target training set as one batch, for methods that compute something
   * from it before training (DELTA's channel attention, Co-Tuning's category
   * relationship). Owned by the runner and valid during `init` only.
   */
  readonly targetTrain?: Batch;
  /** Seeded stream for this trial's method-side randomness. */
  readonly rng: Rng;
  /** Total number of `trainStep` calls the runner will make (for schedules). */
  readonly totalSteps: number;
}

/**
 * One minibatch. The examples are typed arrays, so an engine that does not
 * run on tfjs reads them without paying for tensors; `x` and `y` are the
 * same values as tfjs tensors, created on first access (a method that never
 * reads them costs nothing). Build one with `createBatch` or
 * `batchFromTensors`; free it with `disposeBatch` (shared/batch.ts).
 */
export interface Batch {
  /** Number of examples. */
  readonly n: number;
  /** Shape of one example. */
  readonly shape: readonly number[];
  /** The inputs, row-major [n, ...shape]. Read-only: the tensors may share it. */
  readonly xData: Float32Array;
  /** The labels, [n]. Read-only. */
  readonly yData: Int32Array;
  /** `xData` as a float32 tensor [n, ...shape]. Owned by the batch: never dispose it. */
  readonly x: tf.Tensor;
  /** `yData` as an int32 tensor [n]. Owned by the batch: never dispose it. */
  readonly y: tf.Tensor;
}

export interface StepInput {
  target: Batch;
  /** Present when `needs.sourceBatches`. */
  source?: Batch;
  /** 0-based index of this step. */
  step: number;
}

/** What `trainStep` returns: the new state (the old one is the method's to reuse or free) and the step's loss. */
export interface StepResult<S> {
  state: S;
  loss: number;
}

/**
 * A transfer method: the plugin a contributor writes. The runner owns the
 * loop (epochs, batches, seeding, evaluation cadence, best-val selection,
 * leak checks, logging); a method only says how to initialise, how to take
 * one step, and how to predict on the target.
 *
 * State is explicit and owned by the method: `trainStep` takes ownership of
 * the old state and returns the new one; `dispose` frees it.
 *
 * The contract is backend-neutral: `init`, `trainStep`, `predictParams` and
 * `dispose` may return a promise (an engine such as onnxruntime runs
 * asynchronously), and the runner awaits them one at a time — never two
 * calls on one state at once. A tfjs method returns plain values. `predict`
 * stays synchronous: it runs inside the runner's `tf.tidy`.
 */
export interface TransferMethod<C extends LoopConfig = LoopConfig, S = unknown> {
  /** The contract version the method implements: `TRANSFER_METHOD_SPECIFICATION_VERSION`. */
  readonly specificationVersion: 'v2';
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly reference?: PaperReference;
  readonly defaults: Readonly<C>;
  /** Merge user options over the defaults and check them; throws a clear error on bad values or unknown keys. */
  validate(options?: Readonly<Record<string, unknown>>): C;
  readonly needs: MethodNeeds;
  /** The engines the method's steps run on. Default: tfjs only. */
  readonly engines?: readonly Engine[];
  init(ctx: MethodContext<C>): MaybePromise<S>;
  /** One update on `input`; the batches belong to the caller (do not dispose them or their tensors). */
  trainStep(state: S, input: StepInput): MaybePromise<StepResult<S>>;
  /** The live weights `predict` uses (not a copy; the runner clones them for best-val selection). */
  predictParams(state: S): MaybePromise<Params>;
  /** Target logits [N, numClasses] for inputs `x`, using `params` (a snapshot or the live ones). */
  predict(state: S, params: Params, x: tf.Tensor): tf.Tensor;
  dispose(state: S): MaybePromise<void>;
  /** Optional numbers about the trained state to record beside the accuracy (e.g. L2T-ww's learned λ per pair). */
  metrics?(state: S): Record<string, number>;
}

/** A method with its config and state types erased, as a registry holds it. */
// biome-ignore lint/suspicious/noExplicitAny: erasing the state type is the point
export type AnyTransferMethod = TransferMethod<any, any>;
