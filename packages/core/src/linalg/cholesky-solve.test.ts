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

// ---------------------------------------------------------------------------
// A float64 reference for the ∂A checks, independent of the code under test:
// Gaussian elimination with partial pivoting instead of Cholesky, on the
// symmetric part of A — the function's contract is X(A, B) = sym(A)⁻¹B with
// sym(A) = ½(A + Aᵀ), so its gradient w.r.t. A is symmetric and a single
// off-diagonal entry A[i][j] moves the result by half of what moving the
// pair A[i][j], A[j][i] together does.
// ---------------------------------------------------------------------------

/** sym(A)⁻¹B in float64, by Gaussian elimination with partial pivoting. */
function solve64(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      m[i * n + j] = 0.5 * ((a[i * n + j] as number) + (a[j * n + i] as number));
  const x = Float64Array.from(b as ArrayLike<number>);
  for (let col = 0; col < n; col++) {
    let p = col;
    for (let r = col + 1; r < n; r++)
      if (Math.abs(m[r * n + col] as number) > Math.abs(m[p * n + col] as number)) p = r;
    if (p !== col) {
      for (let c = 0; c < n; c++) {
        const t = m[col * n + c] as number;
        m[col * n + c] = m[p * n + c] as number;
        m[p * n + c] = t;
      }
      for (let c = 0; c < k; c++) {
        const t = x[col * k + c] as number;
        x[col * k + c] = x[p * k + c] as number;
        x[p * k + c] = t;
      }
    }
    const piv = m[col * n + col] as number;
    for (let r = col + 1; r < n; r++) {
      const f = (m[r * n + col] as number) / piv;
      if (f === 0) continue;
      for (let c = col; c < n; c++) m[r * n + c]! -= f * (m[col * n + c] as number);
      for (let c = 0; c < k; c++) x[r * k + c]! -= f * (x[col * k + c] as number);
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    for (let c = 0; c < k; c++) {
      let s = x[r * k + c] as number;
      for (let j = r + 1; j < n; j++) s -= (m[r * n + j] as number) * (x[j * k + c] as number);
      x[r * k + c] = s / (m[r * n + r] as number);
    }
  }
  return x;
}

/** The float64 twin of `lossOf(w)`: Σ W⊙X + ½ Σ X² with X = sym(A)⁻¹B. */
function loss64(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  w: ArrayLike<number>,
  n: number,
  k: number,
) {
  const x = solve64(a, b, n, k);
  let s = 0;
  for (let i = 0; i < n * k; i++)
    s += (w[i] as number) * (x[i] as number) + 0.5 * (x[i] as number) ** 2;
  return s;
}

/**
 * ∂loss64/∂A in float64 in closed form, −½(S Xᵀ + X Sᵀ) with S = sym(A)⁻¹(W + X).
 * Not taken on trust: the first-order test checks it against finite
 * differences of `loss64` before the second-order tests build on it.
 */
function gradA64(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  w: ArrayLike<number>,
  n: number,
  k: number,
) {
  const x = solve64(a, b, n, k);
  const s = solve64(
    a,
    x.map((v, i) => v + (w[i] as number)),
    n,
    k,
  );
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let c = 0; c < k; c++)
        acc +=
          (s[i * k + c] as number) * (x[j * k + c] as number) +
          (x[i * k + c] as number) * (s[j * k + c] as number);
      g[i * n + j] = -0.5 * acc;
    }
  return g;
}

/** Central finite differences of a float64 function, one entry of `at` at a time. */
function fdEach(fn: (p: number[]) => number, at: ArrayLike<number>, h: number): number[] {
  return Array.from(at, (_, idx) => {
    const plus = Array.from(at);
    const minus = Array.from(at);
    plus[idx]! += h;
    minus[idx]! -= h;
    return (fn(plus) - fn(minus)) / (2 * h);
  });
}

/** max_i |p_i − q_i| / max_i |q_i|. */
const relErr = (p: ArrayLike<number>, q: ArrayLike<number>) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < q.length; i++) {
    num = Math.max(num, Math.abs((p[i] as number) - (q[i] as number)));
    den = Math.max(den, Math.abs(q[i] as number));
  }
  return num / den;
};

/** Float32-exact inputs, so the float64 reference sees the very numbers tfjs holds. */
const f32 = (v: ArrayLike<number>) => Array.from(v, (x) => Math.fround(x));
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

    it('∂L/∂A matches float64 central finite differences entry by entry (symmetric contract)', () => {
      // Well-conditioned SPD A (eigenvalues ≥ 1, condition ~5), k ≠ n, and a
      // loss with random projection weights W so every entry of X matters.
      const n = 6;
      const k = 3;
      const aVals = f32(spd(n, 60));
      const bVals = f32(createRng(61).normalArray(n * k));
      const wVals = f32(createRng(62).normalArray(n * k));
      const w = tf.tensor2d(wVals, [n, k]);
      const a = tf.tensor2d(aVals, [n, n]);
      const b = tf.tensor2d(bVals, [n, k]);
      // The reference is the same function: forward values agree.
      const x = choleskySolve(a, b);
      expect(relErr(x.dataSync(), solve64(aVals, bVals, n, k))).toBeLessThan(1e-6);
      const gA = tf.grad((ta: tf.Tensor) => lossOf(w)(ta, b))(a);
      const ga = Array.from(gA.dataSync());

      // Float64 FD of the float64 loss, each of the n² entries of A on its own
      // (h = 1e-5: truncation ~h² and rounding ~1e-16/h are both ≲ 1e-10).
      const h = 1e-5;
      const fd = fdEach((p) => loss64(p, bVals, wVals, n, k), aVals, h);
      // The closed-form float64 gradient that the second-order tests build on.
      const ref = gradA64(aVals, bVals, wVals, n, k);
      expect(relErr(ref, fd)).toBeLessThan(1e-8);
      // The gradient is symmetric, so a lone off-diagonal entry gets half of
      // the pair's derivative (a one-triangle gradient — G[i][j] + G[j][i] on
      // one side, 0 on the other — or −S Xᵀ would fail here).
      const err = relErr(ga, fd);
      note(`${backend} dL/dA (float64 FD)`, err);
      expect(err).toBeLessThan(1e-5);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < i; j++) expect(ga[i * n + j]).toBe(ga[j * n + i]);
      // Moving A[i][j] and A[j][i] together: G[i][j] + G[j][i].
      const scale = Math.max(...fd.map(Math.abs));
      for (const [i, j] of [
        [1, 4],
        [5, 0],
        [3, 2],
      ] as const) {
        const pair = (sign: number) => {
          const p = [...aVals];
          p[i * n + j]! += sign * h;
          p[j * n + i]! += sign * h;
          return loss64(p, bVals, wVals, n, k);
        };
        const fdPair = (pair(1) - pair(-1)) / (2 * h);
        expect(
          Math.abs(fdPair - (ga[i * n + j] as number) - (ga[j * n + i] as number)) / scale,
        ).toBeLessThan(1e-5);
      }
      tf.dispose([w, a, b, x, gA]);
    });

    // Second order through the ∂A branch: h(A, B) = R(∂L/∂A(A, B)) for a
    // scalar R of the first-order gradient. ∂L/∂A is computed inside an outer
    // tf.grads, so the recorded (tape-on) path of the gradient runs; its value
    // and h's gradients w.r.t. A and B are checked against the float64
    // reference and float64 finite differences of it.
    const reducers = [
      {
        name: '⟨∂L/∂A, V⟩ with a non-symmetric V',
        tf: (g: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(g, v)) as tf.Scalar,
        ref: (g: ArrayLike<number>, v: ArrayLike<number>) => dot(g, v),
      },
      {
        name: '½‖∂L/∂A‖²',
        tf: (g: tf.Tensor) => tf.mul(tf.sum(tf.square(g)), 0.5) as tf.Scalar,
        ref: (g: ArrayLike<number>) => 0.5 * dot(g, g),
      },
    ];
    for (const [r, reducer] of reducers.entries()) {
      it(`second order through ∂A: ∇ of ${reducer.name} w.r.t. A and B matches float64 finite differences`, () => {
        const n = 5;
        const k = 2;
        const seed = 70 + 10 * r;
        const aVals = f32(spd(n, seed));
        const bVals = f32(createRng(seed + 1).normalArray(n * k));
        const wVals = f32(createRng(seed + 2).normalArray(n * k));
        const vVals = f32(createRng(seed + 3).normalArray(n * n));
        const w = tf.tensor2d(wVals, [n, k]);
        const v = tf.tensor2d(vVals, [n, n]);
        const a = tf.tensor2d(aVals, [n, n]);
        const b = tf.tensor2d(bVals, [n, k]);
        let inner: number[] = [];
        const hOf = (ta: tf.Tensor, tb: tf.Tensor) => {
          const dA = tf.grad((x: tf.Tensor) => lossOf(w)(x, tb))(ta);
          inner = Array.from(dA.dataSync());
          return reducer.tf(dA, v);
        };
        const { value, grads } = tf.valueAndGrads(hOf)([a, b]);
        const [hA, hB] = grads as [tf.Tensor, tf.Tensor];

        // The recorded first-order ∂L/∂A itself: symmetric, and the reference.
        const ref = gradA64(aVals, bVals, wVals, n, k);
        const errInner = relErr(inner, ref);
        note(`${backend} dL/dA recorded path`, errInner);
        expect(errInner).toBeLessThan(1e-5);
        for (let i = 0; i < n; i++)
          for (let j = 0; j < i; j++)
            expect(
              Math.abs((inner[i * n + j] as number) - (inner[j * n + i] as number)),
            ).toBeLessThan(1e-6 * Math.max(...ref.map(Math.abs)));
        const hRef = (p: ArrayLike<number>, q: ArrayLike<number>) =>
          reducer.ref(gradA64(p, q, wVals, n, k), vVals);
        expect(Math.abs((value.dataSync()[0] as number) - hRef(aVals, bVals))).toBeLessThan(
          1e-5 * Math.abs(hRef(aVals, bVals)),
        );

        // Its gradients, every entry, against float64 FD of the float64
        // first-order gradient (single entries of A; the contract makes ∇_A h
        // symmetric, which the FD of a function of sym(A) is too).
        const h = 1e-5;
        const fdA = fdEach((p) => hRef(p, bVals), aVals, h);
        const fdB = fdEach((q) => hRef(aVals, q), bVals, h);
        const errA = relErr(hA.dataSync(), fdA);
        const errB = relErr(hB.dataSync(), fdB);
        note(`${backend} second order via dL/dA, w.r.t. A`, errA);
        note(`${backend} second order via dL/dA, w.r.t. B`, errB);
        expect(errA).toBeLessThan(1e-5);
        expect(errB).toBeLessThan(1e-5);
        tf.dispose([w, v, a, b, value, hA, hB]);
      });
    }

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
