import { createRegistry, type Registry } from '@transferlab/core';
import { attentionTransfer } from './attention-transfer/index.js';
import { bss } from './bss/index.js';
import { coTuning } from './co-tuning/index.js';
import { delta } from './delta/index.js';
import { featureMatching } from './feature-matching/index.js';
import { fineTune } from './fine-tune/index.js';
import { joint } from './joint/index.js';
import { l2Sp } from './l2-sp/index.js';
import { l2tWw } from './l2t-ww/index.js';
import { linearProbe } from './linear-probe/index.js';
import { lwf } from './lwf/index.js';
import { merlin } from './merlin/index.js';
import { scratch } from './scratch/index.js';
import { type AnyTransferMethod, TRANSFER_METHOD_SPECIFICATION_VERSION } from './types.js';

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
  l2Sp,
  delta,
  bss,
  coTuning,
];

/**
 * Throws unless `method` implements the contract version this package
 * expects (`TRANSFER_METHOD_SPECIFICATION_VERSION`): a method written
 * against another version would be called the wrong way (e.g. a promise
 * taken for a state).
 */
export function checkSpecificationVersion(method: {
  readonly id: string;
  readonly specificationVersion?: unknown;
}): void {
  const version = method.specificationVersion;
  if (version !== TRANSFER_METHOD_SPECIFICATION_VERSION) {
    throw new Error(
      `method "${method.id}" implements TransferMethod specification ${version === undefined ? '(none: no specificationVersion)' : JSON.stringify(version)}, but @transferlab/methods expects "${TRANSFER_METHOD_SPECIFICATION_VERSION}"; update the method to the "${TRANSFER_METHOD_SPECIFICATION_VERSION}" contract (see TransferMethod in packages/methods/src/types.ts) and set specificationVersion: '${TRANSFER_METHOD_SPECIFICATION_VERSION}'`,
    );
  }
}

/** A registry of `methods` (default: the built-in ones); refuses a method of another contract version. */
export function createMethodRegistry(
  methods: readonly AnyTransferMethod[] = builtinMethods,
): Registry<AnyTransferMethod> {
  for (const method of methods) checkSpecificationVersion(method);
  return createRegistry('method', methods);
}
