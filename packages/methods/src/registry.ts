import { createRegistry, type Registry } from '@transferlab/core';
import { fineTune } from './fine-tune/index.js';
import { joint } from './joint/index.js';
import { linearProbe } from './linear-probe/index.js';
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
];

export function createMethodRegistry(
  methods: readonly AnyTransferMethod[] = builtinMethods,
): Registry<AnyTransferMethod> {
  return createRegistry('method', methods);
}
