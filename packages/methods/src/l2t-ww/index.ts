import * as tf from '@tensorflow/tfjs-core';
import {
  adam,
  DivergenceError,
  disposeOptimizerState,
  disposeParams,
  disposeReplaced,
  type Optimizer,
  type OptimizerState,
  type Params,
  softmaxCrossEntropy,
  valueAndGrads,
} from '@transferlab/core';
import { normSession } from '../shared/batch-norm.js';
import { type OptimConfig, validateOptimConfig } from '../shared/classifier.js';
import {
  mergeConfig,
  requireNonNegative,
  requireOneOf,
  requirePositive,
} from '../shared/config.js';
import type { TransferMethod } from '../types.js';
import { type MetaGradientMode, metaGradient } from './lookahead.js';
import { initMetaNets, metaOutputs, WHERE_ACTIVATIONS, type WhereActivation } from './meta-nets.js';
import {
  disposeFeatureTransfer,
  type FeatureTransferOptions,
  type FeatureTransferState,
  featureTransferDefaults,
  featureTransferLogits,
  featureTransferLrFactor,
  initFeatureTransfer,
  l2twwTargetOptim,
  matchingLoss,
  sourceInputs,
  validateFeatureTransferOptions,
} from './transfer.js';

export interface L2tWwConfig extends OptimConfig, FeatureTransferOptions {
  /** β: the matching loss's weight. */
  beta: number;
  /** T: matching-only look-ahead steps per meta-step (then one cross-entropy step). */
  lookaheadSteps: number;
  /** Adam learning rate of the meta-networks. */
  metaLr: number;
  /** Adam (L2) weight decay of the meta-networks. */
  metaWeightDecay: number;
  metaGradient: MetaGradientMode;
  whereActivation: WhereActivation;
  /** Initial bias of the *where* nets (λ ≈ activation(this) at the start). */
  whereBiasInit: number;
  /** Learn channel weights (false: uniform, 1/C). */
  learnWhat: boolean;
  /** Learn λ per pair and example (false: λ = 1). */
  learnWhere: boolean;
}

/** Running statistics of the meta-nets' outputs, per pair. */
interface PairStats {
  lambdaLast: number;
  lambdaSum: number;
  entropyLast: number;
  entropySum: number;
}

export interface L2tWwState extends FeatureTransferState<L2tWwConfig> {
  meta: Params;
  readonly metaOptimizer: Optimizer;
  metaState: OptimizerState;
  readonly stats: readonly PairStats[];
  readonly steps: number;
  readonly lastMetaLoss: number;
}

const ID = 'l2t-ww';

const validateL2tWw = (options?: Readonly<Record<string, unknown>>): L2tWwConfig => {
  const c = mergeConfig(ID, l2tWw.defaults, options);
  validateOptimConfig(ID, c);
  validateFeatureTransferOptions(ID, c);
  requireNonNegative(ID, 'beta', c.beta);
  if (!(Number.isInteger(c.lookaheadSteps) && c.lookaheadSteps >= 1)) {
    // With T = 0 the look-ahead never sees the matching loss: no meta-gradient.
    throw new Error(
      `method "${ID}": lookaheadSteps must be an integer ≥ 1, got ${c.lookaheadSteps}`,
    );
  }
  requirePositive(ID, 'metaLr', c.metaLr);
  requireNonNegative(ID, 'metaWeightDecay', c.metaWeightDecay);
  requireOneOf(ID, 'metaGradient', c.metaGradient, ['exact', 'first-order'] as const);
  requireOneOf(ID, 'whereActivation', c.whereActivation, WHERE_ACTIVATIONS);
  if (c.optimizer !== 'sgd') {
    // Adam's look-ahead update goes through √v, whose derivative is infinite
    // where v = 0 (any weight whose gradient has always been 0, e.g. a dead
    // unit): the meta-gradient would be NaN.
    throw new Error(
      `method "${ID}": optimizer must be 'sgd' (the meta-gradient differentiates through the target optimizer's look-ahead updates, as the reference code's MetaSGD; Adam's √v has an infinite derivative at v = 0), got '${c.optimizer}'`,
    );
  }
  if (!Number.isFinite(c.whereBiasInit)) {
    throw new Error(
      `method "${ID}": whereBiasInit must be a finite number, got ${c.whereBiasInit}`,
    );
  }
  return c;
};

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
 * L2T-ww (learning what and where to transfer; Jang, Lee, Hwang, Shin,
 * ICML 2019). A target network, trained from scratch and possibly of
 * another architecture (`targetBackbone`), receives knowledge from the
 * frozen source network (the runner's backbone with the source-pretrained
 * weights) through a feature-matching loss on (source tap, target tap)
 * pairs; meta-networks decide, per example, *what* to transfer (softmax
 * channel weights) and *where* (λ per pair).
 *
 * Per minibatch (the reference code's loop, alinlab/L2T-ww train_l2t_ww.py):
 * 1. a real step of the target optimizer on CE + matching loss;
 * 2. T look-ahead steps on the matching loss only, then one on CE, from the
 *    weights after (1), recorded differentiably (lookahead.ts);
 * 3. the CE at the look-ahead weights, differentiated back through the
 *    look-ahead steps to the meta-networks (exact second order, momentum-
 *    and weight-decay-aware) → Adam step on the meta-networks;
 * 4. the look-ahead weights are discarded.
 *
 * Defaults from the reference code (train_l2t_ww.py argument defaults):
 * target SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine schedule,
 * batch 64; β = 0.5; T = 2; meta Adam lr 1e-4, weight decay 1e-4; where
 * activation relu6 with bias 1; pairs 'all'. Deviation: 30 epochs instead
 * of 200 (bench scale).
 *
 * Second-order gradients: the look-ahead's gradients run on safe-ops.ts
 * (conv, max-pool and cross-entropy with differentiable gradients), so the
 * meta-gradient is exact on every backend, wasm included; it is checked
 * against finite differences in meta-gradient.test.ts.
 */
export const l2tWw: TransferMethod<L2tWwConfig, L2tWwState> = {
  id: ID,
  title: 'L2T-ww (learning what and where to transfer)',
  description:
    'Target network trained from scratch with CE + feature matching to a frozen source network; meta-networks learn channel weights (what) and per-pair weights λ (where) by differentiating the target CE through look-ahead steps.',
  reference: {
    authors: 'Jang, Lee, Hwang, Shin',
    title: 'Learning What and Where to Transfer',
    year: 2019,
    arxiv: '1905.05901',
  },
  defaults: {
    ...l2twwTargetOptim,
    ...featureTransferDefaults,
    beta: 0.5,
    lookaheadSteps: 2,
    metaLr: 1e-4,
    metaWeightDecay: 1e-4,
    metaGradient: 'exact',
    whereActivation: 'relu6',
    whereBiasInit: 1,
    learnWhat: true,
    learnWhere: true,
  },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  validate: validateL2tWw,
  init(ctx) {
    const base = initFeatureTransfer(ID, ctx, { connectors: true });
    const c = ctx.config;
    const meta = initMetaNets(base.pairs, c, ctx.rng.derive('meta'));
    const metaOptimizer = adam({ lr: c.metaLr, weightDecay: c.metaWeightDecay });
    return {
      ...base,
      meta,
      metaOptimizer,
      metaState: metaOptimizer.init(meta),
      stats: base.pairs.map(() => ({ lambdaLast: 0, lambdaSum: 0, entropyLast: 0, entropySum: 0 })),
      steps: 0,
      lastMetaLoss: Number.NaN,
    };
  },
  trainStep(state, input) {
    const { x, y } = input.target;
    const c = state.config;
    const lrFactor = featureTransferLrFactor(state, input.step);
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
    const norm = normSession(state.target, state.trainBatchNorm);
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
            target: state.target,
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
  },
  predictParams: (state) => state.params,
  predict: featureTransferLogits,
  dispose(state) {
    disposeFeatureTransfer(state);
    disposeParams(state.meta);
    disposeOptimizerState(state.metaState);
  },
  // A function declaration below: hoisted, so it can be referenced here.
  metrics: (state) => l2twwMetrics(state),
};

export interface L2tWwPairSummary {
  source: string;
  target: string;
  /** Mean λ over the last minibatch. */
  lambdaMean: number;
  /** Mean λ over all training steps so far. */
  lambdaMeanOverTraining: number;
  /** Entropy of the channel weights over the last minibatch, divided by log C (1 = uniform). */
  channelEntropy: number;
  channelEntropyOverTraining: number;
}

export interface L2tWwSummary {
  pairs: L2tWwPairSummary[];
  steps: number;
  metaGradient: MetaGradientMode;
  /** Target CE at the look-ahead weights, last step (the meta-objective). */
  lastMetaLoss: number;
}

/** What the meta-networks learned: λ and channel-weight entropy per pair (for reports). */
export function l2twwSummary(state: L2tWwState): L2tWwSummary {
  const n = Math.max(1, state.steps);
  return {
    pairs: state.pairs.map((p, i) => {
      const s = state.stats[i] as PairStats;
      return {
        source: p.source,
        target: p.target,
        lambdaMean: s.lambdaLast,
        lambdaMeanOverTraining: s.lambdaSum / n,
        channelEntropy: s.entropyLast,
        channelEntropyOverTraining: s.entropySum / n,
      };
    }),
    steps: state.steps,
    metaGradient: state.config.metaGradient,
    lastMetaLoss: state.lastMetaLoss,
  };
}

/** The summary flattened into bench metrics: `l2t_lambda:<src>-><tgt>`, `l2t_entropy:<src>-><tgt>`. */
export function l2twwMetrics(state: L2tWwState): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of l2twwSummary(state).pairs) {
    out[`l2t_lambda:${p.source}->${p.target}`] = p.lambdaMean;
    out[`l2t_entropy:${p.source}->${p.target}`] = p.channelEntropy;
  }
  return out;
}
