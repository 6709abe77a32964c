import { adam, cosineSchedule, type Optimizer, sgd } from '@transferlab/core';
import type { LoopConfig } from '../types.js';
import { requireNonNegative, requireOneOf, requirePositive } from './config.js';

/** Options shared by every method that trains a network with a first-order optimizer. */
export interface OptimConfig extends LoopConfig {
  optimizer: 'adam' | 'sgd';
  lr: number;
  /** SGD momentum (ignored by Adam). */
  momentum: number;
  weightDecay: number;
  schedule: 'constant' | 'cosine';
}

export function validateOptimConfig(methodId: string, c: OptimConfig): void {
  requirePositive(methodId, 'epochs', c.epochs, true);
  requirePositive(methodId, 'batchSize', c.batchSize, true);
  requirePositive(methodId, 'lr', c.lr);
  requireNonNegative(methodId, 'weightDecay', c.weightDecay);
  requireOneOf(methodId, 'optimizer', c.optimizer, ['adam', 'sgd'] as const);
  requireOneOf(methodId, 'schedule', c.schedule, ['constant', 'cosine'] as const);
  if (!(c.momentum >= 0 && c.momentum < 1))
    throw new Error(`method "${methodId}": momentum must be in [0, 1), got ${c.momentum}`);
}

export function createOptimizer(c: OptimConfig, lrScale?: (name: string) => number): Optimizer {
  const common = { lr: c.lr, weightDecay: c.weightDecay, ...(lrScale ? { lrScale } : {}) };
  return c.optimizer === 'adam' ? adam(common) : sgd({ ...common, momentum: c.momentum });
}

export function scheduleFactor(c: OptimConfig, step: number, totalSteps: number): number {
  return c.schedule === 'cosine' ? cosineSchedule(step, totalSteps) : 1;
}

/**
 * Optimizer settings for a pretrained backbone under a new head (fine-tuning
 * and its regularised variants): a new head needs a large step while the
 * pretrained backbone needs a small one, or a random head's gradients wash
 * the features out early.
 */
export const pretrainedOptimDefaults = {
  epochs: 30,
  batchSize: 32,
  optimizer: 'adam',
  lr: 1e-2,
  momentum: 0.9,
  weightDecay: 0,
  schedule: 'constant',
  backboneLrMultiplier: 0.03,
} as const satisfies OptimConfig & { backboneLrMultiplier: number };
