import { supervisedMethod } from '../shared/classifier.js';
import { type OptimConfig, pretrainedOptimDefaults } from '../shared/optim.js';

export interface FineTuneConfig extends OptimConfig {
  /** The backbone's learning rate relative to the head's (0 freezes it: a linear probe). */
  backboneLrMultiplier: number;
  /**
   * Backbones with BatchNormalization (imported ONNX models): false (default)
   * trains with batch statistics and moving-average running statistics, as
   * PyTorch's model.train(); true keeps the pretrained statistics (inference mode).
   */
  freezeBatchNorm: boolean;
}

/** The whole network trained on the target, starting from the source-pretrained backbone and a new head. */
export const fineTune = supervisedMethod<FineTuneConfig>({
  id: 'fine-tune',
  title: 'Fine-tuning',
  description:
    'Source-pretrained backbone + new head, all trained on the target (backbone lr × backboneLrMultiplier).',
  defaults: { ...pretrainedOptimDefaults, freezeBatchNorm: false },
  start: 'pretrained',
  backboneLrMultiplier: (c) => c.backboneLrMultiplier,
  freezeBatchNorm: (c) => c.freezeBatchNorm,
  check(c) {
    if (!(c.backboneLrMultiplier >= 0)) {
      throw new Error(
        `method "fine-tune": backboneLrMultiplier must be ≥ 0, got ${c.backboneLrMultiplier}`,
      );
    }
  },
});
