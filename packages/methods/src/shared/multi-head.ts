import { cloneParams, type Params } from '@transferlab/core';
import type { MethodContext } from '../types.js';

/**
 * What methods with several heads share (joint training, MeRLin with a
 * source loss): the heads' names — the target head `head` is the one
 * `predict` uses, named like the classifier's so checkpoints and best-val
 * snapshots look the same across methods — and where the backbone starts.
 */
export const TARGET_HEAD = 'head';
export const SOURCE_HEAD = 'source_head';

/** The backbone from the context: a copy of the pretrained weights or a fresh random init. */
export function initialBackbone(
  id: string,
  ctx: MethodContext<{ fromPretrained: boolean }>,
): Params {
  if (!ctx.config.fromPretrained) return ctx.backbone.init(ctx.rng.derive('backbone'));
  if (!ctx.pretrained) {
    throw new Error(
      `method "${id}": fromPretrained is true but no pretrained backbone was given (set fromPretrained: false to start from a random backbone)`,
    );
  }
  return cloneParams(ctx.pretrained);
}

export function requireSourceClasses(id: string, ctx: MethodContext<unknown>): number {
  const c = ctx.sourceNumClasses;
  if (c === undefined || !(c > 1)) {
    throw new Error(
      `method "${id}": needs the source task's number of classes (sourceNumClasses) for its source head, got ${c}`,
    );
  }
  return c;
}
