import { type Penalty, type PenaltyFn, supervisedMethod } from '../shared/classifier.js';
import { requireNonNegative, requirePositive } from '../shared/config.js';
import { type OptimConfig, pretrainedOptimDefaults } from '../shared/optim.js';
import { smallestSingularVectors } from '../shared/spectral.js';

export interface BssConfig extends OptimConfig {
  /** k: how many of the batch feature matrix's smallest singular values are shrunk. */
  k: number;
  /** η: weight of Σ_{i ≤ k} σ_{-i}². */
  eta: number;
  /** The backbone's learning rate relative to the head's. */
  backboneLrMultiplier: number;
}

const ID = 'bss';
/** The step value holding V_k, the right singular vectors of the k smallest singular values [featureDim, k]. */
export const BSS_DIRECTIONS = 'bss:directions';

/**
 * η ‖F V_k‖², once for both engines: F the batch's features [b, d], V_k
 * (step value `BSS_DIRECTIONS`) computed on the host from the same F before
 * the step. Its value is η Σ_{i ≤ k} σ_{-i}² and, V_k held fixed, its
 * gradient is that sum's (see `smallestSingularVectors`): the SVD's
 * gradient without an SVD op, which ONNX lacks.
 */
export function bssPenalty(eta: number): PenaltyFn {
  return (ops, features) =>
    ops.scale(ops.sum(ops.square(ops.matMul(features, ops.value(BSS_DIRECTIONS)))), eta);
}

/** The penalty with its step value: V_k from the trainer's features of the batch at the current weights. */
export function bssTerms(c: { k: number; eta: number }, featureDim: number): Penalty {
  return {
    terms: bssPenalty(c.eta),
    values: { [BSS_DIRECTIONS]: { type: 'float32', dims: [featureDim, c.k] } },
    async stepValues(trainer, batch) {
      const f = await trainer.features(batch);
      const { v } = smallestSingularVectors(f, batch.n, featureDim, c.k);
      return { [BSS_DIRECTIONS]: { data: v, dims: [featureDim, c.k] } };
    },
  };
}

/**
 * Batch Spectral Shrinkage (Chen et al. 2019): fine-tuning with the k
 * smallest singular values of each batch's feature matrix penalised, the
 * spectral components the paper finds carry negative transfer. Defaults:
 * k = 1, η = 0.001 (the paper's and TLlib's), on fine-tuning's optimizer.
 * The features are the backbone's output (the head's input), as TLlib's.
 * Each step first computes the batch's features at the current weights (a
 * forward pass: on onnxruntime a forward-only session) to find V_k.
 */
export const bss = supervisedMethod<BssConfig>({
  id: ID,
  title: 'BSS',
  description:
    'Fine-tuning + η Σ of the k smallest squared singular values of the batch feature matrix (batch spectral shrinkage).',
  reference: {
    authors: 'Chen, Wang, Fu, Long, Wang',
    title:
      'Catastrophic Forgetting Meets Negative Transfer: Batch Spectral Shrinkage for Safe Transfer Learning',
    year: 2019,
  },
  defaults: { ...pretrainedOptimDefaults, k: 1, eta: 0.001 },
  start: 'pretrained',
  backboneLrMultiplier: (c) => c.backboneLrMultiplier,
  check(c) {
    requirePositive(ID, 'k', c.k, true);
    requireNonNegative(ID, 'eta', c.eta);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
  },
  penalty: (c, _head, backbone) => bssTerms(c, backbone.featureDim),
});
