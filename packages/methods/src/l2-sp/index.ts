import type { LinearHead } from '@transferlab/models';
import { supervisedMethod } from '../shared/classifier.js';
import { requireNonNegative } from '../shared/config.js';
import { headL2, type LossFn } from '../shared/loss-ops.js';
import { type OptimConfig, pretrainedOptimDefaults } from '../shared/optim.js';

export interface L2SpConfig extends OptimConfig {
  /** α: weight of (α/2)‖w − w⁰‖² over the backbone's trained parameters (w⁰ the pretrained start). */
  alpha: number;
  /** β: weight of (β/2)‖w‖² over the new head's parameters. */
  beta: number;
  /** The backbone's learning rate relative to the head's. */
  backboneLrMultiplier: number;
}

const ID = 'l2-sp';

/**
 * (α/2) Σ_backbone ‖w − w⁰‖² + (β/2) Σ_head ‖w‖², once for both engines (the
 * cross-entropy is the classifier's). w⁰ is the frozen copy of the start.
 */
export function l2SpPenalty(
  head: LinearHead,
  backboneParams: readonly string[],
  c: { alpha: number; beta: number },
): LossFn {
  return (ops) => {
    let total = ops.constant(0);
    for (const name of backboneParams) {
      const drift = ops.sub(ops.param(name), ops.param(name, 'frozen'));
      total = ops.add(total, ops.scale(ops.sum(ops.square(drift)), c.alpha / 2));
    }
    return ops.add(total, headL2(ops, head, c.beta));
  };
}

/**
 * L2-SP (Li, Grandvalet & Davoine 2018): fine-tuning with the backbone pulled
 * toward its pretrained starting point instead of toward zero, and plain L2
 * on the new head. The paper penalises weights; as TLlib does, every trained
 * backbone parameter is penalised (normalisation statistics are not trained
 * and are not). Defaults: the paper's α = 0.1, β = 0.01, on fine-tuning's
 * optimizer settings.
 */
export const l2Sp = supervisedMethod<L2SpConfig>({
  id: ID,
  title: 'L2-SP',
  description:
    'Fine-tuning regularised toward the pretrained weights: CE + α/2‖w − w⁰‖² (backbone) + β/2‖w‖² (head).',
  reference: {
    authors: 'Li, Grandvalet, Davoine',
    title: 'Explicit Inductive Bias for Transfer Learning with Convolutional Networks',
    year: 2018,
    arxiv: '1802.01483',
  },
  defaults: { ...pretrainedOptimDefaults, alpha: 0.1, beta: 0.01 },
  start: 'pretrained',
  backboneLrMultiplier: (c) => c.backboneLrMultiplier,
  check(c) {
    requireNonNegative(ID, 'alpha', c.alpha);
    requireNonNegative(ID, 'beta', c.beta);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
  },
  penalty(c, head, backbone) {
    const statistics = new Set(backbone.nonTrainable ?? []);
    const trained = Object.keys(backbone.paramShapes).filter((n) => !statistics.has(n));
    return l2SpPenalty(head, c.backboneLrMultiplier > 0 ? trained : [], c);
  },
});
