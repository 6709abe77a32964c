import {
  mergeConfig,
  requireNonNegative,
  requireOneOf,
  requirePositive,
} from '../shared/config.js';
import {
  type FeatureTransferOptions,
  featureTransferDefaults,
  l2twwTargetOptim,
  validateFeatureTransferOptions,
} from '../shared/feature-transfer.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import type { MetaGradientMode } from './lookahead.js';
import { WHERE_ACTIVATIONS, type WhereActivation } from './meta-nets.js';

export const ID = 'l2t-ww';

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

/** The reference code's defaults (train_l2t_ww.py), 30 epochs instead of 200: see `l2tWw`. */
export const l2twwDefaults: Readonly<L2tWwConfig> = {
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
};

export const validateL2tWw = (options?: Readonly<Record<string, unknown>>): L2tWwConfig => {
  const c = mergeConfig(ID, l2twwDefaults, options);
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
