import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { classwiseWasserstein } from '../ot/wasserstein.js';
import { fitStandardizer, labelledSet } from './data.js';
import { headCrossEntropies, type LinearHead } from './head.js';
import {
  conditionalEntropy,
  globalLipschitz,
  invertibilityGap,
  labelMapMatrix,
  transformedClassifierStats,
  transformedWasserstein,
  weightedSourceLoss,
} from './terms.js';

function randomHead(seed: number, C: number, d: number): LinearHead {
  const rng = createRng(seed);
  return {
    numClasses: C,
    dim: d,
    weight: Float64Array.from({ length: C * d }, () => rng.normal()),
    bias: Float64Array.from({ length: C }, () => rng.normal()),
  };
}

function randomSet(seed: number, perClass: number[], d: number) {
  const rng = createRng(seed);
  const features: number[][] = [];
  const labels: number[] = [];
  perClass.forEach((n, c) => {
    for (let i = 0; i < n; i++) {
      features.push(Array.from({ length: d }, () => c + rng.normal()));
      labels.push(c);
    }
  });
  return { features, labels };
}

describe('conditionalEntropy', () => {
  it('is 0 for a permutation, log|Y_T| for uniform columns, and −Σ_j D_j Σ_i B_ij log B_ij in general', () => {
    const perm = labelMapMatrix('test', [2, 0, 3, 1], 4, 4);
    const rows = [0, 1, 2, 3].map((i) => Array.from(perm.subarray(i * 4, i * 4 + 4)));
    expect(conditionalEntropy(rows, [0.1, 0.2, 0.3, 0.4])).toBe(0);
    const uniform = [0, 1, 2].map(() => [1 / 3, 1 / 3]);
    expect(conditionalEntropy(uniform, [0.5, 0.5])).toBeCloseTo(Math.log(3), 14);
    // Column 0: (0.5, 0.5, 0) → log 2; column 1: (0.2, 0.3, 0.5).
    const B = [
      [0.5, 0.2],
      [0.5, 0.3],
      [0, 0.5],
    ];
    const h1 = -(0.2 * Math.log(0.2) + 0.3 * Math.log(0.3) + 0.5 * Math.log(0.5));
    expect(conditionalEntropy(B, [0.25, 0.75])).toBeCloseTo(0.25 * Math.log(2) + 0.75 * h1, 14);
  });

  it('names the column that is not a distribution and the size mismatch', () => {
    expect(() => conditionalEntropy([[0.5], [0.4]], [1])).toThrow(/column 0 .* sums to 0.9/);
    expect(() => conditionalEntropy([[1, 0]], [1])).toThrow(/2 columns .* D has 1 entries/);
    expect(() => conditionalEntropy([[1]], [0.7])).toThrow(/D sums to 0.7/);
  });
});

describe('labelMapMatrix', () => {
  it('builds the 0/1 matrix of an assignment and validates matrices', () => {
    expect(Array.from(labelMapMatrix('f', [1, 0, 1], 2, 3))).toEqual([0, 1, 0, 1, 0, 1]);
    expect(() => labelMapMatrix('f', [0, 1], 2, 3)).toThrow(
      /labelMap has 2 entries but the source has 3 classes/,
    );
    expect(() => labelMapMatrix('f', [0, 5, 1], 2, 3)).toThrow(/labelMap\[1\] is 5; .* 0..1/);
    expect(() => labelMapMatrix('f', [[1, 0]], 2, 2)).toThrow(
      /labelMap is \[1, 2\] but must be \[2, 2\]/,
    );
  });
});

describe('transformedWasserstein', () => {
  it('equals the class-wise W1 of ot/ for the identity label map and the source prior', () => {
    const src = labelledSet('t', 's', randomSet(1, [5, 7, 4], 3));
    const tgt = labelledSet('t', 't', randomSet(2, [6, 3, 8], 3));
    const B = labelMapMatrix('t', [0, 1, 2], 3, 3);
    const ours = transformedWasserstein(src.x, src, tgt, B, src.prior);
    const ref = classwiseWasserstein(src.x, src.y, tgt.x, tgt.y);
    expect(ours.distance).toBeCloseTo(ref.distance, 12);
    ours.perClass.forEach((c, i) => {
      expect(c.distance).toBeCloseTo(ref.perClass[i]?.distance as number, 12);
    });
  });

  it('routes source classes through B (argmax or soft) and flags a target class nothing maps to', () => {
    const src = labelledSet('t', 's', randomSet(3, [4, 4], 2));
    const tgt = labelledSet('t', 't', randomSet(4, [5, 5], 2));
    // Source class 0 → target 1, source class 1 → target 0.
    const swap = labelMapMatrix('t', [1, 0], 2, 2);
    const w = transformedWasserstein(src.x, src, tgt, swap, src.prior);
    expect(w.perClass.map((c) => c.sourceClasses)).toEqual([[1], [0]]);
    // Both source classes → target 0: class 1 gets nothing, W is infinite.
    const merge = labelMapMatrix('t', [0, 0], 2, 2);
    const m = transformedWasserstein(src.x, src, tgt, merge, src.prior);
    expect(m.perClass[1]?.nSource).toBe(0);
    expect(m.distance).toBe(Number.POSITIVE_INFINITY);
    // Soft: every source class carries mass to both target classes, so W stays finite.
    const soft = Float64Array.from([0.9, 0.8, 0.1, 0.2]);
    const s = transformedWasserstein(src.x, src, tgt, soft, src.prior, { labelMatching: 'soft' });
    expect(Number.isFinite(s.distance)).toBe(true);
    expect(s.perClass[1]?.sourceClasses).toEqual([0, 1]);
  });
});

describe('weightedSourceLoss', () => {
  it('is (1/N) Σ_i (D_i / P_S(i)) Σ_{x ∈ i} CE(h_S(Ā A z), y)', () => {
    const set = labelledSet('t', 's', randomSet(5, [3, 6, 2], 2));
    const head = randomHead(6, 3, 2);
    const D = Float64Array.from([0.5, 0.2, 0.3]);
    const AbarA = Float64Array.from([1.1, 0.2, -0.1, 0.9]);
    const ce = headCrossEntropies(
      head,
      {
        data: Float64Array.from({ length: 22 }, (_, k) => {
          const i = Math.floor(k / 2);
          const r = k % 2;
          return (
            (AbarA[r * 2] as number) * (set.x.data[i * 2] as number) +
            (AbarA[r * 2 + 1] as number) * (set.x.data[i * 2 + 1] as number)
          );
        }),
        rows: 11,
        cols: 2,
      },
      set.y,
    );
    let expected = 0;
    set.y.forEach((y, i) => {
      expected += ((D[y] as number) / (set.prior[y] as number)) * (ce[i] as number);
    });
    expected /= 11;
    expect(weightedSourceLoss(head, set, D, AbarA).value).toBeCloseTo(expected, 12);
  });
});

describe('transformed classifier', () => {
  it('has the closed-form input gradient of −log(B softmax(W Ā(x − b) + c))_y', () => {
    const head = randomHead(7, 3, 2);
    const Abar = Float64Array.from([0.8, -0.3, 0.4, 1.2]);
    const b = Float64Array.from([0.3, -0.2]);
    const B = Float64Array.from([0.7, 0.1, 0.2, 0.3, 0.9, 0.8]); // [2, 3], columns sum to 1
    const x0 = [0.4, -1.1];
    const loss = (x: number[]) =>
      transformedClassifierStats(
        head,
        Abar,
        b,
        B,
        { data: Float64Array.from(x), rows: 1, cols: 2 },
        [1],
      ).loss;
    const h = 1e-6;
    const g = [0, 1].map((k) => {
      const p = x0.slice();
      const m = x0.slice();
      p[k] = (p[k] as number) + h;
      m[k] = (m[k] as number) - h;
      return (loss(p) - loss(m)) / (2 * h);
    });
    const stats = transformedClassifierStats(
      head,
      Abar,
      b,
      B,
      { data: Float64Array.from(x0), rows: 1, cols: 2 },
      [1],
    );
    expect(stats.maxGradNorm).toBeCloseTo(Math.hypot(...g), 7);
    expect(globalLipschitz(head, Abar)).toBeGreaterThanOrEqual(stats.maxGradNorm);
  });

  it('measures the invertibility gap ‖AĀ − I‖² + ‖ĀA − I‖²', () => {
    const A = Float64Array.from([2, 0, 0, 1]);
    expect(invertibilityGap(A, Float64Array.from([0.5, 0, 0, 1]), 2)).toBe(0);
    expect(invertibilityGap(A, Float64Array.from([1, 0, 0, 1]), 2)).toBe(2);
  });
});

describe('fitStandardizer', () => {
  it('gives mean 0 and population std 1 per feature, scale 1 for a constant feature', () => {
    const st = fitStandardizer([
      [1, 5],
      [3, 5],
      [5, 5],
    ]);
    expect(Array.from(st.mean)).toEqual([3, 5]);
    expect(st.scale[0]).toBeCloseTo(Math.sqrt(8 / 3), 14);
    expect(st.scale[1]).toBe(1);
    const out = st.transform([[3, 5]]);
    expect(Array.from(out.data)).toEqual([0, 0]);
    expect(() => st.transform([[1, 2, 3]])).toThrow(/dimension 3 .* fitted on dimension 2/);
  });
});
