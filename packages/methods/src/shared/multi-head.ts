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

/**
 * The source head learned in pre-training (`source_head.weight` [featureDim,
 * C_s], `source_head.bias`), from `sourceHead` or inside `pretrained`,
 * checked against the features. Owned by the context: clone what you keep.
 */
export function requireSourceHead(
  id: string,
  ctx: Pick<MethodContext<unknown>, 'sourceHead' | 'pretrained'>,
  featureDim: number,
): Params {
  const w = `${SOURCE_HEAD}.weight`;
  const b = `${SOURCE_HEAD}.bias`;
  const from = ctx.sourceHead ?? ctx.pretrained;
  const weight = from?.[w];
  const bias = from?.[b];
  if (!weight || !bias)
    throw new Error(
      `method "${id}": needs the source head learned in pre-training (${w}, ${b}) as MethodContext.sourceHead; the bench runner passes it`,
    );
  if (weight.rank !== 2 || weight.shape[0] !== featureDim || bias.shape[0] !== weight.shape[1])
    throw new Error(
      `method "${id}": source head shapes [${weight.shape}] / [${bias.shape}] do not fit features of size ${featureDim}`,
    );
  return { [w]: weight, [b]: bias };
}
