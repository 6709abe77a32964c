import { describe, expect, it } from 'vitest';
import { createRng } from './rng.js';

describe('createRng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const xa = Array.from({ length: 5 }, () => a.nextUint32());
    const xb = Array.from({ length: 5 }, () => b.nextUint32());
    const xc = Array.from({ length: 5 }, () => c.nextUint32());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });

  it('has uniform moments and normal moments close to theory', () => {
    const rng = createRng(1);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.next();
      s += u;
      s2 += u * u;
    }
    // mean 1/2 (sd of the estimate 0.00065), E[u²] = 1/3
    expect(s / n).toBeCloseTo(0.5, 2);
    expect(s2 / n).toBeCloseTo(1 / 3, 2);
    const z = rng.normalArray(n);
    let m = 0;
    let v = 0;
    let k = 0;
    for (const x of z) m += x;
    m /= n;
    for (const x of z) {
      v += (x - m) ** 2;
      k += (x - m) ** 4;
    }
    v /= n;
    k /= n * v * v;
    expect(Math.abs(m)).toBeLessThan(0.01);
    expect(v).toBeCloseTo(1, 1);
    expect(k).toBeCloseTo(3, 0); // kurtosis of a normal
  });

  it('int covers its range evenly; permutation is a permutation', () => {
    const rng = createRng(5);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70_000; i++) counts[rng.int(7)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(450); // ~4.8 sd
    const p = rng.permutation(100);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(() => rng.int(0)).toThrow(/positive integer/);
  });

  it('derive gives independent, reproducible streams', () => {
    const a = createRng(9).derive('weights').next();
    const b = createRng(9).derive('weights').next();
    const c = createRng(9).derive('split').next();
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });
});
