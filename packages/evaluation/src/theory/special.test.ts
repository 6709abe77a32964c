import { describe, expect, it } from 'vitest';
import { erf, erfc, gaussHermite, logisticLoss, normalCdf, sigmoid } from './special.js';

// Reference values (double precision) of erf and erfc.
const REFERENCE: [number, number, number][] = [
  [0.1, 0.1124629160182849, 0.8875370839817152],
  [0.5, 0.5204998778130465, 0.4795001221869535],
  [1, 0.8427007929497148, 0.15729920705028516],
  [2, 0.9953222650189527, 0.004677734981047266],
  [2.9, 0.9999589021219005, 4.109787809945884e-5],
  [3, 0.9999779095030014, 2.2090496998585445e-5],
  [3.5, 0.9999992569016276, 7.430983723414129e-7],
  [5, 0.9999999999984626, 1.5374597944280347e-12],
  [-1.3, -0.9340079449406524, 1.9340079449406524],
];

describe('erf and erfc', () => {
  it('match reference values (erf to 1e-15 absolute, erfc to 1e-12 relative)', () => {
    for (const [x, e, c] of REFERENCE) {
      expect(Math.abs(erf(x) - e)).toBeLessThan(1e-15);
      expect(Math.abs(erfc(x) - c) / c).toBeLessThan(1e-12);
    }
    expect(Math.abs(erfc(10) / 2.0884875837625446e-45 - 1)).toBeLessThan(1e-12);
    expect(Math.abs(erfc(26) / 5.663192408856145e-296 - 1)).toBeLessThan(1e-11);
    expect(erf(0)).toBe(0);
    expect(erfc(-40)).toBe(2);
    expect(normalCdf(0)).toBeCloseTo(0.5, 15);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 14);
  });

  it('logistic helpers do not overflow', () => {
    expect(sigmoid(800)).toBe(1);
    expect(sigmoid(-800)).toBe(0);
    expect(logisticLoss(-800)).toBeCloseTo(800, 10);
    expect(logisticLoss(800)).toBe(0);
    expect(logisticLoss(0)).toBeCloseTo(Math.LN2, 15);
  });
});

describe('gaussHermite', () => {
  it('integrates E ξ^{2j} = (2j − 1)!! exactly up to degree 2n − 1', () => {
    for (const n of [1, 2, 5, 20, 60]) {
      const { nodes, weights } = gaussHermite(n);
      let total = 0;
      for (const w of weights) total += w;
      expect(total).toBeCloseTo(1, 13);
      for (let j = 0; 2 * j <= 2 * n - 1 && j <= 12; j++) {
        let moment = 0;
        for (let i = 0; i < n; i++)
          moment += (weights[i] as number) * (nodes[i] as number) ** (2 * j);
        let exact = 1;
        for (let t = 2 * j - 1; t > 0; t -= 2) exact *= t;
        expect(Math.abs(moment - exact) / exact).toBeLessThan(1e-10);
        // odd moments vanish by symmetry
        let odd = 0;
        for (let i = 0; i < n; i++)
          odd += (weights[i] as number) * (nodes[i] as number) ** (2 * j + 1);
        expect(Math.abs(odd)).toBeLessThan(1e-10 * exact);
      }
    }
  });

  it('computes E erfc(aξ + b) for a smooth integrand to 1e-10', () => {
    // E erfc(aξ + b) = erfc(b / √(1 + 2a²)) for ξ ~ N(0, 1).
    const { nodes, weights } = gaussHermite(96);
    const a = 0.7;
    const b = 0.4;
    let s = 0;
    for (let i = 0; i < nodes.length; i++)
      s += (weights[i] as number) * erfc(a * (nodes[i] as number) + b);
    expect(Math.abs(s - erfc(b / Math.sqrt(1 + 2 * a * a)))).toBeLessThan(1e-10);
  });

  it('rejects bad sizes', () => {
    expect(() => gaussHermite(0)).toThrow(/integer in \[1, 400\]/);
    expect(() => gaussHermite(2.5)).toThrow(/integer/);
  });
});
