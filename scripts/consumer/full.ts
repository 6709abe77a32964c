import { loadMnist } from '@transferlab/datasets';
import { type HostTensor, OnnxGraphBuilder } from '@transferlab/graph';
import { importOnnx } from '@transferlab/models';

export const pieces: unknown[] = [loadMnist, OnnxGraphBuilder, importOnnx];
export type T = HostTensor;
