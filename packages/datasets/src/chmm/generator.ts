/**
 * The correlated hidden-manifold model (CHMM) of Gerace, Saglietti, Sarao
 * Mannelli, Saxe, Zdeborová 2022, "Probing transfer learning with a model of
 * synthetic correlated datasets" (arXiv 2106.05418): a source and a target
 * binary classification task whose inputs are generated from one shared
 * latent space, with parametric control over how much the target's feature
 * map and labelling rule differ from the source's.
 *
 * ## The model (one task)
 *
 * A latent vector c ~ N(0, I_D). A feature matrix F ∈ R^{D×N} (entries
 * N(0, 1)) embeds it into input space through a pointwise activation σ, and
 * a teacher vector θ ∈ R^D (entries N(0, 1)) labels it:
 *
 *   x = σ(Fᵀc/√D) ∈ R^N,   z = θ·c/√D,   y = sign(z) ∈ {−1, +1}.
 *
 * The inputs lie on a D-dimensional manifold of R^N (the hidden-manifold
 * model of Goldt, Mézard, Krzakala, Zdeborová 2020), and the label is a
 * function of the latent coordinates only. In a `Dataset`, class 1 is y = +1
 * (z ≥ 0) and class 0 is y = −1.
 *
 * ## Source and target
 *
 * The source is (F_s, θ_s), drawn from the seed. The target shares the
 * latent space and is obtained from the source by three transformations,
 * each with its own parameter (all zero ⇒ F_t = F_s and θ_t = θ_s exactly,
 * so the target has the source's distribution):
 *
 * - **feature substitution** `featureSubstitution` = f ∈ [0, 1]: the feature
 *   vectors of round(f·D) latent directions (rows of F, chosen at random) are
 *   redrawn independently, i.e. those latent factors are embedded in input
 *   space in an unrelated way;
 * - **feature perturbation** `featurePerturbation` = δ_F ≥ 0:
 *   F_t = (F̄ + δ_F G)/√(1 + δ_F²), with F̄ the matrix after substitution and G
 *   an independent N(0, 1) matrix; the normalisation keeps the entries
 *   N(0, 1), so every target pre-activation still has unit variance;
 * - **teacher perturbation** `teacherPerturbation` = δ_θ ≥ 0:
 *   θ_t = (θ_s + δ_θ g)/√(1 + δ_θ²), g ~ N(0, I_D): the labelling rule
 *   rotates by the angle arctan δ_θ.
 *
 * Large-D correlations (checked by Monte Carlo in the tests, see
 * {@link chmmExpectedCorrelations}): entries of F_s and F_t have correlation
 * (1 − f)/√(1 + δ_F²); the teachers have overlap θ_s·θ_t/(‖θ_s‖‖θ_t‖) →
 * r_θ = 1/√(1 + δ_θ²); and source and target label a common latent point
 * identically with probability 1 − arccos(r_θ)/π.
 *
 * ## Provenance
 *
 * The model above (shared latent, x = σ(Fᵀc/√D), sign teacher on the latent,
 * a target made from the source by perturbing the feature map and the
 * teacher) is the paper's. The reference copies available while this was
 * written contained the paper's abstract and introduction but not its model
 * section, so the exact form of each transformation — the √(1 + δ²)
 * normalisation, substitution by rows of F, and the parameter names — is a
 * reconstruction chosen so that each parameter has the meaning stated above
 * and the target remains a hidden-manifold model with the source's
 * statistics. The paper also varies the latent dimension between source and
 * target (features added or deleted); that transformation is not implemented
 * here. Check against the paper's Section 2 before quoting its numbers.
 *
 * ## Randomness and streams
 *
 * Everything is drawn from `createRng(seed)` through named sub-streams, so
 * that (i) the source, the substitution set, G and g do not depend on the
 * correlation parameters — sweeping δ_F with one seed moves one target
 * continuously away from one source (common random numbers) — and (ii)
 * samples are addressed by a stream name: `sample(n, 'train')` always returns
 * the same n examples for a given seed and task, and `sample(m, 'train')`
 * with m > n starts with those n. Use different stream names for data that
 * must be independent (train / test / Monte Carlo); source and target
 * streams are independent even when their names coincide.
 */
import { createRng, type Rng } from '@transferlab/core';
import type { Dataset } from '../types.js';
import { CHMM_ACTIVATIONS, type ChmmActivation, chmmActivation } from './activations.js';

/** How the target differs from the source (all default to 0: identical tasks). */
export interface ChmmCorrelation {
  /** δ_F ≥ 0: F_t = (F̄ + δ_F G)/√(1 + δ_F²). */
  featurePerturbation?: number;
  /** f ∈ [0, 1]: fraction of the D latent directions whose feature vector (row of F) is redrawn. */
  featureSubstitution?: number;
  /** δ_θ ≥ 0: θ_t = (θ_s + δ_θ g)/√(1 + δ_θ²). */
  teacherPerturbation?: number;
}

export interface ChmmOptions extends ChmmCorrelation {
  /** Latent dimension. */
  D: number;
  /** Input dimension. */
  N: number;
  /** σ in x = σ(Fᵀc/√D). */
  activation: ChmmActivation;
  seed: number;
}

/** A row-major matrix (the `{data, rows, cols}` form the theory code accepts). */
export interface ChmmMatrix {
  readonly data: Float64Array;
  readonly rows: number;
  readonly cols: number;
}

export interface ChmmMatrices {
  /** Source feature matrix F_s, D×N (row d = how latent factor d enters the N inputs). */
  readonly Fs: ChmmMatrix;
  /** Target feature matrix F_t, D×N. */
  readonly Ft: ChmmMatrix;
  /** Source teacher θ_s ∈ R^D. */
  readonly thetaS: Float64Array;
  /** Target teacher θ_t ∈ R^D. */
  readonly thetaT: Float64Array;
  /** The latent directions whose features were substituted in the target (sorted). */
  readonly substituted: readonly number[];
}

export interface ChmmSample {
  readonly dataset: Dataset;
  /** The latent vectors c, n×D row-major. */
  readonly latent: Float64Array;
  /** The teacher field z = θ·c/√D of each example (the label is its sign). */
  readonly teacherField: Float64Array;
}

export interface ChmmTask {
  readonly role: 'source' | 'target';
  readonly F: ChmmMatrix;
  readonly theta: Float64Array;
  /**
   * n examples of stream `stream` (default 'default'): deterministic for a
   * given seed, task and stream, and a prefix of any longer sample of the
   * same stream.
   */
  sample(n: number, stream?: string | number): Dataset;
  /** Like `sample`, with the latent vectors and the teacher field. */
  sampleWithLatent(n: number, stream?: string | number): ChmmSample;
  /** Inputs and labels of this task for given latent vectors (n×D row-major, n = length/D). */
  fromLatent(latent: ArrayLike<number>): ChmmSample;
}

export interface CorrelatedHiddenManifold {
  readonly options: Readonly<Required<ChmmOptions>>;
  readonly source: ChmmTask;
  readonly target: ChmmTask;
  readonly matrices: ChmmMatrices;
}

const NAME = 'correlatedHiddenManifold';

function checkNonNegative(name: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0))
    throw new Error(`${NAME}: ${name} must be a finite number ≥ 0, got ${v}`);
}

function validate(o: ChmmOptions): Required<ChmmOptions> {
  if (!o || typeof o !== 'object') throw new Error(`${NAME}: options are required`);
  for (const k of ['D', 'N'] as const) {
    const v = o[k];
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`${NAME}: ${k} must be a positive integer, got ${v}`);
  }
  if (!(CHMM_ACTIVATIONS as readonly string[]).includes(o.activation))
    throw new Error(
      `${NAME}: unknown activation ${JSON.stringify(o.activation)}; valid activations: ${CHMM_ACTIVATIONS.join(', ')}`,
    );
  if (!Number.isFinite(o.seed))
    throw new Error(`${NAME}: seed must be a finite number, got ${o.seed}`);
  const featurePerturbation = o.featurePerturbation ?? 0;
  const teacherPerturbation = o.teacherPerturbation ?? 0;
  const featureSubstitution = o.featureSubstitution ?? 0;
  checkNonNegative('featurePerturbation', featurePerturbation);
  checkNonNegative('teacherPerturbation', teacherPerturbation);
  if (!(featureSubstitution >= 0 && featureSubstitution <= 1))
    throw new Error(`${NAME}: featureSubstitution must be in [0, 1], got ${featureSubstitution}`);
  return {
    D: o.D,
    N: o.N,
    activation: o.activation,
    seed: o.seed,
    featurePerturbation,
    teacherPerturbation,
    featureSubstitution,
  };
}

function gaussian(rng: Rng, length: number): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = rng.normal();
  return out;
}

/**
 * Build the source and target tasks of the correlated hidden-manifold model
 * (see the module comment for the definitions and the provenance).
 */
export function correlatedHiddenManifold(options: ChmmOptions): CorrelatedHiddenManifold {
  const o = validate(options);
  const { D, N } = o;
  const root = createRng(o.seed).derive('chmm');

  // Source (independent of the correlation parameters).
  const Fs = gaussian(root.derive('Fs'), D * N);
  const thetaS = gaussian(root.derive('thetaS'), D);

  // Target: substitution, then perturbation of the features; perturbation of the teacher.
  const nSub = Math.round(o.featureSubstitution * D);
  const order = root.derive('substitution-rows').permutation(D);
  const substituted = Array.from(order.subarray(0, nSub)).sort((a, b) => a - b);
  const fresh = root.derive('substitution-features');
  const Fbar = Float64Array.from(Fs);
  // Each substituted row comes from its own sub-stream, so a row's fresh features do not
  // depend on which other rows are substituted (nested sets as f grows).
  for (const d of substituted) {
    const r = fresh.derive(d);
    for (let i = 0; i < N; i++) Fbar[d * N + i] = r.normal();
  }
  const Ft = new Float64Array(D * N);
  const dF = o.featurePerturbation;
  if (dF === 0) Ft.set(Fbar);
  else {
    const G = gaussian(root.derive('feature-noise'), D * N);
    const s = 1 / Math.sqrt(1 + dF * dF);
    for (let k = 0; k < D * N; k++) Ft[k] = s * ((Fbar[k] as number) + dF * (G[k] as number));
  }
  const dT = o.teacherPerturbation;
  const thetaT = new Float64Array(D);
  if (dT === 0) thetaT.set(thetaS);
  else {
    const g = gaussian(root.derive('teacher-noise'), D);
    const s = 1 / Math.sqrt(1 + dT * dT);
    for (let d = 0; d < D; d++) thetaT[d] = s * ((thetaS[d] as number) + dT * (g[d] as number));
  }

  const sigma = chmmActivation(o.activation);
  const latentRoot = root.derive('latent');
  const makeTask = (role: 'source' | 'target', F: Float64Array, theta: Float64Array): ChmmTask => {
    const generate = (latent: Float64Array): ChmmSample => {
      if (latent.length % D !== 0)
        throw new Error(
          `${NAME}: ${role}.fromLatent: latent has ${latent.length} values, not a multiple of D = ${D}`,
        );
      const n = latent.length / D;
      const x = new Float32Array(n * N);
      const y = new Int32Array(n);
      const field = new Float64Array(n);
      const h = new Float64Array(N);
      const inv = 1 / Math.sqrt(D);
      for (let mu = 0; mu < n; mu++) {
        h.fill(0);
        let z = 0;
        for (let d = 0; d < D; d++) {
          const c = latent[mu * D + d] as number;
          z += c * (theta[d] as number);
          if (c === 0) continue;
          const row = d * N;
          for (let i = 0; i < N; i++) h[i] = (h[i] as number) + c * (F[row + i] as number);
        }
        const base = mu * N;
        for (let i = 0; i < N; i++) x[base + i] = sigma((h[i] as number) * inv);
        z *= inv;
        field[mu] = z;
        y[mu] = z >= 0 ? 1 : 0;
      }
      const dataset: Dataset = {
        name: `chmm-${role}`,
        x,
        y,
        shape: [N],
        numClasses: 2,
        classNames: ['-1', '+1'],
      };
      return { dataset, latent, teacherField: field };
    };
    const sampleWithLatent = (n: number, stream: string | number = 'default'): ChmmSample => {
      if (!Number.isInteger(n) || n < 0)
        throw new Error(`${NAME}: ${role}.sample: n must be a non-negative integer, got ${n}`);
      const rng = latentRoot.derive(role).derive(String(stream));
      return generate(gaussian(rng, n * D));
    };
    return {
      role,
      F: { data: F, rows: D, cols: N },
      theta,
      sample: (n, stream) => sampleWithLatent(n, stream).dataset,
      sampleWithLatent,
      fromLatent: (latent) => generate(Float64Array.from(latent)),
    };
  };

  return {
    options: o,
    source: makeTask('source', Fs, thetaS),
    target: makeTask('target', Ft, thetaT),
    matrices: {
      Fs: { data: Fs, rows: D, cols: N },
      Ft: { data: Ft, rows: D, cols: N },
      thetaS,
      thetaT,
      substituted,
    },
  };
}

export interface ChmmExpectedCorrelations {
  /** Correlation of corresponding entries of F_s and F_t: (1 − f)/√(1 + δ_F²). */
  featureCorrelation: number;
  /** Large-D teacher overlap θ_s·θ_t/(‖θ_s‖‖θ_t‖) = 1/√(1 + δ_θ²). */
  teacherOverlap: number;
  /** Probability that source and target label one latent point alike: 1 − arccos(r_θ)/π. */
  labelAgreement: number;
}

/** The D → ∞ correlations implied by the parameters (finite D fluctuates around these). */
export function chmmExpectedCorrelations(c: ChmmCorrelation): ChmmExpectedCorrelations {
  const dF = c.featurePerturbation ?? 0;
  const dT = c.teacherPerturbation ?? 0;
  const f = c.featureSubstitution ?? 0;
  checkNonNegative('featurePerturbation', dF);
  checkNonNegative('teacherPerturbation', dT);
  if (!(f >= 0 && f <= 1))
    throw new Error(`${NAME}: featureSubstitution must be in [0, 1], got ${f}`);
  const teacherOverlap = 1 / Math.sqrt(1 + dT * dT);
  return {
    featureCorrelation: (1 - f) / Math.sqrt(1 + dF * dF),
    teacherOverlap,
    labelAgreement: 1 - Math.acos(teacherOverlap) / Math.PI,
  };
}

/** The perturbation δ giving correlation r ∈ (0, 1] in the large-D limit: δ = √(1/r² − 1). */
export function chmmPerturbationForCorrelation(r: number): number {
  if (!(r > 0 && r <= 1))
    throw new Error(`chmmPerturbationForCorrelation: r must be in (0, 1], got ${r}`);
  return Math.sqrt(1 / (r * r) - 1);
}

/** Measured correlations of one model (what `chmmExpectedCorrelations` predicts for large D). */
export function chmmMeasuredCorrelations(m: ChmmMatrices): {
  featureCorrelation: number;
  teacherOverlap: number;
} {
  const corr = (a: Float64Array, b: Float64Array): number => {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i] as number;
      const y = b[i] as number;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    return ab / Math.sqrt(aa * bb);
  };
  return {
    featureCorrelation: corr(m.Fs.data, m.Ft.data),
    teacherOverlap: corr(m.thetaS, m.thetaT),
  };
}
