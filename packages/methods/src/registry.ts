import { createRegistry, type Registry } from '@transferlab/core';
import { attentionTransfer } from './attention-transfer/index.js';
import { featureMatching } from './feature-matching/index.js';
import { fineTune } from './fine-tune/index.js';
import { joint } from './joint/index.js';
import { l2tWw } from './l2t-ww/index.js';
import { linearProbe } from './linear-probe/index.js';
import { lwf } from './lwf/index.js';
import { merlin } from './merlin/index.js';
import { scratch } from './scratch/index.js';
import type { AnyTransferMethod } from './types.js';

/** The built-in methods, as an explicit list: adding a method means adding it here. */
export const builtinMethods: readonly AnyTransferMethod[] = [
  scratch,
  linearProbe,
  fineTune,
  joint,
  merlin,
  l2tWw,
  featureMatching,
  attentionTransfer,
  lwf,
];

export function createMethodRegistry(
  methods: readonly AnyTransferMethod[] = builtinMethods,
): Registry<AnyTransferMethod> {
  return createRegistry('method', methods);
}
