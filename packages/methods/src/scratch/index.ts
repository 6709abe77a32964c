import { supervisedMethod } from '../shared/classifier.js';
import type { OptimConfig } from '../shared/optim.js';

export type ScratchConfig = OptimConfig;

/** The no-transfer baseline: the target network from a random initialisation, trained on target data only. */
export const scratch = supervisedMethod<ScratchConfig>({
  id: 'scratch',
  title: 'Train from scratch',
  description: 'Random initialisation, trained on the target only (no transfer).',
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    lr: 1e-3,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
  },
  start: 'random',
  backboneLrMultiplier: () => 1,
});
