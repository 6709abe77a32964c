import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import {
  assertPositiveSemidefinite,
  type Dense,
  diagonal,
  identity,
  matmul,
  matmulTransposeA,
  matvec,
  NotPositiveSemidefiniteError,
  psdEigen,
  solveSpd,
  symmetrize,
  transpose,
} from './dense.js';

function random(rows: number, cols: number, seed: number): Dense {
  const rng = createRng(seed);
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return { rows, cols, data };
}

describe('dense products', () => {
  it('matmul, matmulTransposeA, transpose and matvec agree with each other and by hand', () => {
    const a: Dense = { rows: 2, cols: 3, data: Float64Array.from([1, 2, 3, 4, 5, 6]) };
    const b: Dense = { rows: 3, cols: 2, data: Float64Array.from([1, 0, 0, 1, 1, 1]) };
    expect(Array.from(matmul(a, b).data)).toEqual([4, 5, 10, 11]);
    expect(Array.from(matvec(a, [1, 1, 1]))).toEqual([6, 15]);
    const x = random(7, 4, 1);
    const y = random(7, 5, 2);
    const viaT = matmul(transpose(x), y);
    const direct = matmulTransposeA(x, y);
    for (let i = 0; i < viaT.data.length; i++)
      expect(direct.data[i] as number).toBeCloseTo(viaT.data[i] as number, 12);
    expect(Array.from(matmul(identity(3), b).data)).toEqual(Array.from(b.data));
  });

  it('name the mismatched shapes', () => {
    expect(() => matmul(random(2, 3, 1), random(2, 3, 2), 'ctx')).toThrow(
      /ctx: cannot multiply \[2, 3\] by \[2, 3\]/,
    );
    expect(() => matvec(random(2, 3, 1), [1, 2])).toThrow(/vector has length 2/);
    expect(() => matmulTransposeA(random(2, 3, 1), random(4, 3, 2))).toThrow(/2 ≠ 4 rows/);
  });
});

describe('symmetric and PSD checks', () => {
  it('symmetrize accepts rounding-level asymmetry and rejects real asymmetry, naming the entry', () => {
    const m: Dense = { rows: 2, cols: 2, data: Float64Array.from([1, 0.5, 0.5 + 1e-12, 1]) };
    expect(symmetrize(m, 'f', 'M').data[1]).toBeCloseTo(0.5, 11);
    const bad: Dense = { rows: 2, cols: 2, data: Float64Array.from([1, 0.5, 0.4, 1]) };
    expect(() => symmetrize(bad, 'f', 'M')).toThrow(
      /f: M is not symmetric: M\[0\]\[1\] = 0.5 but M\[1\]\[0\] = 0.4/,
    );
  });

  it('psdEigen reconstructs A = VΛVᵀ, clamps rounding negatives, rejects indefinite matrices', () => {
    const g = random(6, 4, 3);
    const a = matmul(g, transpose(g)); // rank 4, PSD
    const { values, vectors } = psdEigen(a, 'f', 'A');
    for (const v of values) expect(v).toBeGreaterThanOrEqual(0);
    const v: Dense = { rows: 6, cols: 6, data: vectors };
    const back = matmul(matmul(v, diagonal(values)), transpose(v));
    for (let i = 0; i < 36; i++)
      expect(back.data[i] as number).toBeCloseTo(a.data[i] as number, 10);
    const indefinite: Dense = { rows: 2, cols: 2, data: Float64Array.from([1, 2, 2, 1]) };
    expect(() => psdEigen(indefinite, 'f', 'A')).toThrow(NotPositiveSemidefiniteError);
    expect(() => psdEigen(indefinite, 'f', 'A')).toThrow(
      /f: A is not positive semi-definite: it has an eigenvalue -1/,
    );
  });

  it('assertPositiveSemidefinite passes singular PSD matrices and fails indefinite ones', () => {
    const g = random(5, 2, 4);
    expect(() => assertPositiveSemidefinite(matmul(g, transpose(g)), 'f', 'P')).not.toThrow();
    expect(() => assertPositiveSemidefinite(identity(3), 'f', 'P')).not.toThrow();
    const bad: Dense = { rows: 2, cols: 2, data: Float64Array.from([1, 0, 0, -0.5]) };
    expect(() => assertPositiveSemidefinite(bad, 'f', 'P')).toThrow(
      /f: P is not positive semi-definite/,
    );
  });

  it('solveSpd solves A X = B and reports a non-positive-definite A', () => {
    const g = random(5, 5, 5);
    const a = matmulTransposeA(g, g);
    for (let i = 0; i < 5; i++) a.data[i * 5 + i] = (a.data[i * 5 + i] as number) + 0.5;
    const b = random(5, 2, 6);
    const x = solveSpd(a, b);
    const ax = matmul(a, x);
    for (let i = 0; i < 10; i++) expect(ax.data[i] as number).toBeCloseTo(b.data[i] as number, 10);
    const singular: Dense = { rows: 2, cols: 2, data: Float64Array.from([1, 1, 1, 1]) };
    expect(() => solveSpd(singular, identity(2), 'ctx')).toThrow(
      /ctx: matrix is not symmetric positive definite/,
    );
    expect(() => solveSpd(a, random(3, 1, 7), 'ctx')).toThrow(/B needs 5 rows/);
  });
});
