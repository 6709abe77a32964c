import type { Rng } from '@transferlab/core';
import type { Backbone, LinearHead } from '@transferlab/models';
import {
  mergeConfig,
  requireNonNegative,
  requireOneOf,
  requirePositive,
} from '../shared/config.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import type { NetworkTrainer } from '../shared/trainer.js';
import type { MerlinHead } from './head-fit.js';
import { splitSizes } from './split.js';

export const ID = 'merlin';

export interface MerlinConfig extends OptimConfig {
  /** The head fit in the inner problem: 'kernel' (cosine kernel ridge, the reference code's) or 'ridge' (linear ridge on raw features). */
  head: MerlinHead;
  /** Ridge λ > 0, relative to the mean squared feature norm (absolute for the cosine kernel). */
  lambda: number;
  /** Share of each minibatch used as the val half. */
  valFraction: number;
  /** 0: closed-form head; k > 0: k differentiable gradient steps from zero (squared loss). */
  innerSteps: number;
  /** Normalised inner step size in (0, 2), used when innerSteps > 0. */
  innerLr: number;
  /** Multiplies the head's val predictions before the cross-entropy (1 = the reference code). */
  logitScale: number;
  /** ρ in  meta loss + ρ · source CE; 0 ignores the source batches. */
  sourceWeight: number;
  /** Start from the source-pretrained backbone (true) or a random one (false). */
  fromPretrained: boolean;
  /** The backbone's learning rate relative to the evaluation (and source) head's. */
  backboneLrMultiplier: number;
}

export interface MerlinState {
  readonly config: MerlinConfig;
  readonly backbone: Backbone;
  /** The evaluation head (`head`, what predict uses) and, with a source loss, the source head. */
  readonly heads: { readonly target: LinearHead; readonly source?: LinearHead };
  readonly trainer: NetworkTrainer;
  /** The closed form of the head fit, chosen once from the full batch's split (both forms are the same function). */
  readonly form: 'primal' | 'dual';
  readonly numClasses: number;
  /** Split streams are derived from this per step, so a step's split depends only on the seed and the step index. */
  readonly splitRng: Rng;
}

/** The reference code's settings, applied to a pretrained network: see `merlin`. */
export const merlinDefaults: Readonly<MerlinConfig> = {
  epochs: 30,
  batchSize: 64,
  optimizer: 'adam',
  // The evaluation head is new and needs a large step; the backbone runs at
  // lr × backboneLrMultiplier = 1e-3, the reference code's Adam rate.
  lr: 1e-2,
  momentum: 0.9,
  weightDecay: 0,
  schedule: 'constant',
  head: 'kernel',
  lambda: 1e-4,
  valFraction: 0.5,
  innerSteps: 0,
  innerLr: 1,
  logitScale: 1,
  sourceWeight: 0,
  fromPretrained: true,
  backboneLrMultiplier: 0.1,
};

/** Smallest batch size whose two halves each hold at least `numClasses` examples. */
export function minBatchSize(valFraction: number, numClasses: number): number {
  for (let b = 2 * numClasses; b < 1e6; b++) {
    const { nTrain, nVal } = splitSizes(b, valFraction);
    if (nTrain >= numClasses && nVal >= numClasses) return b;
  }
  return Number.POSITIVE_INFINITY;
}

export function validateMerlin(options?: Readonly<Record<string, unknown>>): MerlinConfig {
  const c = mergeConfig(ID, merlinDefaults, options);
  validateOptimConfig(ID, c);
  requireOneOf(ID, 'head', c.head, ['kernel', 'ridge'] as const);
  if (!(c.lambda > 0 && Number.isFinite(c.lambda))) {
    throw new Error(
      `method "${ID}": lambda must be > 0 (the ridge term keeps the head's linear system positive definite), got ${c.lambda}`,
    );
  }
  if (!(c.valFraction > 0 && c.valFraction < 1)) {
    throw new Error(`method "${ID}": valFraction must be in (0, 1), got ${c.valFraction}`);
  }
  const { nTrain, nVal } = splitSizes(c.batchSize, c.valFraction);
  if (nTrain < 1 || nVal < 1) {
    throw new Error(
      `method "${ID}": batchSize ${c.batchSize} with valFraction ${c.valFraction} leaves the ${nTrain < 1 ? 'train' : 'val'} half empty (${nTrain} train / ${nVal} val examples)`,
    );
  }
  if (!(Number.isInteger(c.innerSteps) && c.innerSteps >= 0)) {
    throw new Error(`method "${ID}": innerSteps must be an integer ≥ 0, got ${c.innerSteps}`);
  }
  if (!(c.innerLr > 0 && c.innerLr < 2)) {
    throw new Error(
      `method "${ID}": innerLr must be in (0, 2) (it is normalised by the features' scale; ≥ 2 diverges), got ${c.innerLr}`,
    );
  }
  requirePositive(ID, 'logitScale', c.logitScale);
  requireNonNegative(ID, 'sourceWeight', c.sourceWeight);
  requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
  return c;
}
