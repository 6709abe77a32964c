/**
 * `pnpm bench predict model.onnx IMAGES…`: the top-k classes of each image,
 * prepared as the model's metadata says (the preprocessing `fit` evaluated
 * with) and run by onnxruntime. A file that cannot be read as an image gets
 * its own line; the others go on.
 */
import { readFile } from 'node:fs/promises';
import { applyTransforms, decodeImage, ImageDecodeError } from '@transferlab/datasets';
import { readOnnxMetadata } from '@transferlab/models';
import { openOnnxClassifier } from './onnx-run.js';
import {
  classesFromMetadata,
  hwcToChw,
  inputShapeOf,
  preprocessFromMetadata,
} from './preprocess.js';

export interface PredictOptions {
  /** A model.onnx written by `pnpm bench fit`. */
  model: string;
  images: readonly string[];
  /** Classes shown per image (default 3; at most the number of classes). */
  topK?: number;
  /** Images per onnxruntime run (default 32). */
  batchSize?: number;
  /** Where the lines go (default stdout). */
  write?: (text: string) => void;
}

export type ImagePrediction =
  | {
      path: string;
      ok: true;
      top: { class: string; index: number; probability: number }[];
      /** Every class's logit, index = class. */
      logits: number[];
    }
  | { path: string; ok: false; error: string };

export async function predictCommand(
  opts: PredictOptions,
): Promise<{ predictions: ImagePrediction[]; failed: number }> {
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  const topK = opts.topK ?? 3;
  if (!(Number.isInteger(topK) && topK >= 1))
    throw new Error(`predict: --top must be a positive integer, got ${topK}`);
  const batchSize = opts.batchSize ?? 32;
  if (opts.images.length === 0) throw new Error('predict: give one or more image files');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(opts.model);
  } catch (err) {
    throw new Error(`predict: cannot read model ${opts.model}: ${(err as Error).message}`);
  }
  const meta = readOnnxMetadata(bytes, opts.model);
  const pre = preprocessFromMetadata(meta, opts.model);
  const shape = inputShapeOf(pre);
  const size = shape.reduce((a, b) => a * b, 1);
  const model = await openOnnxClassifier(bytes, opts.model, pre.input);
  const predictions: ImagePrediction[] = [];
  let classes: string[] | undefined;
  try {
    for (let start = 0; start < opts.images.length; start += batchSize) {
      const paths = opts.images.slice(start, start + batchSize);
      // Decode each file; a bad one is reported, the batch is made of the rest.
      const ready: { at: number; path: string; data: Float32Array }[] = [];
      const results: ImagePrediction[] = [];
      for (const [at, path] of paths.entries()) {
        try {
          const image = await decodeImage(path, { channels: pre.channels });
          const out = applyTransforms(pre.transforms, image);
          if (out.height !== pre.height || out.width !== pre.width)
            throw new Error(
              `preprocessing gives ${out.height}×${out.width}, the model takes ${pre.height}×${pre.width}`,
            );
          const data =
            pre.layout === 'NCHW'
              ? hwcToChw(out.data, 1, out.height, out.width, out.channels)
              : out.data;
          ready.push({ at, path, data });
        } catch (err) {
          const reason =
            err instanceof ImageDecodeError
              ? `not a readable image (${err.reason})`
              : (err as Error).message;
          results[at] = { path, ok: false, error: reason };
        }
      }
      if (ready.length > 0) {
        const x = new Float32Array(ready.length * size);
        for (const [i, r] of ready.entries()) x.set(r.data, i * size);
        const { logits, probabilities, k } = await model.run(x, ready.length, shape);
        classes ??= classesFromMetadata(meta, k, opts.model);
        const names = classes;
        ready.forEach((r, i) => {
          const probs = Array.from(probabilities.subarray(i * k, (i + 1) * k));
          const top = probs
            .map((probability, index) => ({ class: names[index] as string, index, probability }))
            .sort((a, b) => b.probability - a.probability || a.index - b.index)
            .slice(0, Math.min(topK, k));
          results[r.at] = {
            path: r.path,
            ok: true,
            top,
            logits: Array.from(logits.subarray(i * k, (i + 1) * k)),
          };
        });
      }
      for (const p of results) {
        predictions.push(p);
        write(
          p.ok
            ? `${p.path}: ${p.top.map((t) => `${t.class} ${(100 * t.probability).toFixed(1)}%`).join(', ')}\n`
            : `${p.path}: ERROR ${p.error}\n`,
        );
      }
    }
  } finally {
    await model.release();
  }
  return { predictions, failed: predictions.filter((p) => !p.ok).length };
}
