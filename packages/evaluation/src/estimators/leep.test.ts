import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { leep } from './leep.js';

describe('leep', () => {
  it('matches a 4-sample example computed by hand', () => {
    const probs = [
      [0.8, 0.2],
      [0.6, 0.4],
      [0.3, 0.7],
      [0.1, 0.9],
    ];
    const y = [0, 0, 1, 0];
    // Joint P(y, z) = (1/4) Σ θ_z(x_i) 1[y_i = y]:
    //   P(0,0) = (0.8 + 0.6 + 0.1)/4 = 0.375   P(0,1) = (0.2 + 0.4 + 0.9)/4 = 0.375
    //   P(1,0) = 0.3/4 = 0.075                 P(1,1) = 0.7/4 = 0.175
    // P(z=0) = 0.45, P(z=1) = 0.55 →
    //   P(0|0) = 5/6, P(1|0) = 1/6, P(0|1) = 15/22, P(1|1) = 7/22
    // Expected empirical predictions Σ_z P(y_i|z) θ_z(x_i):
    //   x1: 0.8·5/6 + 0.2·15/22 = 53/66      x2: 0.6·5/6 + 0.4·15/22 = 17/22
    //   x3: 0.3·1/6 + 0.7·7/22  = 3/11       x4: 0.1·5/6 + 0.9·15/22 = 23/33
    const expected =
      (Math.log(53 / 66) + Math.log(17 / 22) + Math.log(3 / 11) + Math.log(23 / 33)) / 4;
    expect(leep(probs, y)).toBeCloseTo(expected, 14);
    expect(leep(probs, y)).toBeCloseTo(-0.53437, 5);
    // the flat {data, rows, cols} form and Float32 inputs give the same value
    const flat = { data: Float32Array.from(probs.flat()), rows: 4, cols: 2 };
    expect(leep(flat, new Int32Array(y))).toBeCloseTo(expected, 6);
  });

  it('is ≤ 0 on random softmax outputs, and 0 when θ is one-hot and y a function of z', () => {
    const rng = createRng(3);
    for (let trial = 0; trial < 20; trial++) {
      const n = 30;
      const z = 5;
      const probs = Array.from({ length: n }, () => {
        const e = Array.from({ length: z }, () => Math.exp(2 * rng.normal()));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((v) => v / s);
      });
      const y = Array.from({ length: n }, (_, i) => i % 3);
      expect(leep(probs, y)).toBeLessThanOrEqual(0);
    }
    const oneHot = [0, 1, 2, 1, 0].map((k) => [0, 1, 2].map((j) => (j === k ? 1 : 0)));
    expect(leep(oneHot, [0, 1, 0, 1, 0])).toBe(0); // y = z mod 2
  });

  it('gives clear errors on degenerate inputs', () => {
    const probs = [
      [0.5, 0.5],
      [0.2, 0.8],
      [1, 0],
    ];
    expect(() => leep(probs, [0, 1])).toThrow(/probs has 3 rows but labels has 2 entries/);
    expect(() => leep(probs, [0, 2, 2])).toThrow(/target class 1 has no samples/);
    expect(() => leep(probs, [0, 1, 1], { numClasses: 3 })).toThrow(
      /target class 2 has no samples/,
    );
    expect(() => leep([[0.5, Number.NaN]], [0])).toThrow(/probs\[0\]\[1\] is NaN/);
    expect(() => leep([[2, -1]], [0])).toThrow(/probs\[0\]\[1\] is -1/);
    expect(() => leep([[2, 1]], [0])).toThrow(/probs\[0\] sums to 3, not 1 \(pass softmax outputs/);
    expect(() => leep([[], []], [0, 0])).toThrow(/dimension 0/);
    expect(() => leep(probs, [0, 1.5, 1])).toThrow(/labels\[1\] is 1.5/);
    expect(() => leep([[1], [1, 0]], [0, 0])).toThrow(
      /probs\[1\] has length 2 but probs\[0\] has length 1/,
    );
  });
});
