/** Convolutions, pooling, normalisation (filled in by the nn rules). */
import type { OpRule } from './types.js';

export const nnRules: Record<string, OpRule> = {};
