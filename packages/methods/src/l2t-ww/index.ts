import { adam, disposeOptimizerState, disposeParams } from '@transferlab/core';
import {
  disposeFeatureTransfer,
  featureTransferLogits,
  featureTransferParams,
  initFeatureTransfer,
} from '../shared/feature-transfer.js';
import { disposeTrainedModel } from '../shared/trained-model.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';
import { ID, type L2tWwConfig, l2twwDefaults, validateL2tWw } from './config.js';
import { compileL2tWw, type L2tWwEngine } from './engine.js';
import { initMetaNets } from './meta-nets.js';
import { type L2tWwState, l2twwEngineStep, l2twwStep } from './step.js';
import { l2twwMetrics } from './summary.js';

export { type L2tWwConfig, l2twwDefaults } from './config.js';
export { type L2tWwState, sourceInputs } from './step.js';
export {
  type L2tWwPairSummary,
  type L2tWwSummary,
  l2twwMetrics,
  l2twwSummary,
} from './summary.js';

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
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
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
  defaults: l2twwDefaults,
  needs: { pretrainedBackbone: true, sourceBatches: false },
  validate: validateL2tWw,
  engines: ['onnxruntime', 'tfjs'],
  async init(ctx) {
    const base = initFeatureTransfer(ID, ctx, { connectors: true });
    const c = ctx.config;
    const meta = initMetaNets(base.pairs, c, ctx.rng.derive('meta'));
    const metaOptimizer = adam({ lr: c.metaLr, weightDecay: c.metaWeightDecay });
    const state: L2tWwState = {
      ...base,
      meta,
      metaOptimizer,
      metaState: metaOptimizer.init(meta),
      stats: base.pairs.map(() => ({ lambdaLast: 0, lambdaSum: 0, entropyLast: 0, entropySum: 0 })),
      steps: 0,
      lastMetaLoss: Number.NaN,
    };
    if (ctx.engine !== 'onnxruntime') return state;
    let engine: L2tWwEngine;
    try {
      engine = await compileL2tWw(state, ctx.threads);
    } catch (err) {
      await l2tWw.dispose(state);
      throw err;
    }
    // The engine holds copies of the weights, the optimizers' slots and the meta-networks.
    disposeTrainedModel(state);
    disposeParams(meta);
    disposeOptimizerState(state.metaState);
    return { ...state, meta: {}, engine };
  },
  trainStep: (state, input) =>
    state.engine ? l2twwEngineStep(state, input) : l2twwStep(state, input),
  predictParams: featureTransferParams,
  predict: featureTransferLogits,
  async dispose(state) {
    const onEngine = state.engine !== undefined;
    await disposeFeatureTransfer(state);
    if (onEngine) return;
    disposeParams(state.meta);
    disposeOptimizerState(state.metaState);
  },
  metrics: l2twwMetrics,
};
