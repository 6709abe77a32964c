import type * as tf from '@tensorflow/tfjs-core';
import type { Params, Rng } from '@transferlab/core';
import type { Backbone } from '@transferlab/models';

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

export interface MethodContext<C> {
  readonly config: C;
  /** The target network's architecture. */
  readonly backbone: Backbone;
  readonly numClasses: number;
  /** Source-pretrained backbone weights, when `needs.pretrainedBackbone`. Owned by the runner: clone what you keep. */
  readonly pretrained?: Params;
  readonly sourceNumClasses?: number;
  /** The source head learned in pre-training (`source_head.weight`, `source_head.bias`), for methods that distil it (LwF). Owned by the runner. */
  readonly sourceHead?: Params;
  /** Seeded stream for this trial's method-side randomness. */
  readonly rng: Rng;
  /** Total number of `trainStep` calls the runner will make (for schedules). */
  readonly totalSteps: number;
}

export interface Batch {
  x: tf.Tensor;
  y: tf.Tensor;
}

export interface StepInput {
  target: Batch;
  /** Present when `needs.sourceBatches`. */
  source?: Batch;
  /** 0-based index of this step. */
  step: number;
}

/**
 * A transfer method: the plugin a contributor writes. The runner owns the
 * loop (epochs, batches, seeding, evaluation cadence, best-val selection,
 * leak checks, logging); a method only says how to initialise, how to take
 * one step, and how to predict on the target.
 *
 * State is explicit and owned by the method: `trainStep` takes ownership of
 * the old state and returns the new one; `dispose` frees it.
 */
export interface TransferMethod<C extends LoopConfig = LoopConfig, S = unknown> {
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly reference?: PaperReference;
  readonly defaults: Readonly<C>;
  /** Merge user options over the defaults and check them; throws a clear error on bad values or unknown keys. */
  validate(options?: Readonly<Record<string, unknown>>): C;
  readonly needs: MethodNeeds;
  init(ctx: MethodContext<C>): S;
  trainStep(state: S, input: StepInput): { state: S; loss: number };
  /** The live weights `predict` uses (not a copy; the runner clones them for best-val selection). */
  predictParams(state: S): Params;
  /** Target logits [N, numClasses] for inputs `x`, using `params` (a snapshot or the live ones). */
  predict(state: S, params: Params, x: tf.Tensor): tf.Tensor;
  dispose(state: S): void;
  /** Optional numbers about the trained state to record beside the accuracy (e.g. L2T-ww's learned λ per pair). */
  metrics?(state: S): Record<string, number>;
}

/** A method with its config and state types erased, as a registry holds it. */
// biome-ignore lint/suspicious/noExplicitAny: erasing the state type is the point
export type AnyTransferMethod = TransferMethod<any, any>;
