/**
 * Fast feature extraction with onnxruntime-node (CPU): for frozen backbones,
 * where no gradient is needed. onnxruntime-node is loaded on first use, so
 * importing @transferlab/models never loads the native addon.
 *
 * Install note: onnxruntime-node's postinstall script downloads CUDA files
 * and fails offline; it is not needed for the CPU binary, which ships inside
 * the npm package. pnpm 10 skips dependency build scripts by default; with
 * npm, set ONNXRUNTIME_NODE_INSTALL=skip.
 */

import {
  decodeModel,
  loadOnnxRuntime,
  type OrtSession,
  realInputs,
  valueInfoDims,
} from '@transferlab/graph';

export interface OnnxRuntimeExtractorOptions {
  /** Threads for one operator (onnxruntime's intra-op pool). Default 1. */
  intraOpNumThreads?: number;
  /** Examples per session run. Default 256. */
  batchSize?: number;
  /** Output to return. Default: the model's first output. */
  output?: string;
  /** Shape of one input example, when the file leaves dimensions symbolic. */
  inputShape?: readonly number[];
  /** Name used in error messages. */
  source?: string;
}

export interface OnnxRuntimeExtractor {
  readonly inputName: string;
  readonly outputName: string;
  /** Shape of one input example. */
  readonly inputShape: readonly number[];
  /**
   * Run `n` examples stored row-major in `x` (n × product(inputShape) values);
   * returns the outputs row-major (n × output size).
   */
  run(x: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export async function createOnnxRuntimeExtractor(
  bytes: Uint8Array,
  opts: OnnxRuntimeExtractorOptions = {},
): Promise<OnnxRuntimeExtractor> {
  const source = opts.source ?? '<onnx bytes>';
  const batchSize = opts.batchSize ?? 256;
  if (!(Number.isInteger(batchSize) && batchSize > 0))
    throw new Error(
      `createOnnxRuntimeExtractor: batchSize must be a positive integer, got ${batchSize}`,
    );
  const threads = opts.intraOpNumThreads ?? 1;
  const model = decodeModel(bytes, source);
  const inputs = realInputs(model.graph ?? {});
  if (inputs.length !== 1)
    throw new Error(`${source}: expected exactly one graph input, found ${inputs.length}`);
  const input = inputs[0] as (typeof inputs)[number];
  const dims = valueInfoDims(input) ?? [];
  const inputShape = opts.inputShape ? [...opts.inputShape] : dims.slice(1);
  if (inputShape.length === 0 || inputShape.some((d) => typeof d !== 'number'))
    throw new Error(
      `${source}: input "${input.name}" has shape [${dims.map((d) => d ?? '?')}]; pass inputShape`,
    );
  const shape = inputShape as number[];
  const exampleSize = shape.reduce((a, b) => a * b, 1);

  const ort = await loadOnnxRuntime();
  let session: OrtSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    throw new Error(`${source}: onnxruntime could not load the model: ${(err as Error).message}`);
  }
  const inputName = input.name ?? session.inputNames[0] ?? '';
  const outputName = opts.output ?? session.outputNames[0] ?? '';
  if (!session.outputNames.includes(outputName)) {
    await session.release();
    throw new Error(
      `${source}: no output "${outputName}" (outputs: ${session.outputNames.join(', ')})`,
    );
  }
  let disposed = false;

  return {
    inputName,
    outputName,
    inputShape: shape,
    async run(x, n) {
      if (disposed) throw new Error(`${source}: extractor used after dispose()`);
      if (x.length !== n * exampleSize) {
        throw new Error(
          `${source}: ${n} examples of shape [${shape}] need ${n * exampleSize} values, got ${x.length}`,
        );
      }
      let out: Float32Array | undefined;
      let outSize = 0;
      for (let start = 0; start < n; start += batchSize) {
        const b = Math.min(batchSize, n - start);
        const feed = new ort.Tensor(
          'float32',
          x.subarray(start * exampleSize, (start + b) * exampleSize),
          [b, ...shape],
        );
        const result = await session.run({ [inputName]: feed }, [outputName]);
        const y = result[outputName];
        if (!y) throw new Error(`${source}: onnxruntime returned no "${outputName}"`);
        if (y.type !== 'float32')
          throw new Error(`${source}: output "${outputName}" is ${y.type}, not float32`);
        const data = y.data as Float32Array;
        if (!out) {
          outSize = data.length / b;
          out = new Float32Array(n * outSize);
        }
        out.set(data, start * outSize);
        feed.dispose();
        y.dispose();
      }
      return out ?? new Float32Array(0);
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await session.release();
    },
  };
}
