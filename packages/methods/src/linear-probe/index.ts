import { supervisedMethod } from '../shared/classifier.js';
import type { OptimConfig } from '../shared/optim.js';

export type LinearProbeConfig = OptimConfig;

/** The source-pretrained backbone frozen; only a new linear head is trained on the target. */
export const linearProbe = supervisedMethod<LinearProbeConfig>({
  id: 'linear-probe',
  title: 'Linear probe',
  description: 'Frozen source-pretrained backbone; a new linear head trained on the target.',
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    lr: 1e-2,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
  },
  start: 'pretrained',
  backboneLrMultiplier: () => 0,
});
