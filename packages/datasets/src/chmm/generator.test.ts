import { describe, expect, it } from 'vitest';
import { erf } from './activations.js';
import {
  chmmExpectedCorrelations,
  chmmMeasuredCorrelations,
  chmmPerturbationForCorrelation,
  correlatedHiddenManifold,
} from './generator.js';

const mean = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] as number;
  return s / a.length;
};

describe('erf', () => {
  it('matches reference values to 1e-14 on both sides of the series / continued-fraction switch', () => {
    const ref: [number, number][] = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.9, 0.9999589021219005],
      [3, 0.9999779095030014],
      [3.1, 0.9999883513426328],
      [3.5, 0.9999992569016276],
      [5, 0.9999999999984626],
    ];
    for (const [x, v] of ref) {
      expect(Math.abs(erf(x) - v)).toBeLessThan(1e-14);
      expect(Math.abs(erf(-x) + v)).toBeLessThan(1e-14);
    }
    expect(erf(7)).toBe(1);
    expect(erf(Number.NaN)).toBeNaN();
  });
});

describe('correlatedHiddenManifold', () => {
  const base = { D: 30, N: 50, activation: 'erf' as const, seed: 3 };

  it('has the documented shapes and labels y = sign(θ·c/√D)', () => {
    const m = correlatedHiddenManifold({
      ...base,
      featurePerturbation: 0.5,
      teacherPerturbation: 1,
    });
    expect(m.matrices.Fs.rows).toBe(30);
    expect(m.matrices.Fs.cols).toBe(50);
    expect(m.matrices.Fs.data).toHaveLength(30 * 50);
    expect(m.matrices.Ft.data).toHaveLength(30 * 50);
    expect(m.matrices.thetaS).toHaveLength(30);
    expect(m.matrices.thetaT).toHaveLength(30);
    for (const task of [m.source, m.target]) {
      const s = task.sampleWithLatent(40, 'a');
      expect(s.dataset.x).toBeInstanceOf(Float32Array);
      expect(s.dataset.x).toHaveLength(40 * 50);
      expect(s.dataset.y).toHaveLength(40);
      expect(s.dataset.shape).toEqual([50]);
      expect(s.dataset.numClasses).toBe(2);
      expect(s.latent).toHaveLength(40 * 30);
      for (let mu = 0; mu < 40; mu++) {
        let z = 0;
        for (let d = 0; d < 30; d++)
          z += (s.latent[mu * 30 + d] as number) * (task.theta[d] as number);
        z /= Math.sqrt(30);
        expect(s.teacherField[mu]).toBeCloseTo(z, 12);
        expect(s.dataset.y[mu]).toBe(z >= 0 ? 1 : 0);
        // x = σ(Fᵀc/√D), checked on one coordinate.
        let h = 0;
        for (let d = 0; d < 30; d++)
          h += (s.latent[mu * 30 + d] as number) * (task.F.data[d * 50 + 7] as number);
        expect(s.dataset.x[mu * 50 + 7]).toBeCloseTo(erf(h / Math.sqrt(30)), 6);
      }
    }
    expect(m.source.sample(0, 'empty').y).toHaveLength(0);
  });

  it('is deterministic per seed and stream; a longer sample of a stream extends a shorter one', () => {
    const a = correlatedHiddenManifold({
      ...base,
      featureSubstitution: 0.2,
      teacherPerturbation: 0.3,
    });
    const b = correlatedHiddenManifold({
      ...base,
      featureSubstitution: 0.2,
      teacherPerturbation: 0.3,
    });
    expect(b.matrices.Ft.data).toEqual(a.matrices.Ft.data);
    expect(b.matrices.thetaT).toEqual(a.matrices.thetaT);
    expect(b.target.sample(25, 'train').x).toEqual(a.target.sample(25, 'train').x);
    expect(a.target.sample(25, 'train').x).toEqual(a.target.sample(25, 'train').x);
    const long = a.target.sample(60, 'train');
    expect(long.x.subarray(0, 25 * 50)).toEqual(a.target.sample(25, 'train').x);
    expect(long.y.subarray(0, 25)).toEqual(a.target.sample(25, 'train').y);
    expect(a.target.sample(25, 'test').x).not.toEqual(a.target.sample(25, 'train').x);
    // Source and target streams are independent even with the same name.
    expect(a.source.sampleWithLatent(5, 'train').latent).not.toEqual(
      a.target.sampleWithLatent(5, 'train').latent,
    );
    const other = correlatedHiddenManifold({ ...base, seed: 4 });
    expect(other.matrices.Fs.data).not.toEqual(a.matrices.Fs.data);
  });

  it('keeps the source and the perturbation noise fixed while the correlation parameters vary', () => {
    const m0 = correlatedHiddenManifold(base);
    const m1 = correlatedHiddenManifold({
      ...base,
      featurePerturbation: 2,
      teacherPerturbation: 2,
      featureSubstitution: 0.5,
    });
    expect(m1.matrices.Fs.data).toEqual(m0.matrices.Fs.data);
    expect(m1.matrices.thetaS).toEqual(m0.matrices.thetaS);
    expect(m1.source.sample(10, 's').x).toEqual(m0.source.sample(10, 's').x);
    // Substitution sets are nested as the fraction grows.
    const small = correlatedHiddenManifold({ ...base, featureSubstitution: 0.2 }).matrices
      .substituted;
    const large = correlatedHiddenManifold({ ...base, featureSubstitution: 0.6 }).matrices
      .substituted;
    expect(small).toHaveLength(6);
    expect(large).toHaveLength(18);
    for (const d of small) expect(large).toContain(d);
  });

  it('with zero perturbation the target is the source: same F and θ, same data for the same latents', () => {
    for (const activation of ['relu', 'tanh', 'erf', 'sign'] as const) {
      const m = correlatedHiddenManifold({ ...base, activation });
      expect(m.matrices.Ft.data).toEqual(m.matrices.Fs.data);
      expect(m.matrices.thetaT).toEqual(m.matrices.thetaS);
      expect(m.matrices.substituted).toEqual([]);
      const c = m.source.sampleWithLatent(30, 'c').latent;
      const s = m.source.fromLatent(c);
      const t = m.target.fromLatent(c);
      expect(t.dataset.x).toEqual(s.dataset.x);
      expect(t.dataset.y).toEqual(s.dataset.y);
      // Same distribution: the first two moments of independent samples agree.
      const xs = m.source.sample(4000, 'u').x;
      const xt = m.target.sample(4000, 'v').x;
      expect(Math.abs(mean(xs) - mean(xt))).toBeLessThan(0.02);
      const sq = (x: Float32Array) => mean(Array.from(x, (v) => v * v));
      expect(Math.abs(sq(xs) - sq(xt))).toBeLessThan(0.02);
    }
  });

  it('entries of F_s and F_t have correlation (1 − f)/√(1 + δ_F²) (Monte Carlo over 100,000 entries)', () => {
    for (const c of [
      { featurePerturbation: 0.5 },
      { featurePerturbation: 2 },
      { featureSubstitution: 0.3 },
      { featurePerturbation: 1, featureSubstitution: 0.5 },
    ]) {
      const m = correlatedHiddenManifold({ D: 400, N: 250, activation: 'sign', seed: 11, ...c });
      const expected = chmmExpectedCorrelations(c).featureCorrelation;
      // Sampling sd of the correlation estimate is ≤ 1/√(DN) ≈ 0.003 (entries); substitution
      // adds the fluctuation of D − round(fD) whole rows, also ≈ 0.003 here.
      expect(chmmMeasuredCorrelations(m.matrices).featureCorrelation).toBeCloseTo(expected, 1);
      expect(
        Math.abs(chmmMeasuredCorrelations(m.matrices).featureCorrelation - expected),
      ).toBeLessThan(0.015);
      // Perturbation keeps unit-variance entries, so pre-activations keep unit variance.
      expect(mean(Array.from(m.matrices.Ft.data, (v) => v * v))).toBeCloseTo(1, 1);
    }
  });

  it('input coordinates of source and target agree as the feature correlation says (sign activation)', () => {
    // Same latent c: h_s = F_sᵢᵀc/√D and h_t = F_tᵢᵀc/√D are jointly Gaussian with correlation
    // ≈ r_F, so P(sign h_s = sign h_t) = 1 − arccos(r_F)/π.
    const c = { featurePerturbation: 1 };
    const m = correlatedHiddenManifold({ D: 200, N: 200, activation: 'sign', seed: 5, ...c });
    const r = chmmMeasuredCorrelations(m.matrices).featureCorrelation;
    const latent = m.source.sampleWithLatent(2000, 'c').latent;
    const xs = m.source.fromLatent(latent).dataset.x;
    const xt = m.target.fromLatent(latent).dataset.x;
    let agree = 0;
    for (let i = 0; i < xs.length; i++) if (xs[i] === xt[i]) agree++;
    expect(Math.abs(agree / xs.length - (1 - Math.acos(r) / Math.PI))).toBeLessThan(0.01);
  });

  it('teacher overlap is 1/√(1 + δ_θ²) and labels of a shared latent agree with probability 1 − arccos(r)/π', () => {
    for (const teacherPerturbation of [0.25, 1, 3]) {
      const expected = chmmExpectedCorrelations({ teacherPerturbation });
      // Overlap at large D (no samples needed): sd of the estimate ≈ (1 − r²)/√D ≤ 0.014.
      const big = correlatedHiddenManifold({
        D: 5000,
        N: 1,
        activation: 'sign',
        seed: 21,
        teacherPerturbation,
      });
      expect(
        Math.abs(chmmMeasuredCorrelations(big.matrices).teacherOverlap - expected.teacherOverlap),
      ).toBeLessThan(0.045);
      // Label agreement on shared latents: exactly 1 − arccos(r)/π given the realised overlap r
      // (Gaussian latents), at any D; binomial sd ≤ 0.0065 with 6000 latents.
      const m = correlatedHiddenManifold({
        D: 300,
        N: 1,
        activation: 'sign',
        seed: 21,
        teacherPerturbation,
      });
      const r = chmmMeasuredCorrelations(m.matrices).teacherOverlap;
      const latent = m.source.sampleWithLatent(6000, 'c').latent;
      const ys = m.source.fromLatent(latent).dataset.y;
      const yt = m.target.fromLatent(latent).dataset.y;
      let agree = 0;
      for (let i = 0; i < ys.length; i++) if (ys[i] === yt[i]) agree++;
      expect(Math.abs(agree / ys.length - (1 - Math.acos(r) / Math.PI))).toBeLessThan(0.025);
    }
  });

  it('labels are balanced (≈ 50% each class) for every activation and on source and target', () => {
    for (const activation of ['relu', 'tanh', 'erf', 'sign'] as const) {
      const m = correlatedHiddenManifold({
        ...base,
        activation,
        teacherPerturbation: 0.7,
        seed: 9,
      });
      for (const task of [m.source, m.target]) {
        const y = task.sample(10_000, 'balance').y;
        // P(y = +1) = 1/2 exactly by the symmetry c → −c; binomial sd 0.005.
        expect(Math.abs(mean(y) - 0.5)).toBeLessThan(0.02);
      }
    }
  });

  it('activations: relu ≥ 0, sign ∈ {±1}; unit-variance pre-activations on source and perturbed target', () => {
    const m = correlatedHiddenManifold({
      D: 100,
      N: 100,
      activation: 'relu',
      seed: 2,
      featurePerturbation: 3,
    });
    for (const task of [m.source, m.target]) {
      const x = task.sample(2000, 'v').x;
      expect(x.every((v) => v >= 0)).toBe(true);
      // E relu(ξ)² = 1/2 for ξ ~ N(0, 1).
      expect(mean(Array.from(x, (v) => v * v))).toBeCloseTo(0.5, 1);
    }
    const s = correlatedHiddenManifold({ ...base, activation: 'sign' }).source.sample(50, 'v').x;
    for (const v of s) expect(Math.abs(v)).toBe(1);
  });

  it('rejects invalid options with a clear message', () => {
    expect(() => correlatedHiddenManifold({ ...base, D: 0 })).toThrow(
      /D must be a positive integer/,
    );
    expect(() => correlatedHiddenManifold({ ...base, N: 2.5 })).toThrow(
      /N must be a positive integer/,
    );
    expect(() =>
      correlatedHiddenManifold({ ...base, activation: 'gelu' as unknown as 'relu' }),
    ).toThrow(/unknown activation "gelu"; valid activations: relu, tanh, erf, sign/);
    expect(() => correlatedHiddenManifold({ ...base, featurePerturbation: -1 })).toThrow(
      /featurePerturbation/,
    );
    expect(() => correlatedHiddenManifold({ ...base, teacherPerturbation: Number.NaN })).toThrow(
      /teacherPerturbation/,
    );
    expect(() => correlatedHiddenManifold({ ...base, featureSubstitution: 1.5 })).toThrow(
      /featureSubstitution must be in \[0, 1\]/,
    );
    expect(() => correlatedHiddenManifold({ ...base, seed: Number.NaN })).toThrow(/seed/);
    const m = correlatedHiddenManifold(base);
    expect(() => m.source.sample(-1)).toThrow(/non-negative integer/);
    expect(() => m.source.fromLatent([1, 2, 3])).toThrow(/not a multiple of D = 30/);
  });

  it('chmmPerturbationForCorrelation inverts the overlap formula', () => {
    for (const r of [1, 0.9, 0.5, 0.1]) {
      const d = chmmPerturbationForCorrelation(r);
      expect(chmmExpectedCorrelations({ teacherPerturbation: d }).teacherOverlap).toBeCloseTo(
        r,
        12,
      );
    }
    expect(() => chmmPerturbationForCorrelation(0)).toThrow(/\(0, 1\]/);
  });
});
