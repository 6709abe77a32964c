import type * as tf from '@tensorflow/tfjs-core';
import { mergeConfig, requireNonNegative } from '../shared/config.js';
import {
  disposeFeatureTransfer,
  type FeatureTransferOptions,
  type FeatureTransferState,
  featureTransferDefaults,
  featureTransferLogits,
  featureTransferParams,
  featureTransferStep,
  initFeatureTransfer,
  l2twwTargetOptim,
  matchingLoss,
  resizeToTarget,
  validateFeatureTransferOptions,
} from '../shared/feature-transfer.js';
import {
  featureTransferEngineStep,
  featureTransferOnEngine,
} from '../shared/feature-transfer-engine.js';
import { emitMatchingLoss } from '../shared/feature-transfer-graph.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';

export interface FeatureMatchingConfig extends OptimConfig, FeatureTransferOptions {
  /** β: the matching loss's weight (λ is fixed at 1). */
  beta: number;
}

export type FeatureMatchingState = FeatureTransferState<FeatureMatchingConfig>;

const ID = 'feature-matching';

/**
 * Feature matching (FitNets-style hints; the "FM" baselines of the L2T-ww
 * paper): the target network, trained from scratch, gets CE + β × the
 * L2T-ww matching loss with *fixed* weights — uniform over channels (the
 * mean), λ = 1 for every pair. Each pair's target map goes through a learned
 * 1×1 conv into the source's channels; the source map is resized
 * bilinearly when the spatial sizes differ. `pairs`: 'single' (the last
 * source tap with the last target tap, the default), 'one-to-one', 'all',
 * or an explicit list — L2T-ww with learnWhat and learnWhere off and no
 * meta-step.
 */
export const featureMatching: TransferMethod<FeatureMatchingConfig, FeatureMatchingState> = {
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
  id: ID,
  title: 'Feature matching (fixed weights)',
  description:
    'Target network from scratch, CE + β × squared error between source maps and 1×1-conv-mapped target maps on fixed (source tap, target tap) pairs, uniform channel weights.',
  reference: {
    authors: 'Romero, Ballas, Kahou, Chassang, Gatta, Bengio (as a baseline in Jang et al. 2019)',
    title: 'FitNets: Hints for Thin Deep Nets',
    year: 2015,
    arxiv: '1412.6550',
  },
  defaults: {
    ...l2twwTargetOptim,
    ...featureTransferDefaults,
    pairs: 'single',
    beta: 0.5,
  },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  validate(options) {
    const c = mergeConfig(ID, featureMatching.defaults, options);
    validateOptimConfig(ID, c);
    validateFeatureTransferOptions(ID, c);
    requireNonNegative(ID, 'beta', c.beta);
    return c;
  },
  engines: ['onnxruntime', 'tfjs'],
  init: (ctx) =>
    featureTransferOnEngine(
      initFeatureTransfer(ID, ctx, { connectors: true }),
      ctx,
      ({ g, pairs, targetTaps, source, param }) =>
        emitMatchingLoss(g, {
          pairs,
          targetTaps,
          sourceMaps: source.maps,
          param,
          weights: null,
          lambdas: null,
          beta: ctx.config.beta,
        }),
    ),
  trainStep(state, input) {
    if (state.engine) return featureTransferEngineStep(state, input);
    return featureTransferStep(state, input.target, input.step, (p, targetTaps, sourceTaps) =>
      matchingLoss({
        pairs: state.pairs,
        params: p,
        targetTaps,
        sourceMaps: state.pairs.map((pair) =>
          resizeToTarget(sourceTaps[pair.source] as tf.Tensor4D, pair),
        ),
        weights: null,
        lambdas: null,
        beta: state.config.beta,
      }),
    );
  },
  predictParams: featureTransferParams,
  predict: featureTransferLogits,
  dispose: disposeFeatureTransfer,
};
