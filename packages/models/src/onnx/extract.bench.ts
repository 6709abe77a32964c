/**
 * Feature extraction speed for the built-in `cnn` backbone (28×28×1 input,
 * batch 256): tfjs on wasm (the project's backbone, and the same weights
 * exported and re-imported from ONNX) against onnxruntime-node with 1 and 2
 * intra-op threads.
 *
 *   cd /work/main && node --conditions=@transferlab/source --import tsx \
 *     packages/models/src/onnx/extract.bench.ts [--images 4096] [--batch 256]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend } from '@transferlab/core';
import { createBackboneRegistry } from '../registry.js';
import { exportBackboneToOnnx } from './export.js';
import { importOnnx } from './import.js';
import { createOnnxRuntimeExtractor } from './runtime.js';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '4096' },
    batch: { type: 'string', default: '256' },
    repeats: { type: 'string', default: '5' },
  },
});
const images = Number(args.images);
const batch = Number(args.batch);
const repeats = Number(args.repeats);

const backend = await initBackend({ backend: 'wasm' });
const backbone = createBackboneRegistry().get('cnn').create([28, 28, 1]);
const params = backbone.init(createRng(0));
const x = createRng(1).normalArray(images * 784);

function tfjsExtract(apply: (x: tf.Tensor) => tf.Tensor): () => void {
  return () => {
    for (let start = 0; start < images; start += batch) {
      const b = Math.min(batch, images - start);
      tf.tidy(() => {
        const xb = tf.tensor(x.subarray(start * 784, (start + b) * 784), [b, 28, 28, 1]);
        apply(xb).dataSync();
      });
    }
  };
}

const bytes = exportBackboneToOnnx(backbone, params);
const imported = importOnnx(bytes, { source: 'cnn.onnx' });
const ort1 = await createOnnxRuntimeExtractor(bytes, { intraOpNumThreads: 1, batchSize: batch });
const ort2 = await createOnnxRuntimeExtractor(bytes, { intraOpNumThreads: 2, batchSize: batch });
const engines: { name: string; run: () => Promise<void> | void; best: number }[] = [
  {
    name: `tfjs ${backend.name} (createBackbone)`,
    run: tfjsExtract((xb) => backbone.apply(params, xb).features),
    best: Number.POSITIVE_INFINITY,
  },
  {
    name: `tfjs ${backend.name} (importOnnx)`,
    run: tfjsExtract((xb) => imported.backbone.apply(imported.params, xb).features),
    best: Number.POSITIVE_INFINITY,
  },
  {
    name: 'onnxruntime-node, 1 thread',
    run: async () => {
      await ort1.run(x, images);
    },
    best: Number.POSITIVE_INFINITY,
  },
  {
    name: 'onnxruntime-node, 2 threads',
    run: async () => {
      await ort2.run(x, images);
    },
    best: Number.POSITIVE_INFINITY,
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

console.log(
  `cnn backbone (${backbone.spec.name}), input 28×28×1, ${images} images, batch ${batch}, ` +
    `best of ${repeats} (round-robin)`,
);
for (const e of engines) {
  console.log(`${e.name.padEnd(36)} ${(images / (e.best / 1000)).toFixed(0).padStart(8)} images/s`);
}
