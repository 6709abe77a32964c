/**
 * Compare the project's ONNX import (tfjs, active backend) with onnxruntime
 * on the same file and the same random input — what `pnpm bench onnx-check`
 * reports.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams } from '@transferlab/core';
import { onnx } from '@transferlab/graph';
import { importOnnx } from './import.js';
import { createOnnxRuntimeExtractor } from './runtime.js';

export interface OnnxCheckOptions {
  /** Name used in error messages. */
  source?: string;
  /** Output to compare. Default: the graph's first output. */
  output?: string;
  /** Number of examples. Default 4. */
  n?: number;
  /** Seed of the standard-normal input. Default 0. */
  seed?: number;
  /** Shape of one input example, when the file leaves dimensions symbolic. */
  inputShape?: readonly number[];
}

export interface OnnxCheckResult {
  source: string;
  outputName: string;
  inputShape: number[];
  outputShape: number[];
  n: number;
  /** max |import − onnxruntime| */
  maxAbsDiff: number;
  /** max |onnxruntime| (the scale of the output) */
  maxAbs: number;
  /** maxAbsDiff / maxAbs */
  relDiff: number;
}

export async function checkOnnxAgainstRuntime(
  bytes: Uint8Array,
  opts: OnnxCheckOptions = {},
): Promise<OnnxCheckResult> {
  const source = opts.source ?? '<onnx bytes>';
  const n = opts.n ?? 4;
  const { backbone, params } = importOnnx(bytes, {
    source,
    ...(opts.output ? { features: opts.output } : {}),
    ...(opts.inputShape ? { inputShape: opts.inputShape } : {}),
  });
  const inputShape = [...backbone.inputShape];
  const x = createRng(opts.seed ?? 0).normalArray(n * inputShape.reduce((a, b) => a * b, 1));
  let ours: Float32Array;
  try {
    ours = tf.tidy(
      () =>
        new Float32Array(
          backbone.apply(params, tf.tensor(x, [n, ...inputShape])).features.dataSync(),
        ),
    );
  } finally {
    disposeParams(params);
  }
  const ort = await createOnnxRuntimeExtractor(bytes, {
    source,
    output: backbone.featuresName,
    inputShape,
  });
  let theirs: Float32Array;
  try {
    theirs = await ort.run(x, n);
  } finally {
    await ort.dispose();
  }
  if (theirs.length !== ours.length) {
    throw new Error(
      `${source}: output "${backbone.featuresName}" has ${ours.length} values here but ${theirs.length} in onnxruntime`,
    );
  }
  let maxAbsDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < ours.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs((ours[i] as number) - (theirs[i] as number)));
    maxAbs = Math.max(maxAbs, Math.abs(theirs[i] as number));
  }
  return {
    source,
    outputName: backbone.featuresName,
    inputShape,
    outputShape: [...backbone.featureShape],
    n,
    maxAbsDiff,
    maxAbs,
    relDiff: maxAbs > 0 ? maxAbsDiff / maxAbs : maxAbsDiff,
  };
}

/** Operator types in a model's main graph with their counts (for `onnx-check`); malformed files throw naming `source`. */
export function onnxOperatorCounts(
  bytes: Uint8Array,
  source = '<onnx bytes>',
): Record<string, number> {
  let model: ReturnType<typeof onnx.ModelProto.decode>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new Error(`${source}: not a valid ONNX model: ${(err as Error).message}`);
  }
  const counts: Record<string, number> = {};
  for (const node of model.graph?.node ?? []) {
    const op = node.domain ? `${node.domain}.${node.opType}` : String(node.opType);
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}
