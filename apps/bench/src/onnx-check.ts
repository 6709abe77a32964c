import { readFile } from 'node:fs/promises';
import { countParams, disposeParams, initBackend } from '@transferlab/core';
import { checkOnnxAgainstRuntime, importOnnx, onnxOperatorCounts } from '@transferlab/models';

/**
 * `pnpm bench onnx-check <model.onnx>`: import the file, run one random batch
 * through the import (tfjs) and through onnxruntime, and describe the model.
 * One JSON object (the contract in docs/contracts.md: `maxAbsDiff` among its fields).
 */
export async function onnxCheck(
  path: string,
  opts: { backend?: string; inputShape?: number[] } = {},
) {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read ONNX file ${path}: ${(err as Error).message}`);
  }
  const backend = await initBackend(opts.backend ? { backend: opts.backend } : {});
  const operators = onnxOperatorCounts(bytes, path);
  const { backbone, params } = importOnnx(bytes, {
    source: path,
    ...(opts.inputShape ? { inputShape: opts.inputShape } : {}),
  });
  const parameterCount = countParams(params);
  disposeParams(params);
  const check = await checkOnnxAgainstRuntime(bytes, {
    source: path,
    ...(opts.inputShape ? { inputShape: opts.inputShape } : {}),
  });
  return {
    file: path,
    backend: backend.name,
    maxAbsDiff: check.maxAbsDiff,
    relDiff: check.relDiff,
    output: check.outputName,
    inputShape: check.inputShape,
    outputShape: check.outputShape,
    opset: backbone.opset,
    operators,
    parameterCount,
    taps: Object.keys(backbone.tapShapes),
  };
}
