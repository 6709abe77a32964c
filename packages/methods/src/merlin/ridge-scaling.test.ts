import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { fitAndPredict, merlinOuterLoss, regressionTargets } from './head-fit.js';

/**
 * Pins the ridge head's regulariser λ' = λ · tr(K)/n (K = ΦΦᵀ on the train
 * half) with real numbers from an independent float64 computation — plain
 * JS, our own Gaussian elimination, nothing from @transferlab/core's linalg.
 *
 * The features are scaled so that tr(K)/n ≈ 50: a head regularised with λ
 * instead of λ·tr(K)/n (or with tr(K) instead of tr(K)/n) is off by a large
 * factor, and each test also checks, against the same float64 reference
 * evaluated with the wrong scaling, that such a head would be far outside
 * its tolerance.
 */

const C = 3;
const LAMBDA = 0.2;

/** X = A⁻¹B in float64 by Gaussian elimination with partial pivoting (A [n, n], B [n, k]). */
function gaussSolve(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number) {
  const m = Float64Array.from(a as ArrayLike<number>);
  const x = Float64Array.from(b as ArrayLike<number>);
  for (let col = 0; col < n; col++) {
    let p = col;
    for (let r = col + 1; r < n; r++)
      if (Math.abs(m[r * n + col] as number) > Math.abs(m[p * n + col] as number)) p = r;
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
    const piv = m[col * n + col] as number;
    for (let r = col + 1; r < n; r++) {
      const f = (m[r * n + col] as number) / piv;
      for (let c = col; c < n; c++) m[r * n + c]! -= f * (m[col * n + c] as number);
      for (let c = 0; c < k; c++) x[r * k + c]! -= f * (x[col * k + c] as number);
    }
  }
  for (let r = n - 1; r >= 0; r--)
    for (let c = 0; c < k; c++) {
      let s = x[r * k + c] as number;
      for (let j = r + 1; j < n; j++) s -= (m[r * n + j] as number) * (x[j * k + c] as number);
      x[r * k + c] = s / (m[r * n + r] as number);
    }
  return x;
}

/** P [r, c] = A [r, inner] · B [inner, c], or A · Bᵀ when `transB`. */
function matMul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  r: number,
  inner: number,
  c: number,
  transB = false,
) {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++)
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let t = 0; t < inner; t++)
        s +=
          (a[i * inner + t] as number) *
          (transB ? (b[j * inner + t] as number) : (b[t * c + j] as number));
      out[i * c + j] = s;
    }
  return out;
}

const transpose = (a: ArrayLike<number>, r: number, c: number) =>
  Float64Array.from(
    { length: r * c },
    (_, idx) => a[(idx % r) * c + Math.floor(idx / r)] as number,
  );

/** One-hot − 1/C, in float64. */
function targets64(labels: number[]) {
  const y = new Float64Array(labels.length * C).fill(-1 / C);
  labels.forEach((l, i) => {
    y[i * C + l] = 1 - 1 / C;
  });
  return y;
}

interface Problem {
  n: number;
  d: number;
  m: number;
  /** Train features [n, d], float32-exact. */
  phi: number[];
  /** Val features [m, d]: the identity I_d first (so those rows of P are W itself), then random rows. */
  val: number[];
  labels: number[];
}

/** Features with E‖φ‖² = d·std² ≈ 50, float32-exact so float64 sees the numbers tfjs holds. */
function problem(n: number, d: number, std: number, seed: number): Problem {
  const rng = createRng(seed);
  const phi = Array.from(rng.normalArray(n * d, std));
  const rows = 4;
  const val = [
    ...Array.from({ length: d * d }, (_, i) => (Math.floor(i / d) === i % d ? 1 : 0)),
    ...Array.from(rng.normalArray(rows * d, std)),
  ];
  const labels = Array.from({ length: n }, (_, i) => i % C);
  return { n, d, m: d + rows, phi, val, labels };
}

/** tr(K)/n = the mean squared norm of a train row. */
const meanSquaredNorm = ({ n, phi }: Problem) => phi.reduce((s, v) => s + v * v, 0) / n;

/** The closed-form ridge predictions in float64 (dual form), with regulariser `reg` added to K. */
function ridge64(p: Problem, reg: number): Float64Array {
  const { n, d, m, phi, val } = p;
  const k = matMul(phi, phi, n, d, n, true);
  for (let i = 0; i < n; i++) k[i * n + i]! += reg;
  const alpha = gaussSolve(k, targets64(p.labels), n, C);
  const w = matMul(transpose(phi, n, d), alpha, d, n, C);
  return matMul(val, w, m, d, C);
}

/**
 * `steps` of gradient descent from W = 0 on (1/2n)‖ΦW − Y‖² + (μ/2)‖W‖²,
 * μ = reg/n, step innerLr / (tr(K)/n + μ), in float64 — written in the
 * primal (on W), while head-fit.ts iterates the dual coefficients.
 */
function descent64(p: Problem, reg: number, steps: number, innerLr: number): Float64Array {
  const { n, d, m, phi, val } = p;
  const y = targets64(p.labels);
  const mu = reg / n;
  const eta = innerLr / (meanSquaredNorm(p) + mu);
  const phiT = transpose(phi, n, d);
  let w = new Float64Array(d * C);
  for (let t = 0; t < steps; t++) {
    const resid = matMul(phi, w, n, d, C).map((v, i) => v - (y[i] as number));
    const grad = matMul(phiT, resid, d, n, C).map((g, i) => g / n + mu * (w[i] as number));
    w = w.map((v, i) => v - eta * (grad[i] as number));
  }
  return matMul(val, w, m, d, C);
}

/** max |p − q| / max |q|. */
function relErr(p: ArrayLike<number>, q: ArrayLike<number>) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < q.length; i++) {
    num = Math.max(num, Math.abs((p[i] as number) - (q[i] as number)));
    den = Math.max(den, Math.abs(q[i] as number));
  }
  return num / den;
}

function predict(
  p: Problem,
  opts: { innerSteps: number; innerLr?: number; form?: 'auto' | 'primal' | 'dual' },
) {
  return tf.tidy(() =>
    Array.from(
      fitAndPredict(
        tf.tensor2d(p.phi, [p.n, p.d]),
        tf.tensor2d(p.val, [p.m, p.d]),
        regressionTargets(p.labels, C),
        { head: 'ridge', lambda: LAMBDA, innerLr: 1, ...opts },
      ).dataSync(),
    ),
  );
}

// n ≤ d (auto picks the dual) and n > d (auto picks the primal).
const problems = {
  'n = 6 ≤ d = 8': problem(6, 8, 2.5, 1),
  'n = 12 > d = 4': problem(12, 4, 3.5, 2),
};

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`MeRLin ridge head: λ' = λ·tr(K)/n (${backend})`, () => {
    beforeAll(async () => {
      await initBackend({ backend });
    });

    for (const [label, p] of Object.entries(problems)) {
      it(`closed form, ${label}: W and the val predictions match float64 with λ·tr(K)/n`, () => {
        const scale = meanSquaredNorm(p);
        // The test is only sharp if the two scalings are far apart.
        expect(scale).toBeGreaterThan(30);
        expect(scale).toBeLessThan(80);
        const expected = ridge64(p, LAMBDA * scale);
        // Heads with the wrong scaling, which must be far outside the tolerance.
        for (const wrong of [LAMBDA, LAMBDA * scale * p.n]) {
          expect(relErr(ridge64(p, wrong), expected)).toBeGreaterThan(0.1);
        }
        for (const form of ['auto', 'primal', 'dual'] as const) {
          const got = predict(p, { innerSteps: 0, form });
          // The first d rows are W [d, C] itself (val rows = I_d).
          const w = got.slice(0, p.d * C);
          expect(relErr(w, expected.slice(0, p.d * C))).toBeLessThan(1e-5);
          expect(relErr(got, expected)).toBeLessThan(1e-5);
        }
      });

      it(`inner gradient steps, ${label}: μ = λ'/n and η = lr/(tr(K)/n + μ) with λ' = λ·tr(K)/n`, () => {
        const scale = meanSquaredNorm(p);
        const innerLr = 1.5;
        // 8 steps: mid-trajectory (pins the step size too); 60: near the fixed point.
        for (const steps of [8, 60]) {
          const expected = descent64(p, LAMBDA * scale, steps, innerLr);
          expect(relErr(descent64(p, LAMBDA, steps, innerLr), expected)).toBeGreaterThan(0.05);
          const got = predict(p, { innerSteps: steps, innerLr });
          expect(relErr(got, expected)).toBeLessThan(1e-5);
        }
      });
    }

    it('the outer loss on the ridge head is the cross-entropy of the float64 predictions', () => {
      // merlinOuterLoss takes the train rows first, then the val rows.
      const p = problems['n = 6 ≤ d = 8'];
      const valLabels = Array.from({ length: p.m }, (_, i) => (i * 2) % C);
      const logitScale = 3;
      const ce = (pred: Float64Array) => {
        let s = 0;
        for (let i = 0; i < p.m; i++) {
          const z = [0, 1, 2].map((c) => logitScale * (pred[i * C + c] as number));
          const mx = Math.max(...z);
          const lse = mx + Math.log(z.reduce((acc, v) => acc + Math.exp(v - mx), 0));
          s += lse - (z[valLabels[i] as number] as number);
        }
        return s / p.m;
      };
      const expected = ce(ridge64(p, LAMBDA * meanSquaredNorm(p)));
      const wrong = ce(ridge64(p, LAMBDA));
      expect(Math.abs(wrong - expected)).toBeGreaterThan(0.01);
      const got = tf.tidy(
        () =>
          merlinOuterLoss({
            feats: tf.tensor2d([...p.phi, ...p.val], [p.n + p.m, p.d]),
            nTrain: p.n,
            trainTargets: regressionTargets(p.labels, C),
            valLabels: tf.tensor1d(valLabels, 'int32'),
            logitScale,
            fit: { head: 'ridge', lambda: LAMBDA, innerSteps: 0, innerLr: 1 },
          }).dataSync()[0] as number,
      );
      expect(Math.abs(got - expected)).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected)));
    });
  });
}
