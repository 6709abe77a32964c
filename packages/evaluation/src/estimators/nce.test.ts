import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { nce } from './nce.js';

describe('nce', () => {
  it('matches a 4-sample example computed by hand', () => {
    // z = arg-max of the LEEP example's outputs: [0, 0, 1, 1]; y = [0, 0, 1, 0]
    // Joint counts: (z=0,y=0) = 2, (z=1,y=1) = 1, (z=1,y=0) = 1 → P(z=0) = P(z=1) = 1/2
    // H(Y|Z) = −[ 2/4·log(2/2) + 1/4·log(1/2) + 1/4·log(1/2) ] = ½ log 2
    expect(nce([0, 0, 1, 1], [0, 0, 1, 0])).toBeCloseTo(-0.5 * Math.log(2), 15);
    // 6 samples, z = [0,0,0,1,1,2], y = [0,0,1,1,1,0]:
    //   z=0: y counts {0: 2, 1: 1} → −(2/6) log(2/3) − (1/6) log(1/3)
    //   z=1: y = 1 always; z=2: y = 0 always → 0
    const h = -(2 / 6) * Math.log(2 / 3) - (1 / 6) * Math.log(1 / 3);
    expect(nce([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0])).toBeCloseTo(-h, 15);
  });

  it('is 0 exactly when y is a function of z, and ≤ 0 otherwise', () => {
    const rng = createRng(5);
    const z = Array.from({ length: 200 }, () => rng.int(20));
    expect(
      nce(
        z,
        z.map((v) => v % 3),
      ),
    ).toBe(0);
    expect(
      nce(
        z,
        z.map((v) => (v * 7) % 5),
      ),
    ).toBe(0);
    // source classes never predicted (sparse ids) are fine
    expect(nce([1000, 1000, 7], [0, 0, 1])).toBe(0);
    for (let t = 0; t < 10; t++) {
      const y = z.map(() => rng.int(4));
      expect(nce(z, y)).toBeLessThan(0);
      expect(nce(z, y)).toBeGreaterThanOrEqual(-Math.log(4));
    }
  });

  it('gives clear errors on degenerate inputs', () => {
    expect(() => nce([0, 1, 1], [0, 1])).toThrow(
      /sourceLabels has 3 entries but targetLabels has 2 entries/,
    );
    expect(() => nce([0, 1, 1], [0, 2, 2])).toThrow(/target class 1 has no samples/);
    expect(() => nce([0, Number.POSITIVE_INFINITY], [0, 1])).toThrow(
      /sourceLabels\[1\] is Infinity/,
    );
    expect(() => nce([0, -1], [0, 1])).toThrow(/sourceLabels\[1\] is -1/);
    expect(() => nce([], [])).toThrow(/no samples/);
  });
});
