import { describe, expect, it } from 'vitest';
import { kendallTau } from './kendall.js';

describe('kendallTau (tau-b)', () => {
  it('matches a hand-computed example with ties in both lists', () => {
    // a = [1, 2, 2, 3], b = [1, 3, 2, 2]; the 6 pairs (i, j):
    //   (0,1) a↑ b↑ concordant   (0,2) a↑ b↑ concordant   (0,3) a↑ b↑ concordant
    //   (1,2) tied in a          (1,3) a↑ b↓ discordant    (2,3) tied in b
    // n_c = 3, n_d = 1, n0 = 6, n1 = 1 (ties in a), n2 = 1 (ties in b)
    // tau_b = (3 − 1) / √((6 − 1)(6 − 1)) = 2/5
    expect(kendallTau([1, 2, 2, 3], [1, 3, 2, 2])).toBeCloseTo(0.4, 15);
  });

  it('equals tau-a without ties and ±1 for identical / reversed orders', () => {
    // a = [1, 2, 3, 4], b = [2, 1, 4, 3]: only (0,1) and (2,3) are discordant → (4 − 2)/6
    expect(kendallTau([1, 2, 3, 4], [2, 1, 4, 3])).toBeCloseTo(1 / 3, 15);
    expect(kendallTau([0.1, 5, 3], [1, 10, 7])).toBe(1);
    expect(kendallTau([0.1, 5, 3], [-1, -10, -7])).toBe(-1);
    expect(kendallTau(Float64Array.from([3, 1]), new Int32Array([7, 9]))).toBe(-1);
  });

  it('rejects mismatched lengths, constant lists, non-finite values and single entries', () => {
    expect(() => kendallTau([1, 2, 3], [1, 2])).toThrow(/a has 3 entries but b has 2 entries/);
    expect(() => kendallTau([1, 1, 1], [1, 2, 3])).toThrow(/a is constant/);
    expect(() => kendallTau([1, 2, 3], [4, 4, 4])).toThrow(/b is constant/);
    expect(() => kendallTau([1, Number.NaN], [1, 2])).toThrow(/a\[1\] is NaN/);
    expect(() => kendallTau([1], [1])).toThrow(/at least 2/);
  });
});
