/**
 * Milliseconds per MeRLin step against a fine-tune step on the same batch:
 * MLP backbone 784-256-128, batch 64, 10 classes, wasm backend.
 *
 *   cd /work/main && node --conditions=@transferlab/source --import tsx packages/methods/src/merlin/step.bench.ts
 *
 * Options: --steps N (timed steps per method, default 60), --backend NAME.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend } from '@transferlab/core';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { fineTune } from '../fine-tune/index.js';
import { batchFromTensors } from '../shared/batch.js';
import type { AnyTransferMethod, Batch } from '../types.js';
import { merlin } from './index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const steps = Number(arg('steps', '60'));
const backend = await initBackend({ backend: arg('backend', 'wasm') });
const batchSize = 64;
const numClasses = 10;
const backbone = createBackbone(mlpSpec([784], [256, 128]));
const rng = createRng(0);
const pretrained = backbone.init(rng.derive('pretrained'));
const target: Batch = batchFromTensors(
  tf.tensor2d(rng.normalArray(batchSize * 784), [batchSize, 784]),
  tf.tensor1d(
    Int32Array.from({ length: batchSize }, (_, i) => i % numClasses),
    'int32',
  ),
);

async function msPerStep(
  method: AnyTransferMethod,
  options: Record<string, unknown>,
): Promise<number> {
  let state = await method.init({
    config: method.validate({ batchSize, ...options }),
    backbone,
    numClasses,
    pretrained,
    sourceNumClasses: numClasses,
    rng: createRng(1),
    totalSteps: steps + 10,
  });
  try {
    for (let step = 0; step < 5; step++)
      state = (await method.trainStep(state, { target, step })).state;
    const t0 = performance.now();
    for (let step = 5; step < 5 + steps; step++) {
      state = (await method.trainStep(state, { target, step })).state;
    }
    return (performance.now() - t0) / steps;
  } finally {
    await method.dispose(state);
  }
}

const rows: { method: string; ms: number }[] = [];
// Interleaved twice so that neither method always runs on a cold or hot machine.
for (let round = 0; round < 2; round++) {
  rows.push({ method: 'fine-tune', ms: await msPerStep(fineTune, {}) });
  rows.push({ method: 'merlin (kernel, closed form)', ms: await msPerStep(merlin, {}) });
  rows.push({
    method: 'merlin (ridge, closed form)',
    ms: await msPerStep(merlin, { head: 'ridge' }),
  });
  rows.push({
    method: 'merlin (kernel, 5 inner steps)',
    ms: await msPerStep(merlin, { innerSteps: 5 }),
  });
}
const best = new Map<string, number>();
for (const r of rows) best.set(r.method, Math.min(best.get(r.method) ?? Infinity, r.ms));
const ft = best.get('fine-tune') as number;
console.log(
  `backend ${backend.name}, MLP 784-256-128, batch ${batchSize}, ${numClasses} classes, ${steps} steps (best of 2 rounds)`,
);
for (const [method, ms] of best) {
  console.log(
    `${method.padEnd(32)} ${ms.toFixed(2).padStart(7)} ms/step   ×${(ms / ft).toFixed(2)} fine-tune`,
  );
}
tf.dispose([target.x, target.y]);
for (const t of Object.values(pretrained)) t.dispose();
