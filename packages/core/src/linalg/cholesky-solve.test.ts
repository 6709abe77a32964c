import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend.js';
import { measureTensorGrowth } from '../leak.js';
import { createRng } from '../rng.js';
import { choleskyFactor, NotPositiveDefiniteError } from './cholesky.js';
import { choleskySolve } from './cholesky-solve.js';

/** Worst FD error seen per check (relative to the gradient's scale), printed at the end. */
const worst: Record<string, number> = {};
const note = (key: string, err: number) => {
  worst[key] = Math.max(worst[key] ?? 0, err);
};
afterAll(() => {
  console.log('choleskySolve finite-difference errors (relative):', worst);
});

/** A well-conditioned SPD matrix: M Mᵀ / n + I (eigenvalues ≥ 1, condition ~5). */
function spd(n: number, seed: number): number[] {
  const rng = createRng(seed);
  const m = rng.normalArray(n * n);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = i === j ? 1 : 0;
      for (let c = 0; c < n; c++) s += ((m[i * n + c] as number) * (m[j * n + c] as number)) / n;
      out.push(s);
    }
  }
  return out;
}

/** A random symmetric direction with unit Frobenius norm. */
function symDirection(n: number, seed: number): number[] {
  const r = createRng(seed).normalArray(n * n);
  const v: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) v.push(((r[i * n + j] as number) + (r[j * n + i] as number)) / 2);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
};

/** A loss with a non-constant upstream gradient: Σ W⊙X + ½ Σ X². */
function lossOf(w: tf.Tensor) {
  return (a: tf.Tensor, b: tf.Tensor) =>
    tf.tidy(() => {
      const x = choleskySolve(a, b);
      return tf.add(tf.sum(tf.mul(w, x)), tf.mul(tf.sum(tf.square(x)), 0.5)) as tf.Scalar;
    });
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`choleskySolve on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend({ backend });
    });

    it('solves a known system exactly', () => {
      // [[4, 2], [2, 3]]⁻¹ = [[3, -2], [-2, 4]] / 8
      const a = tf.tensor2d([4, 2, 2, 3], [2, 2]);
      const b = tf.tensor2d([2, 8, 1, 0], [2, 2]);
      const x = choleskySolve(a, b);
      const expected = [(3 * 2 - 2 * 1) / 8, (3 * 8 - 0) / 8, (-2 * 2 + 4 * 1) / 8, (-2 * 8) / 8];
      const got = Array.from(x.dataSync());
      got.forEach((v, i) => {
        expect(v).toBeCloseTo(expected[i] as number, 6);
      });
      tf.dispose([a, b, x]);
    });

    it('A X = B to float32 precision on a 64×64 system', () => {
      const n = 64;
      const a = tf.tensor2d(spd(n, 1), [n, n]);
      const b = tf.tensor2d(createRng(2).normalArray(n * 3), [n, 3]);
      const x = choleskySolve(a, b);
      const residual = tf.max(tf.abs(tf.sub(tf.matMul(a, x), b))).dataSync()[0] as number;
      expect(residual).toBeLessThan(1e-5);
      tf.dispose([a, b, x]);
    });

    it('gradients w.r.t. A and B match central finite differences', () => {
      const n = 6;
      const k = 3;
      const aVals = spd(n, 3);
      const bVals = Array.from(createRng(4).normalArray(n * k));
      const w = tf.tensor2d(createRng(5).normalArray(n * k), [n, k]);
      const f = lossOf(w);
      const a = tf.tensor2d(aVals, [n, n]);
      const b = tf.tensor2d(bVals, [n, k]);
      const [gA, gB] = tf.grads((ta: tf.Tensor, tb: tf.Tensor) => f(ta, tb))([a, b]) as [
        tf.Tensor,
        tf.Tensor,
      ];
      const ga = Array.from(gA.dataSync());
      const gb = Array.from(gB.dataSync());
      // The gradient w.r.t. A is symmetric.
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) expect(ga[i * n + j]).toBeCloseTo(ga[j * n + i] as number, 6);
      const evalAt = (av: number[], bv: number[]) =>
        tf.tidy(() => f(tf.tensor2d(av, [n, n]), tf.tensor2d(bv, [n, k])).dataSync()[0] as number);
      const h = 1e-2;
      const scaleA = Math.max(...ga.map(Math.abs));
      const scaleB = Math.max(...gb.map(Math.abs));
      // Along random symmetric directions of A.
      for (const seed of [10, 11, 12]) {
        const v = symDirection(n, seed);
        const fd =
          (evalAt(
            aVals.map((x, i) => x + h * (v[i] as number)),
            bVals,
          ) -
            evalAt(
              aVals.map((x, i) => x - h * (v[i] as number)),
              bVals,
            )) /
          (2 * h);
        const err = Math.abs(fd - dot(ga, v)) / scaleA;
        note(`${backend} dL/dA`, err);
        expect(err).toBeLessThan(2e-3);
      }
      // Single entries: a diagonal one, and an off-diagonal pair moved together.
      for (const [i, j] of [
        [0, 0],
        [1, 4],
        [5, 2],
      ] as const) {
        const plus = [...aVals];
        const minus = [...aVals];
        for (const [r, c] of i === j
          ? [[i, j]]
          : [
              [i, j],
              [j, i],
            ]) {
          plus[(r as number) * n + (c as number)]! += h;
          minus[(r as number) * n + (c as number)]! -= h;
        }
        const fd = (evalAt(plus, bVals) - evalAt(minus, bVals)) / (2 * h);
        const analytic = (i === j ? 1 : 2) * (ga[i * n + j] as number);
        const err = Math.abs(fd - analytic) / scaleA;
        note(`${backend} dL/dA`, err);
        expect(err).toBeLessThan(2e-3);
      }
      for (const idx of [0, 7, 17]) {
        const plus = [...bVals];
        const minus = [...bVals];
        plus[idx]! += h;
        minus[idx]! -= h;
        const fd = (evalAt(aVals, plus) - evalAt(aVals, minus)) / (2 * h);
        const err = Math.abs(fd - (gb[idx] as number)) / scaleB;
        note(`${backend} dL/dB`, err);
        expect(err).toBeLessThan(2e-3);
      }
      tf.dispose([w, a, b, gA, gB]);
    });

    it('second order: the gradient of a gradient through the solve matches finite differences', () => {
      // g(A) = ⟨∂f/∂B (A, B), V⟩ with ∂f/∂B = A⁻¹(W + X): differentiating it
      // w.r.t. A goes through the solve's own gradient.
      const n = 5;
      const k = 2;
      const aVals = spd(n, 20);
      const b = tf.tensor2d(createRng(21).normalArray(n * k), [n, k]);
      const w = tf.tensor2d(createRng(22).normalArray(n * k), [n, k]);
      const v = tf.tensor2d(createRng(23).normalArray(n * k), [n, k]);
      const f = lossOf(w);
      const g = (a: tf.Tensor) =>
        tf.tidy(() => {
          const gB = tf.grad((tb: tf.Tensor) => f(a, tb))(b);
          return tf.sum(tf.mul(gB, v)) as tf.Scalar;
        });
      const a = tf.tensor2d(aVals, [n, n]);
      const gA = tf.grad(g)(a);
      const ga = Array.from(gA.dataSync());
      const scale = Math.max(...ga.map(Math.abs));
      const h = 1e-2;
      for (const seed of [30, 31]) {
        const u = symDirection(n, seed);
        const at = (sign: number) =>
          tf.tidy(
            () =>
              g(
                tf.tensor2d(
                  aVals.map((x, i) => x + sign * h * (u[i] as number)),
                  [n, n],
                ),
              ).dataSync()[0] as number,
          );
        const fd = (at(1) - at(-1)) / (2 * h);
        const err = Math.abs(fd - dot(ga, u)) / scale;
        note(`${backend} second order`, err);
        expect(err).toBeLessThan(2e-3);
      }
      tf.dispose([a, b, w, v, gA]);
    });

    it('leaks no tensors across forward + backward passes', () => {
      const n = 8;
      const a = tf.tensor2d(spd(n, 40), [n, n]);
      const b = tf.tensor2d(createRng(41).normalArray(n * 2), [n, 2]);
      const growth = measureTensorGrowth(
        () => {
          const { value, grads } = tf.valueAndGrads((ta: tf.Tensor, tb: tf.Tensor) =>
            tf.sum(choleskySolve(ta, tb)),
          )([a, b]);
          tf.dispose([value, ...grads]);
          tf.tidy(() => {
            choleskySolve(a, b);
          });
        },
        { warmup: 2, steps: 6 },
      );
      expect(growth.grew).toBe(false);
      expect(growth.counts[0]).toBe(growth.counts[growth.counts.length - 1]);
      tf.dispose([a, b]);
    });

    it('rejects bad inputs with clear errors, and leaves nothing behind', () => {
      const before = tf.memory().numTensors;
      const sq = tf.tensor2d([1, 0, 0, 1], [2, 2]);
      const rect = tf.zeros([2, 3]);
      const vec = tf.ones([2]);
      const b3 = tf.ones([3, 1]);
      const indefinite = tf.tensor2d([1, 2, 2, 1], [2, 2]);
      const asym = tf.tensor2d([2, 1, 0, 2], [2, 2]);
      const nan = tf.tensor2d([1, Number.NaN, Number.NaN, 1], [2, 2]);
      const b = tf.ones([2, 1]);
      expect(() => choleskySolve(rect, b)).toThrow(
        /A must be a square matrix \[n, n\], got shape \[2,3\]/,
      );
      expect(() => choleskySolve(sq, vec)).toThrow(/B must be a matrix \[n, k\]/);
      expect(() => choleskySolve(sq, b3)).toThrow(/shapes do not match.*B needs 2 rows/);
      expect(() => choleskySolve(indefinite, b)).toThrow(
        /not symmetric positive definite: Cholesky pivot 1 \(0-based, of 2\) is -3/,
      );
      expect(() => choleskySolve(asym, b)).toThrow(/A is not symmetric/);
      expect(() => choleskySolve(nan, b)).toThrow(/non-finite entry at \[1, 0\]/);
      // Errors inside a gradient computation leave the engine usable.
      expect(() => tf.grad((t: tf.Tensor) => tf.sum(choleskySolve(t, b)))(indefinite)).toThrow(
        NotPositiveDefiniteError,
      );
      const ok = choleskySolve(sq, b);
      expect(Array.from(ok.dataSync())).toEqual([1, 1]);
      tf.dispose([sq, rect, vec, b3, indefinite, asym, nan, b, ok]);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

describe('choleskyFactor', () => {
  it('reproduces A = L Lᵀ and names the first bad pivot', () => {
    const n = 5;
    const a = spd(n, 50);
    const l = choleskyFactor(a, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let c = 0; c < n; c++) s += (l[i * n + c] as number) * (l[j * n + c] as number);
        expect(s).toBeCloseTo(a[i * n + j] as number, 10);
        if (j > i) expect(l[i * n + j]).toBe(0);
      }
    }
    const singular = [1, 1, 0, 1, 1, 0, 0, 0, 1];
    try {
      choleskyFactor(singular, 3);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(NotPositiveDefiniteError);
      expect((err as NotPositiveDefiniteError).pivot).toBe(1);
    }
  });
});
