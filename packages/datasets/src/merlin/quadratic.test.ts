import { describe, expect, it } from 'vitest';
import { classCounts } from '../transforms.js';
import type { Dataset } from '../types.js';
import {
  directionEnergy,
  merlinQuadratic,
  type QuadraticGroundTruth,
  quadraticGroundTruth,
  quadraticTarget,
  quadraticTaskSpec,
  quadraticTransferTask,
} from './quadratic.js';

function row(m: Float32Array, j: number, d: number): Float32Array {
  return m.subarray(j * d, (j + 1) * d);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>, offset = 0): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[offset + i] as number);
  return s;
}

/** Σ_j a_j (w_j · x)² / scale² with w = the source-specific directions. */
function viaSourceSpecific(gt: QuadraticGroundTruth, x: ArrayLike<number>, offset: number): number {
  let f = 0;
  for (let j = 0; j < gt.rank; j++) {
    const v = dot(row(gt.sourceSpecificDirections, j, gt.dim), x, offset);
    f += (gt.headWeights[j] as number) * v * v;
  }
  return f;
}

function signAccuracy(ds: Dataset, predict: (offset: number) => number): number {
  const d = ds.shape[0] as number;
  let ok = 0;
  for (let i = 0; i < ds.y.length; i++) if ((predict(i * d) > 0 ? 1 : 0) === ds.y[i]) ok++;
  return ok / ds.y.length;
}

/**
 * "Pre-training" in closed form: ridge regression of the source targets on
 * all quadratic monomials (x^T M x with M symmetric; the off-diagonal
 * monomials scaled by √2 so the penalty is ‖M‖_F²). Returns M.
 */
function ridgeQuadratic(x: Float32Array, f: Float32Array, d: number, lambda: number): Float64Array {
  const pairs: [number, number][] = [];
  for (let i = 0; i < d; i++) for (let j = i; j < d; j++) pairs.push([i, j]);
  const p = pairs.length;
  const A = new Float64Array(p * p);
  const b = new Float64Array(p);
  const phi = new Float64Array(p);
  for (let n = 0; n < f.length; n++) {
    pairs.forEach(([i, j], k) => {
      const v = (x[n * d + i] as number) * (x[n * d + j] as number);
      phi[k] = i === j ? v : Math.SQRT2 * v;
    });
    for (let r = 0; r < p; r++) {
      b[r] = (b[r] as number) + (phi[r] as number) * (f[n] as number);
      for (let c = 0; c < p; c++)
        A[r * p + c] = (A[r * p + c] as number) + (phi[r] as number) * (phi[c] as number);
    }
  }
  for (let r = 0; r < p; r++) A[r * p + r] = (A[r * p + r] as number) + lambda;
  // Gaussian elimination (A is symmetric positive definite).
  for (let col = 0; col < p; col++) {
    const pivot = A[col * p + col] as number;
    for (let r = col + 1; r < p; r++) {
      const factor = (A[r * p + col] as number) / pivot;
      if (factor === 0) continue;
      for (let c = col; c < p; c++)
        A[r * p + c] = (A[r * p + c] as number) - factor * (A[col * p + c] as number);
      b[r] = (b[r] as number) - factor * (b[col] as number);
    }
  }
  const theta = new Float64Array(p);
  for (let r = p - 1; r >= 0; r--) {
    let s = b[r] as number;
    for (let c = r + 1; c < p; c++) s -= (A[r * p + c] as number) * (theta[c] as number);
    theta[r] = s / (A[r * p + r] as number);
  }
  const M = new Float64Array(d * d);
  pairs.forEach(([i, j], k) => {
    const t = theta[k] as number;
    if (i === j) M[i * d + i] = t;
    else {
      M[i * d + j] = t / Math.SQRT2;
      M[j * d + i] = t / Math.SQRT2;
    }
  });
  return M;
}

function quadForm(M: Float64Array, x: ArrayLike<number>, offset: number, d: number): number {
  let s = 0;
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++)
      s += (M[i * d + j] as number) * (x[offset + i] as number) * (x[offset + j] as number);
  return s;
}

describe('quadraticGroundTruth', () => {
  it('draws orthonormal transferable and source-specific directions, fixed by problemSeed', () => {
    const gt = quadraticGroundTruth({ dim: 12, rank: 3 });
    const d = 12;
    const rows = [0, 1, 2].flatMap((j) => [
      row(gt.targetDirections, j, d),
      row(gt.sourceSpecificDirections, j, d),
    ]);
    for (let a = 0; a < rows.length; a++)
      for (let b = 0; b < rows.length; b++)
        expect(dot(rows[a] as Float32Array, rows[b] as Float32Array)).toBeCloseTo(
          a === b ? 1 : 0,
          5,
        );
    expect(Array.from(gt.headWeights)).toEqual([1, -1, 1]);
    expect(quadraticGroundTruth({ dim: 12, rank: 3 }).targetDirections).toEqual(
      gt.targetDirections,
    );
    expect(quadraticGroundTruth({ dim: 12, rank: 3, problemSeed: 1 }).targetDirections).not.toEqual(
      gt.targetDirections,
    );
  });

  it('rejects settings that cannot hold the construction', () => {
    expect(() => quadraticGroundTruth({ dim: 3, rank: 2 })).toThrow(
      'dim (3) must be at least 2·rank (4)',
    );
    expect(() => quadraticGroundTruth({ rank: 1 })).toThrow('rank must be at least 2');
    expect(() => quadraticGroundTruth({ sourceSpecificScale: -1 })).toThrow('sourceSpecificScale');
    expect(() => quadraticGroundTruth({ sourceSpecificProbability: 2 })).toThrow(
      'sourceSpecificProbability must be in [0, 1]',
    );
  });
});

describe('quadraticTransferTask', () => {
  const problem = quadraticTransferTask({ seed: 5 });
  const { pair, groundTruth: gt, targets } = problem;
  const d = gt.dim;

  it('has the documented sizes, shapes, classes and regression targets', () => {
    expect(d).toBe(20);
    expect(pair.source.train.shape).toEqual([20]);
    expect(pair.source.train.y.length).toBe(2000);
    expect(classCounts(pair.target.train)).toEqual([10, 10]);
    expect(classCounts(pair.target.val)).toEqual([10, 10]);
    expect(classCounts(pair.target.test)).toEqual([500, 500]);
    expect(pair.target.test.classNames).toEqual(['negative', 'positive']);
    const splits: [Dataset, Float32Array][] = [
      [pair.source.train, targets.source],
      [pair.target.train, targets.targetTrain],
      [pair.target.val, targets.targetVal],
      [pair.target.test, targets.targetTest],
    ];
    for (const [ds, f] of splits) {
      expect(f.length).toBe(ds.y.length);
      for (let i = 0; i < ds.y.length; i++) expect(ds.y[i]).toBe((f[i] as number) > 0 ? 1 : 0);
    }
    // On the target (and on the source, by construction) f* of the inputs is the regression target.
    for (const [ds, f] of splits) {
      for (let i = 0; i < ds.y.length; i += 7)
        expect(quadraticTarget(gt, ds.x, i * d)).toBeCloseTo(f[i] as number, 3);
    }
    // Source classes are about balanced (f* is symmetric in sign for k = 2).
    const [neg, pos] = classCounts(pair.source.train) as [number, number];
    expect(Math.abs(neg - pos)).toBeLessThan(200);
  });

  it('source examples carry κ·(u_j·x) along v_j, so the source-specific directions solve the source', () => {
    expect(problem.sourceCarriers.every((c) => c === 1)).toBe(true);
    const src = pair.source.train;
    for (let i = 0; i < 50; i++) {
      for (let j = 0; j < gt.rank; j++) {
        const t = dot(row(gt.targetDirections, j, d), src.x, i * d);
        const v = dot(row(gt.sourceSpecificDirections, j, d), src.x, i * d);
        expect(v).toBeCloseTo(3 * t, 4);
      }
    }
    expect(signAccuracy(src, (o) => quadraticTarget(gt, src.x, o))).toBe(1);
    expect(signAccuracy(src, (o) => viaSourceSpecific(gt, src.x, o))).toBe(1);
    // On the target, the source-specific directions are independent noise: chance level.
    const test = pair.target.test;
    expect(signAccuracy(test, (o) => quadraticTarget(gt, test.x, o))).toBe(1);
    const chance = signAccuracy(test, (o) => viaSourceSpecific(gt, test.x, o));
    expect(chance).toBeGreaterThan(0.42);
    expect(chance).toBeLessThan(0.58);
  });

  it('carries the source-specific feature with the stated probability', () => {
    const half = quadraticTransferTask({ seed: 2, sourceSpecificProbability: 0.3 });
    const count = half.sourceCarriers.reduce((a, b) => a + b, 0);
    expect(Math.abs(count - 600)).toBeLessThan(4 * Math.sqrt(2000 * 0.3 * 0.7));
    const none = quadraticTransferTask({ seed: 2, sourceSpecificProbability: 0 });
    expect(none.sourceCarriers.every((c) => c === 0)).toBe(true);
  });

  it('is deterministic per seed, and a larger labelsPerClass extends the training set', () => {
    const again = quadraticTransferTask({ seed: 5 });
    expect(again.pair.source.train.x).toEqual(pair.source.train.x);
    expect(again.pair.target.test.x).toEqual(pair.target.test.x);
    const other = quadraticTransferTask({ seed: 6 });
    expect(other.pair.source.train.x).not.toEqual(pair.source.train.x);
    expect(other.groundTruth).toEqual(gt); // same problem, new samples
    const bigger = quadraticTransferTask({ seed: 5, labelsPerClass: 25 });
    const rows = (ds: Dataset) =>
      Array.from({ length: ds.y.length }, (_, i) =>
        Array.from(ds.x.subarray(i * d, i * d + d)).join(),
      );
    const big = new Set(rows(bigger.pair.target.train));
    expect(rows(pair.target.train).every((r) => big.has(r))).toBe(true);
    expect(bigger.pair.target.val.x).toEqual(pair.target.val.x);
  });

  it('min-norm quadratic regression on the source transfers at κ = 0 and fails at κ = 3', () => {
    // A small instance, so the closed-form fit over all d(d+1)/2 monomials is quick.
    const fit = (kappa: number) => {
      const p = quadraticTransferTask({
        seed: 1,
        dim: 8,
        sourceSpecificScale: kappa,
        sourceSize: 1500,
      });
      const M = ridgeQuadratic(p.pair.source.train.x, p.targets.source, 8, 1e-3);
      const test = p.pair.target.test;
      return {
        source: signAccuracy(p.pair.source.train, (o) => quadForm(M, p.pair.source.train.x, o, 8)),
        target: signAccuracy(test, (o) => quadForm(M, test.x, o, 8)),
      };
    };
    const clean = fit(0);
    const shortcut = fit(3);
    expect(clean.source).toBeGreaterThan(0.99);
    expect(shortcut.source).toBeGreaterThan(0.99);
    expect(clean.target).toBeGreaterThan(0.97);
    expect(shortcut.target).toBeLessThan(0.7);
  });
});

describe('directionEnergy', () => {
  it('is 1 on the ground truth and κ²/(1+κ²) on the v-side for the min-norm shortcut units', () => {
    const gt = quadraticGroundTruth();
    expect(directionEnergy(gt, gt.targetDirections).transferable).toBeCloseTo(1, 5);
    expect(directionEnergy(gt, gt.sourceSpecificDirections).sourceSpecific).toBeCloseTo(1, 5);
    const kappa = 3;
    const w = new Float32Array(gt.rank * gt.dim);
    for (let j = 0; j < gt.rank; j++)
      for (let i = 0; i < gt.dim; i++)
        w[j * gt.dim + i] =
          (row(gt.targetDirections, j, gt.dim)[i] as number) / (1 + kappa ** 2) +
          (kappa * (row(gt.sourceSpecificDirections, j, gt.dim)[i] as number)) / (1 + kappa ** 2);
    const e = directionEnergy(gt, w);
    expect(e.sourceSpecific).toBeCloseTo(0.9, 4);
    expect(e.transferable).toBeCloseTo(0.1, 4);
    expect(e.rest).toBeCloseTo(0, 4);
    expect(() => directionEnergy(gt, new Float32Array(7))).toThrow(
      'not a positive multiple of dim 20',
    );
  });
});

describe('merlin-quadratic task spec', () => {
  it('builds the default pair, takes overrides and normalizes', async () => {
    expect(merlinQuadratic.id).toBe('merlin-quadratic');
    expect(merlinQuadratic.problem).toEqual({
      dim: 20,
      rank: 2,
      sourceSpecificScale: 3,
      sourceSpecificProbability: 1,
      problemSeed: 0,
    });
    const t0 = Date.now();
    const pair = await merlinQuadratic.build({ seed: 5 });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(pair.source.train.x).toEqual(quadraticTransferTask({ seed: 5 }).pair.source.train.x);
    const small = await merlinQuadratic.build({
      seed: 0,
      dim: 6,
      sourceSpecificScale: 0,
      labelsPerClass: 3,
      testPerClass: 20,
      sourceSize: 100,
      normalization: 'source-per-feature',
    });
    expect(small.source.train.shape).toEqual([6]);
    expect(small.target.train.y.length).toBe(6);
    expect(small.target.test.y.length).toBe(40);
    expect(small.description).toContain('"dim":6');
    const custom = quadraticTaskSpec({ id: 'merlin-quadratic-k4', rank: 4, dim: 16 });
    const built = await custom.build({ seed: 0 });
    expect(built.id).toBe('merlin-quadratic-k4');
    expect(built.source.train.shape).toEqual([16]);
    await expect(merlinQuadratic.build({ seed: Number.NaN })).rejects.toThrow(
      'finite numeric seed',
    );
  });
});
