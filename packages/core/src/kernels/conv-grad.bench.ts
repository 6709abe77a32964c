/**
 * ms per conv2d forward + backward (gradients w.r.t. input and filter) on wasm
 * vs cpu, for a batch of 32, 28x28x16 input, 3x3x16x32 filter, stride 1, 'same'.
 *
 *   cd /work/main && node --conditions=@transferlab/source --import tsx packages/core/src/kernels/conv-grad.bench.ts [--full]
 *
 * Columns: wasm with registerWasmGradientKernels(); the same plus
 * useFastWasmConv2DBackpropInput(); cpu. Rows: the whole forward+backward
 * (tf.grads), then each kernel alone. The cpu kernels are very slow here
 * (tens of seconds), so cpu runs once and, unless --full, only the first two
 * rows are measured on cpu.
 */
import * as tf from '@tensorflow/tfjs-core';
// The tfjs union package registers the cpu backend and the gradients.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  registerWasmGradientKernels,
  useFastWasmConv2DBackpropInput,
} from './wasm-gradient-kernels.js';

const X_SHAPE: [number, number, number, number] = [32, 28, 28, 16];
const W_SHAPE: [number, number, number, number] = [3, 3, 16, 32];
const STRIDES = 1;
const PAD = 'same';
const FULL = process.argv.includes('--full');

type Column = 'wasm' | 'wasm + fast input grad' | 'cpu';
const ROWS = [
  'forward+backward',
  'Conv2D (forward)',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
] as const;
type Row = (typeof ROWS)[number];

/** Mean ms per call of `f`: one warm-up call, then >= minRuns calls and >= minMs. */
function time(f: () => void, slow: boolean): number {
  if (slow) {
    const start = performance.now();
    f();
    return performance.now() - start;
  }
  f();
  let runs = 0;
  const start = performance.now();
  while (runs < 5 || performance.now() - start < 1500) {
    f();
    runs++;
  }
  return (performance.now() - start) / runs;
}

async function bench(column: Column): Promise<Partial<Record<Row, number>>> {
  const backend = column === 'cpu' ? 'cpu' : 'wasm';
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} unavailable`);
  await tf.ready();
  if (backend === 'wasm') registerWasmGradientKernels();
  useFastWasmConv2DBackpropInput(column === 'wasm + fast input grad');
  const slow = backend === 'cpu';

  const x = tf.randomNormal(X_SHAPE, 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal(W_SHAPE, 0, 0.1, 'float32', 2) as tf.Tensor4D;
  const y = tf.conv2d(x, w, STRIDES, PAD);
  const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 3) as tf.Tensor4D;
  const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, STRIDES, PAD), dy)),
  );
  const attrs = { strides: STRIDES, pad: PAD, dataFormat: 'NHWC' };
  const sync = (ts: tf.Tensor | tf.Tensor[]) => {
    for (const t of Array.isArray(ts) ? ts : [ts]) t.dataSync();
    tf.dispose(ts);
  };
  const before = tf.memory().numTensors;
  const res: Partial<Record<Row, number>> = {};
  res['forward+backward'] = time(() => sync(grads([x, w])), slow);
  res['Conv2D (forward)'] = time(() => sync(tf.conv2d(x, w, STRIDES, PAD)), slow);
  if (!slow || FULL) {
    res.Conv2DBackpropInput = time(
      () =>
        sync(
          tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, {
            ...attrs,
            inputShape: X_SHAPE,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        ),
      slow,
    );
    res.Conv2DBackpropFilter = time(
      () =>
        sync(
          tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, {
            ...attrs,
            filterShape: W_SHAPE,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        ),
      slow,
    );
  }
  if (tf.memory().numTensors !== before)
    throw new Error(`${column}: tensors leaked during the bench`);
  tf.dispose([x, w, y, dy]);
  useFastWasmConv2DBackpropInput(false);
  return res;
}

const columns: Column[] = ['wasm', 'wasm + fast input grad', 'cpu'];
const results = new Map<Column, Partial<Record<Row, number>>>();
for (const column of columns) results.set(column, await bench(column));

const fmt = (v: number | undefined) => (v == null ? '-' : v.toFixed(1));
console.log(`conv2d x=[${X_SHAPE}] filter=[${W_SHAPE}] strides=${STRIDES} pad=${PAD}: ms per call`);
console.log(['', ...columns].map((c, i) => (i === 0 ? c.padEnd(22) : c.padStart(24))).join(''));
for (const row of ROWS) {
  console.log(
    row.padEnd(22) + columns.map((c) => fmt(results.get(c)?.[row]).padStart(24)).join(''),
  );
}
const cpu = results.get('cpu')?.['forward+backward'];
for (const c of columns.slice(0, 2)) {
  const v = results.get(c)?.['forward+backward'];
  if (cpu != null && v != null)
    console.log(`forward+backward speed-up of ${c} over cpu: ${(cpu / v).toFixed(0)}x`);
}
