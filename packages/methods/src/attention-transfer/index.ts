import * as tf from '@tensorflow/tfjs-core';
import { mergeConfig, requireNonNegative } from '../shared/config.js';
import {
  asMap,
  disposeFeatureTransfer,
  type FeatureTransferOptions,
  type FeatureTransferState,
  featureTransferDefaults,
  featureTransferLogits,
  featureTransferParams,
  featureTransferStep,
  initFeatureTransfer,
  l2twwTargetOptim,
  type TapPair,
  validateFeatureTransferOptions,
} from '../shared/feature-transfer.js';
import {
  featureTransferEngineStep,
  featureTransferOnEngine,
} from '../shared/feature-transfer-engine.js';
import { emitAttentionLoss } from '../shared/feature-transfer-graph.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';

export interface AttentionTransferConfig extends OptimConfig, FeatureTransferOptions {
  /** β in  CE + β/2 · Σ_pairs AT loss (1e3 in the AT reference code). */
  beta: number;
}

export type AttentionTransferState = FeatureTransferState<AttentionTransferConfig>;

const ID = 'attention-transfer';

/**
 * Spatial attention map of a feature map [N, H, W, C]: the mean over
 * channels of the squared activations, flattened and L2-normalised per
 * example → [N, H·W] (the AT reference code's `at(x)`; mean and sum differ
 * by a factor the normalisation removes).
 */
export function attentionMap(map: tf.Tensor4D): tf.Tensor2D {
  const [n] = map.shape;
  const a = tf.reshape(tf.mean(tf.square(map), 3), [n, -1]);
  // F.normalize: a / max(‖a‖, 1e-12), written √max(Σa², 1e-24) so that an
  // all-zero map (dead units) gets a zero gradient, not √'s 0/0, as in PyTorch.
  const norm = tf.sqrt(tf.maximum(tf.sum(tf.square(a), 1, true), 1e-24));
  return tf.div(a, norm) as tf.Tensor2D;
}

/**
 * The AT loss of one pair: mean over examples and positions of the squared
 * difference of the normalised attention maps. Channel counts may differ;
 * when the spatial sizes differ, the source's attention map (before
 * normalisation) is resized bilinearly to the target's.
 */
export function attentionLoss(source: tf.Tensor4D, target: tf.Tensor4D, pair: TapPair): tf.Scalar {
  const [h, w] = pair.targetShape;
  let s = source;
  if (source.shape[1] !== h || source.shape[2] !== w) {
    const att = tf.mean(tf.square(source), 3, true) as tf.Tensor4D;
    s = tf.sqrt(tf.image.resizeBilinear(att, [h, w], false, true)) as tf.Tensor4D;
  }
  return tf.mean(tf.square(tf.sub(attentionMap(s), attentionMap(target)))) as tf.Scalar;
}

/**
 * Attention transfer (Zagoruyko & Komodakis, ICLR 2017), the "AT" baseline
 * of the L2T-ww paper: the target network, trained from scratch, gets
 * CE + β/2 · Σ_pairs ‖Q_S/‖Q_S‖ − Q_T/‖Q_T‖‖² (mean over examples and
 * positions) with Q the channel mean of squared activations. No connectors
 * are learned: only the spatial maps are compared, so source and target
 * taps may have different channel counts. Pairs default to 'one-to-one'
 * (same-level layers); the taps must be feature maps [H, W, C]. Defaults as
 * the AT reference code (szagoruyko/attention-transfer: β = 1e3) except the
 * optimizer, which is L2T-ww's so the baselines compare at equal settings.
 */
export const attentionTransfer: TransferMethod<AttentionTransferConfig, AttentionTransferState> = {
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
  id: ID,
  title: 'Attention transfer (AT)',
  description:
    'Target network from scratch, CE + β/2 × squared distance between normalised spatial attention maps (channel mean of squared activations) of source and target taps.',
  reference: {
    authors: 'Zagoruyko, Komodakis',
    title:
      'Paying More Attention to Attention: Improving the Performance of Convolutional Neural Networks via Attention Transfer',
    year: 2017,
    arxiv: '1612.03928',
  },
  defaults: {
    ...l2twwTargetOptim,
    ...featureTransferDefaults,
    pairs: 'one-to-one',
    beta: 1e3,
  },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  validate(options) {
    const c = mergeConfig(ID, attentionTransfer.defaults, options);
    validateOptimConfig(ID, c);
    validateFeatureTransferOptions(ID, c);
    requireNonNegative(ID, 'beta', c.beta);
    return c;
  },
  engines: ['onnxruntime', 'tfjs'],
  async init(ctx) {
    const state = initFeatureTransfer(ID, ctx, { connectors: false });
    const flat = state.pairs.find(
      (p) => p.sourceShape[0] * p.sourceShape[1] === 1 || p.targetShape[0] * p.targetShape[1] === 1,
    );
    if (flat) {
      await disposeFeatureTransfer(state);
      throw new Error(
        `method "${ID}": pair ${flat.source} → ${flat.target} has no spatial extent (shapes [${flat.sourceShape}] and [${flat.targetShape}]): attention maps need conv feature maps`,
      );
    }
    return featureTransferOnEngine(state, ctx, ({ g, pairs, targetTaps, source }) =>
      emitAttentionLoss(g, { pairs, targetTaps, sourceRaw: source.raw, beta: ctx.config.beta }),
    );
  },
  trainStep(state, input) {
    if (state.engine) return featureTransferEngineStep(state, input);
    return featureTransferStep(state, input.target, input.step, (_p, targetTaps, sourceTaps) => {
      let total: tf.Tensor = tf.scalar(0);
      for (const pair of state.pairs) {
        total = tf.add(
          total,
          attentionLoss(
            sourceTaps[pair.source] as tf.Tensor4D,
            asMap(targetTaps[pair.target] as tf.Tensor),
            pair,
          ),
        );
      }
      return tf.mul(total, state.config.beta / 2) as tf.Scalar;
    });
  },
  predictParams: featureTransferParams,
  predict: featureTransferLogits,
  dispose: disposeFeatureTransfer,
};
