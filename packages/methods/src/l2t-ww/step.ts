import * as tf from '@tensorflow/tfjs-core';
import {
  DivergenceError,
  disposeReplaced,
  type Optimizer,
  type OptimizerState,
  type Params,
  softmaxCrossEntropy,
  valueAndGrads,
} from '@transferlab/core';
import type { Backbone } from '@transferlab/models';
import { normSession } from '../shared/batch-norm.js';
import {
  type FeatureTransferState,
  matchingLoss,
  resizeToTarget,
  sourceTaps,
  type TapPair,
} from '../shared/feature-transfer.js';
import { trainedModelLrFactor } from '../shared/trained-model.js';
import type { StepInput, StepResult } from '../types.js';
import { ID, type L2tWwConfig } from './config.js';
import type { L2tWwEngine } from './engine.js';
import { metaGradient } from './lookahead.js';
import { metaOutputs } from './meta-nets.js';

/** Running statistics of the meta-nets' outputs, per pair. */
export interface PairStats {
  lambdaLast: number;
  lambdaSum: number;
  entropyLast: number;
  entropySum: number;
}

export interface L2tWwState extends FeatureTransferState<L2tWwConfig> {
  /** The meta-networks' weights (tfjs); empty on the engine, which holds them (`engine.metaState()`). */
  meta: Params;
  readonly metaOptimizer: Optimizer;
  metaState: OptimizerState;
  readonly stats: readonly PairStats[];
  readonly steps: number;
  readonly lastMetaLoss: number;
}

/**
 * What each step needs from the frozen source for a batch: per pair, the
 * source map at the target tap's size; per source tap, the globally
 * average-pooled map (the meta-networks' input).
 */
export function sourceInputs(
  source: { backbone: Backbone; params: Params },
  pairs: readonly TapPair[],
  x: tf.Tensor,
): { sourceMaps: tf.Tensor4D[]; pooled: Record<string, tf.Tensor2D> } {
  const taps = sourceTaps(source, pairs, x);
  return {
    sourceMaps: pairs.map((p) => resizeToTarget(taps[p.source] as tf.Tensor4D, p)),
    pooled: Object.fromEntries(
      Object.entries(taps).map(([n, m]) => [n, tf.mean(m, [1, 2]) as tf.Tensor2D]),
    ),
  };
}

type Update = { params: Params; state: OptimizerState };

/** Keeps an optimizer update's tensors out of the surrounding tidy. */
function keepUpdate(u: Update): Update {
  for (const t of [...Object.values(u.params), ...Object.values(u.state.slots)]) tf.keep(t);
  return u;
}

function keepAll<T extends { weights: tf.Tensor2D[] | null; lambdas: tf.Tensor1D[] | null }>(
  o: T,
): T {
  for (const t of [...(o.weights ?? []), ...(o.lambdas ?? [])]) tf.keep(t);
  return o;
}

/** λ mean and normalised channel-weight entropy (1 = uniform) per pair, for the minibatch. */
function pairStatistics(
  state: L2tWwState,
  out: { weights: tf.Tensor2D[] | null; lambdas: tf.Tensor1D[] | null },
): { lambda: number[]; entropy: number[] } {
  const values = tf.tidy(() => {
    const parts = state.pairs.flatMap((p) => {
      const w = out.weights?.[p.index];
      const lam = out.lambdas?.[p.index];
      const ent = w
        ? tf.div(
            tf.mean(tf.neg(tf.sum(tf.mul(w, tf.log(tf.add(w, 1e-12))), 1))),
            Math.log(p.sourceShape[2]),
          )
        : tf.scalar(1);
      return [lam ? tf.mean(lam) : tf.scalar(1), ent];
    });
    return parts.length ? tf.stack(parts) : tf.zeros([0]);
  });
  const data = values.dataSync();
  values.dispose();
  return {
    lambda: state.pairs.map((p) => data[2 * p.index] as number),
    entropy: state.pairs.map((p) => data[2 * p.index + 1] as number),
  };
}

/**
 * One L2T-ww step on `input.target`: the real step of the target network,
 * then the meta-step (see `l2tWw`). On failure the old state is left intact.
 */
export function l2twwStep(state: L2tWwState, input: StepInput): StepResult<L2tWwState> {
  const { x, y } = input.target;
  const c = state.config;
  const lrFactor = trainedModelLrFactor(state, input.step);
  const targetTapNames = [...new Set(state.pairs.map((p) => p.target))];
  const src = tf.tidy(() => sourceInputs(state.source, state.pairs, x));
  let frozen: { weights: tf.Tensor2D[] | null; lambdas: tf.Tensor1D[] | null } = {
    weights: null,
    lambdas: null,
  };
  tf.tidy(() => {
    frozen = keepAll(metaOutputs(state.meta, state.pairs, src.pooled, c.whereActivation));
  });
  const owned = [
    ...src.sourceMaps,
    ...Object.values(src.pooled),
    ...(frozen.weights ?? []),
    ...(frozen.lambdas ?? []),
  ];
  let real: Update | undefined;
  let meta: Update | undefined;
  // A batch-normalised target trains in training mode; its running
  // statistics come from this real step's forward pass, never from the optimizer.
  const norm = normSession(state.backbone, state.trainBatchNorm);
  try {
    const stats = pairStatistics(state, frozen);
    // (1) The real step on CE + matching; the meta-nets' outputs are constants here.
    let loss = Number.NaN;
    tf.tidy(() => {
      const { value, grads } = valueAndGrads(
        (p) => {
          const out = norm.apply(p, x, { taps: targetTapNames });
          const ce = softmaxCrossEntropy(state.head.apply(p, out.features), y);
          const match = matchingLoss({
            pairs: state.pairs,
            params: p,
            targetTaps: out.taps,
            sourceMaps: src.sourceMaps,
            weights: frozen.weights,
            lambdas: frozen.lambdas,
            beta: c.beta,
          });
          return tf.add(ce, match) as tf.Scalar;
        },
        state.params,
        state.trainable,
      );
      loss = value.dataSync()[0] as number;
      if (Number.isFinite(loss)) {
        real = keepUpdate(state.optimizer.update(state.params, grads, state.optState, lrFactor));
      }
    });
    if (!real) throw new DivergenceError(input.step, loss);
    const statistics = norm.takeStatistics();
    // Installed like updated weights: the commit below frees the replaced ones.
    if (statistics) real = { ...real, params: { ...real.params, ...statistics } };
    const afterReal: Update = real;

    // (2)–(4) The meta-step from the weights after the real step; the
    // look-ahead weights live and die inside this tidy.
    let metaLoss = Number.NaN;
    if (Object.keys(state.meta).length > 0) {
      tf.tidy(() => {
        const { value, grads } = metaGradient(state.meta, {
          target: state.backbone,
          head: state.head,
          pairs: state.pairs,
          optimizer: state.optimizer,
          params: afterReal.params,
          optState: afterReal.state,
          lrFactor,
          x,
          y,
          sourceMaps: src.sourceMaps,
          pooled: src.pooled,
          beta: c.beta,
          steps: c.lookaheadSteps,
          activation: c.whereActivation,
          mode: c.metaGradient,
        });
        metaLoss = value.dataSync()[0] as number;
        const flat = tf.concat(Object.values(grads).map((g) => tf.reshape(g, [-1])));
        if (!Number.isFinite(metaLoss) || !tf.all(tf.isFinite(flat)).dataSync()[0]) {
          throw new Error(
            `method "${ID}": the meta-gradient is not finite at step ${input.step} (meta-objective ${metaLoss}): training diverged`,
          );
        }
        meta = keepUpdate(state.metaOptimizer.update(state.meta, grads, state.metaState));
      });
    }
    const metaUpdate = meta as Update | undefined;
    // Commit: free what the updates replaced.
    disposeReplaced(state.params, afterReal.params);
    disposeReplaced(state.optState.slots, afterReal.state.slots);
    if (metaUpdate) {
      disposeReplaced(state.meta, metaUpdate.params);
      disposeReplaced(state.metaState.slots, metaUpdate.state.slots);
    }
    const next: L2tWwState = {
      ...state,
      params: afterReal.params,
      optState: afterReal.state,
      meta: metaUpdate?.params ?? state.meta,
      metaState: metaUpdate?.state ?? state.metaState,
      stats: state.stats.map((s, i) => ({
        lambdaLast: stats.lambda[i] as number,
        lambdaSum: s.lambdaSum + (stats.lambda[i] as number),
        entropyLast: stats.entropy[i] as number,
        entropySum: s.entropySum + (stats.entropy[i] as number),
      })),
      steps: state.steps + 1,
      lastMetaLoss: metaLoss,
    };
    return { state: next, loss };
  } catch (err) {
    norm.dispose();
    // Leave the old state intact (the runner disposes it): free the new tensors only.
    const failed = real as Update | undefined;
    if (failed) {
      disposeReplaced(failed.params, state.params);
      disposeReplaced(failed.state.slots, state.optState.slots);
    }
    throw err;
  } finally {
    tf.dispose(owned);
  }
}

/** One L2T-ww step on the onnxruntime engine (engine.ts): the same two updates in one graph run. */
export async function l2twwEngineStep(
  state: L2tWwState,
  input: StepInput,
): Promise<StepResult<L2tWwState>> {
  const engine = state.engine as L2tWwEngine;
  const loss = await engine.step(input.target, input.step);
  const { lambda, entropy, metaLoss } = engine.last;
  return {
    state: {
      ...state,
      stats: state.stats.map((s, i) => ({
        lambdaLast: lambda[i] as number,
        lambdaSum: s.lambdaSum + (lambda[i] as number),
        entropyLast: entropy[i] as number,
        entropySum: s.entropySum + (entropy[i] as number),
      })),
      steps: state.steps + 1,
      lastMetaLoss: metaLoss,
    },
    loss,
  };
}
