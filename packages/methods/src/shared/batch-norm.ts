import * as tf from '@tensorflow/tfjs-core';
import { type Params, type TrainStepResult, trainStep } from '@transferlab/core';
import type { ApplyOptions, Backbone, BackboneOutput } from '@transferlab/models';
import type { TrainedModel } from './trained-model.js';

/**
 * The forward passes of one training step, with normalisation in training
 * mode when `training` (PyTorch's `model.train()`): each pass normalises with
 * its batch's statistics and the running statistics are chained from pass to
 * pass (a step with a source and a target batch updates them twice, as two
 * forward calls in PyTorch would). Inside the optimizer's loss closure call
 * `apply`; after the step `commit` writes the final statistics into the new
 * parameters. Without training mode (or without statistics) `apply` is the
 * backbone's inference pass and `commit` returns the parameters unchanged.
 */
export interface NormSession {
  apply(params: Params, x: tf.Tensor, opts?: Omit<ApplyOptions, 'training'>): BackboneOutput;
  /** The parameters with the step's running statistics in place (replaced tensors disposed). */
  commit(params: Params): Params;
  /**
   * The step's final running statistics (undefined without training mode),
   * for a caller that installs them and frees the replaced ones itself; the
   * intermediate ones are freed.
   */
  takeStatistics(): Params | undefined;
  /** Frees the statistics kept so far (after a failed step). */
  dispose(): void;
}

export function normSession(backbone: Backbone, training: boolean): NormSession {
  let latest: Params | undefined;
  let passes = 0;
  const kept: tf.Tensor[] = [];
  return {
    apply(params, x, opts = {}) {
      passes++;
      if (!training) return backbone.apply(params, x, opts);
      const out = backbone.apply(latest ? { ...params, ...latest } : params, x, {
        ...opts,
        training: true,
      });
      if (out.statistics) {
        // Kept past the optimizer's tidy: they become the next pass's (and step's) statistics.
        for (const t of Object.values(out.statistics)) kept.push(tf.keep(t));
        latest = out.statistics;
      }
      return out;
    },
    takeStatistics() {
      if (training && passes === 0) {
        // A loss that ran the backbone itself: its normalisation silently stayed in inference mode.
        throw new Error(
          `normSession: no forward pass of "${backbone.name}" went through this step's session; run every forward pass through the step's norm session (its apply)`,
        );
      }
      const final = latest;
      const finalSet = new Set(Object.values(final ?? {}));
      for (const t of kept) if (!finalSet.has(t)) t.dispose();
      kept.length = 0;
      latest = undefined;
      return final;
    },
    commit(params) {
      const final = this.takeStatistics();
      if (!final) return params;
      for (const name of Object.keys(final)) params[name]?.dispose();
      return { ...params, ...final };
    },
    dispose() {
      for (const t of kept) t.dispose();
      kept.length = 0;
      latest = undefined;
    },
  };
}

/** Whether a trained backbone's normalisation runs in training mode: it trains and has statistics. */
export function trainsBatchNorm(
  backbone: Backbone,
  backboneLrMultiplier: number,
  freezeBatchNorm = false,
): boolean {
  return backboneLrMultiplier > 0 && (backbone.nonTrainable ?? []).length > 0 && !freezeBatchNorm;
}

/**
 * Core's `trainStep` on `model` with the step's forward passes in a
 * `normSession`: the loss gets the session (run every forward pass of the
 * backbone through it), and the new parameters carry the step's running
 * statistics. On failure the kept statistics are freed and the error rethrown.
 */
export function normalizedTrainStep(
  model: TrainedModel,
  lrFactor: number,
  loss: (params: Params, norm: NormSession) => tf.Scalar,
): TrainStepResult {
  const norm = normSession(model.backbone, model.trainBatchNorm);
  let result: TrainStepResult;
  try {
    result = trainStep({
      params: model.params,
      state: model.optState,
      optimizer: model.optimizer,
      trainable: model.trainable,
      lrFactor,
      loss: (p) => loss(p, norm),
    });
  } catch (err) {
    norm.dispose();
    throw err;
  }
  return { ...result, params: norm.commit(result.params) };
}
