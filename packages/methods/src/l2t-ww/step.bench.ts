/**
 * Milliseconds per L2T-ww step against a plain training step (`scratch`:
 * CE only) of the same target network on the same batch: CNN 28×28×1 →
 * 2 × (3×3 conv + ReLU + max-pool) with 16, 32 channels → dense 128,
 * batch 32, 10 classes, wasm backend; source = the same architecture
 * (random "pretrained" weights: the cost does not depend on them), pairs
 * 'all' (4 pairs).
 *
 *   cd /work/main && node --conditions=@transferlab/source --import tsx packages/methods/src/l2t-ww/step.bench.ts
 *
 * Options: --steps N (timed steps per method, default 6), --backend NAME.
 * An L2T-ww step is the real step (CE + matching) plus the meta-step; the
 * feature-matching row (CE + matching, no meta-step) separates the two.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend } from '@transferlab/core';
import { cnnSpec, createBackbone } from '@transferlab/models';
import { featureMatching } from '../feature-matching/index.js';
import { scratch } from '../scratch/index.js';
import { batchFromTensors } from '../shared/batch.js';
import type { AnyTransferMethod, Batch } from '../types.js';
import { l2tWw } from './index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const steps = Number(arg('steps', '6'));
const backend = await initBackend({ backend: arg('backend', 'wasm') });
const batchSize = 32;
const numClasses = 10;
const backbone = createBackbone(cnnSpec([28, 28, 1], [16, 32], 128));
const rng = createRng(0);
const pretrained = backbone.init(rng.derive('pretrained'));
const target: Batch = batchFromTensors(
  tf.tensor4d(rng.normalArray(batchSize * 784), [batchSize, 28, 28, 1]),
  tf.tensor1d(
    Int32Array.from({ length: batchSize }, (_, i) => i % numClasses),
    'int32',
  ),
);

// The same target optimizer everywhere: L2T-ww's (SGD, momentum 0.9, wd 1e-4, cosine) at
// lr 0.01, which random data does not blow up (the cost does not depend on it).
const optim = {
  batchSize,
  optimizer: 'sgd',
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 1e-4,
  schedule: 'cosine',
};

async function msPerStep(
  method: AnyTransferMethod,
  options: Record<string, unknown>,
): Promise<number> {
  let state = await method.init({
    config: method.validate({ ...optim, ...options }),
    backbone,
    numClasses,
    pretrained,
    sourceNumClasses: numClasses,
    rng: createRng(1),
    totalSteps: steps + 10,
  });
  try {
    for (let step = 0; step < 2; step++)
      state = (await method.trainStep(state, { target, step })).state;
    const t0 = performance.now();
    for (let step = 2; step < 2 + steps; step++) {
      state = (await method.trainStep(state, { target, step })).state;
    }
    return (performance.now() - t0) / steps;
  } finally {
    await method.dispose(state);
  }
}

const cases: [string, AnyTransferMethod, Record<string, unknown>][] = [
  ['plain step (scratch, CE)', scratch, {}],
  ['feature matching (CE + matching, 4 pairs)', featureMatching, { pairs: 'all' }],
  ['l2t-ww exact (T = 2)', l2tWw, {}],
  ['l2t-ww first-order (T = 2)', l2tWw, { metaGradient: 'first-order' }],
];
const best = new Map<string, number>();
// Interleaved twice so that no method always runs on a cold or hot machine.
for (let round = 0; round < 2; round++) {
  for (const [label, method, options] of cases) {
    best.set(label, Math.min(best.get(label) ?? Infinity, await msPerStep(method, options)));
  }
}
const plain = best.get(cases[0]?.[0] as string) as number;
console.log(
  `backend ${backend.name}, CNN 28×28×1 → conv16 → conv32 → fc128, batch ${batchSize}, ${numClasses} classes, ${steps} timed steps (best of 2 rounds)`,
);
for (const [label, ms] of best) {
  console.log(
    `${label.padEnd(44)} ${ms.toFixed(0).padStart(6)} ms/step   ×${(ms / plain).toFixed(1)} plain`,
  );
}
tf.dispose([target.x, target.y]);
tf.dispose(Object.values(pretrained));
