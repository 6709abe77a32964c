/**
 * The op table: every op the builder can infer shapes for and the autodiff
 * can differentiate through, each with its gradient rule. A plain object
 * assembled from the per-family tables.
 */
import { elementwiseRules } from './elementwise.js';
import { linearRules } from './linear.js';
import { nnRules } from './nn.js';
import { reduceRules } from './reduce.js';
import { shapeRules } from './shape.js';
import type { OpRule } from './types.js';

export const OP_RULES: Readonly<Record<string, OpRule>> = {
  ...elementwiseRules,
  ...linearRules,
  ...shapeRules,
  ...reduceRules,
  ...nnRules,
};

/** Ops with a gradient rule (the autodiff can go back through them). */
export const DIFFERENTIABLE_OPS: readonly string[] = Object.entries(OP_RULES)
  .filter(([, r]) => r.grad)
  .map(([op]) => op)
  .sort();

export type { GradContext, OpRule } from './types.js';
