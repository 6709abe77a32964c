import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import type { LinearHead } from '@transferlab/models';
import { type PenaltyFn, supervisedMethod } from '../shared/classifier.js';
import { requireNonNegative, requirePositive } from '../shared/config.js';
import { fitLinearHead, frozenFeatures, requireTargetTrain } from '../shared/host-features.js';
import { headL2 } from '../shared/loss-ops.js';
import { type OptimConfig, pretrainedOptimDefaults } from '../shared/optim.js';
import { channelAttention, featureWeights } from './attention.js';

export { channelAttention, featureWeights } from './attention.js';

export interface DeltaConfig extends OptimConfig {
  /** α: weight of the attention-weighted feature-map distance to the pretrained network. */
  alpha: number;
  /** β: weight of (β/2)‖w‖² over the new head's parameters. */
  beta: number;
  /** The backbone's learning rate relative to the head's. */
  backboneLrMultiplier: number;
  /** Full-batch steps fitting the head the channel attention is measured with. */
  attentionSteps: number;
}

const ID = 'delta';
/** The step value holding the per-feature weights C · w_c / (H·W). */
export const DELTA_WEIGHTS = 'delta:weights';

/**
 * α · ½ Σ_batch Σ_k a_k (FM_k(w, x) − FM_k(w⁰, x))² + β · ½ Σ_head ‖w‖², once
 * for both engines: FM the trained network's features, FM(w⁰) the frozen
 * pretrained network's (inference mode), a the per-feature weights (step
 * value `DELTA_WEIGHTS`). Summed over the batch, as the authors' code and
 * TLlib do, beside a batch-mean cross-entropy.
 */
export function deltaPenalty(head: LinearHead, c: { alpha: number; beta: number }): PenaltyFn {
  return (ops, features) => {
    const drift = ops.sub(features, ops.features(ops.target.x, 'frozen'));
    const weighted = ops.sum(ops.mul(ops.square(drift), ops.value(DELTA_WEIGHTS)));
    return ops.add(ops.scale(weighted, c.alpha / 2), headL2(ops, head, c.beta));
  };
}

/**
 * DELTA (Li et al. 2019): fine-tuning that keeps the network's feature maps
 * close to the pretrained network's on the same inputs, channel by channel,
 * weighted by how much the target task needs each channel (attention
 * measured once before training: see `channelAttention`), plus L2 on the new
 * head. Defaults: the paper's α = β = 0.01, on fine-tuning's optimizer.
 *
 * Deviation: the paper regularises the outputs of four intermediate
 * convolutions of a ResNet; here the backbone's output features — the map
 * the head reads, whatever the backbone (channels last; a vector is C
 * channels of size 1) — and a channel is "removed" by zeroing it in those
 * features (the authors zero the convolution's filter, the same for a
 * convolution without bias). The head the attention is measured with is
 * fitted on the frozen features by full-batch Adam, `attentionSteps` steps
 * (the authors: SGD, 10 epochs of an ImageNet-scale target; the target sets
 * here have tens of examples).
 */
export const delta = supervisedMethod<DeltaConfig>({
  id: ID,
  title: 'DELTA',
  description:
    'Fine-tuning with the features kept close to the pretrained network’s, per channel weighted by target-task attention (loss rise when the channel is zeroed), + β/2‖head‖².',
  reference: {
    authors: 'Li, Xiong, Wang, Rao, Liu, Chen, Huan',
    title:
      'DELTA: DEep Learning Transfer using Feature Map with Attention for Convolutional Networks',
    year: 2019,
    arxiv: '1901.09229',
  },
  defaults: { ...pretrainedOptimDefaults, alpha: 0.01, beta: 0.01, attentionSteps: 100 },
  start: 'pretrained',
  backboneLrMultiplier: (c) => c.backboneLrMultiplier,
  check(c) {
    requireNonNegative(ID, 'alpha', c.alpha);
    requireNonNegative(ID, 'beta', c.beta);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
    requirePositive(ID, 'attentionSteps', c.attentionSteps, true);
  },
  penalty(c, head, backbone, ctx) {
    const train = requireTargetTrain(ID, ctx);
    const dim = backbone.featureDim;
    const channels = backbone.featureShape[backbone.featureShape.length - 1] ?? dim;
    const features = frozenFeatures(backbone, ctx.pretrained as Params, train);
    const labels = tf.tensor1d(train.yData, 'int32');
    const fitted = fitLinearHead(
      features,
      labels,
      ctx.numClasses,
      c.attentionSteps,
      ctx.rng.derive('delta:attention'),
    );
    const attention = channelAttention({
      features,
      labels,
      ...fitted,
      channels,
    });
    tf.dispose([features, labels, fitted.weight, fitted.bias]);
    const weights = featureWeights(attention, dim);
    return {
      terms: deltaPenalty(head, c),
      values: { [DELTA_WEIGHTS]: { type: 'float32', dims: [dim] } },
      stepValues: () => ({ [DELTA_WEIGHTS]: { data: weights, dims: [dim] } }),
    };
  },
});
