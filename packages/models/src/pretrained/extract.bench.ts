/**
 * Feature extraction speed for nsfwjs's pretrained MobileNetV2 (224×224×3 →
 * 1280 global-pooled features): tfjs on wasm running the importOnnx backbone
 * (BatchNormalization kept, and folded into the convolutions) against
 * onnxruntime-node on the same ONNX translation with 1 and 2 intra-op threads.
 *
 *   cd /work/main && node --conditions=@transferlab/source --import tsx \
 *     packages/models/src/pretrained/extract.bench.ts [--images 32] [--batch 16] [--repeats 3]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, initBackend } from '@transferlab/core';
import { createOnnxRuntimeExtractor } from '../onnx/runtime.js';
import { loadNsfwMobileNetV2, type NsfwBackbone } from './nsfw.js';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '32' },
    batch: { type: 'string', default: '16' },
    repeats: { type: 'string', default: '3' },
  },
});
const images = Number(args.images);
const batch = Number(args.batch);
const repeats = Number(args.repeats);
const size = 224 * 224 * 3;

const backend = await initBackend({ backend: 'wasm' });
const plain = await loadNsfwMobileNetV2();
const folded = await loadNsfwMobileNetV2({ foldBatchNorm: true });
const rng = createRng(1);
const x = Float32Array.from({ length: images * size }, () => rng.next());

function tfjsExtract(m: NsfwBackbone): () => void {
  return () => {
    for (let start = 0; start < images; start += batch) {
      const b = Math.min(batch, images - start);
      tf.tidy(() => {
        const xb = tf.tensor(x.subarray(start * size, (start + b) * size), [b, 224, 224, 3]);
        m.backbone.apply(m.params, xb).features.dataSync();
      });
    }
  };
}

const ortOpts = { batchSize: batch, output: plain.featuresName };
const ort1 = await createOnnxRuntimeExtractor(plain.onnxBytes, {
  ...ortOpts,
  intraOpNumThreads: 1,
});
const ort2 = await createOnnxRuntimeExtractor(plain.onnxBytes, {
  ...ortOpts,
  intraOpNumThreads: 2,
});
const engines: { name: string; run: () => Promise<void> | void; best: number }[] = [
  { name: `tfjs ${backend.name} (importOnnx)`, run: tfjsExtract(plain), best: Infinity },
  {
    name: `tfjs ${backend.name} (importOnnx, BN folded)`,
    run: tfjsExtract(folded),
    best: Infinity,
  },
  {
    name: 'onnxruntime-node, 1 thread',
    run: async () => {
      await ort1.run(x, images);
    },
    best: Infinity,
  },
  {
    name: 'onnxruntime-node, 2 threads',
    run: async () => {
      await ort2.run(x, images);
    },
    best: Infinity,
  },
];

// Warm up, then time the engines round-robin (best of `repeats` each), so a
// machine whose load changes over time affects them alike.
for (const e of engines) await e.run();
for (let r = 0; r < repeats; r++) {
  for (const e of engines) {
    const t0 = performance.now();
    await e.run();
    e.best = Math.min(e.best, performance.now() - t0);
  }
}
await ort1.dispose();
await ort2.dispose();
disposeParams(plain.params);
disposeParams(folded.params);

console.log(
  `nsfwjs MobileNetV2 features (224×224×3 → 1280), ${images} images, batch ${batch}, ` +
    `best of ${repeats} (round-robin)`,
);
for (const e of engines) {
  console.log(`${e.name.padEnd(40)} ${(images / (e.best / 1000)).toFixed(1).padStart(8)} images/s`);
}
