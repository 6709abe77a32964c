import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadMnist, MNIST_CLASS_NAMES, mnistDigitFile } from './mnist.js';
import { classCounts } from './transforms.js';

describe('loadMnist', () => {
  const ds = loadMnist();

  it('holds the 10,000 digits of the mnist package, 28×28×1, grouped by digit', () => {
    expect(ds.y.length).toBe(10_000);
    expect(ds.x.length).toBe(10_000 * 784);
    expect(ds.shape).toEqual([28, 28, 1]);
    expect(ds.numClasses).toBe(10);
    expect(ds.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(MNIST_CLASS_NAMES).toHaveLength(10);
    expect(classCounts(ds)).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    // Deterministic order: all 0s first, then all 1s, …
    expect(ds.y[0]).toBe(0);
    expect(ds.y[1000]).toBe(0);
    expect(ds.y[1001]).toBe(1);
    expect(ds.y[9999]).toBe(9);
    for (let i = 1; i < ds.y.length; i++)
      expect(ds.y[i]).toBeGreaterThanOrEqual(ds.y[i - 1] as number);
  });

  it('has pixels in [0, 1] matching the package JSON', () => {
    let min = Infinity;
    let max = -Infinity;
    for (const v of ds.x) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
    // The first sample of digit 0 in 0.json: 0.2, 0.624, 0.992 at flat indices 127..129 (row 4, cols 15..17).
    expect(ds.x[126]).toBe(0);
    expect(ds.x[127]).toBe(Math.fround(0.2));
    expect(ds.x[128]).toBe(Math.fround(0.624));
    expect(ds.x[129]).toBe(Math.fround(0.992));
  });

  it('is memoised and reads the package files', () => {
    expect(loadMnist()).toBe(ds);
    expect(existsSync(mnistDigitFile(9))).toBe(true);
    expect(mnistDigitFile(3)).toMatch(/mnist[\\/]src[\\/]digits[\\/]3\.json$/);
  });
});
