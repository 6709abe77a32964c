import { type BackendInfo, initBackend } from '@transferlab/core';
import { type AnyTransferMethod, fineTune } from '@transferlab/methods';

export const info: Promise<BackendInfo> = initBackend({ backend: 'cpu' });
export const method: AnyTransferMethod = fineTune;
