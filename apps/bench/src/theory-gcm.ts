import { createRng, type Rng } from '@transferlab/core';
import {
  type Activation,
  activationFunction,
  GAUSSIAN_EQUIVALENCE,
  type GcmResult,
  gcmSpectrum,
  logisticRidgeFitCg,
  solveGcm,
  twoFeatureMapCovariances,
} from '@transferlab/evaluation';
import { z } from 'zod';
import { type ExecuteOptions, type ExecuteResult, executeSuite } from './execute.js';
import { formatAgreement, formatTable } from './report.js';
import type { TrialRecord } from './results.js';
import {
  failedOutcome,
  type PlannedUnit,
  SUITE_KIND_SPECIFICATION_VERSION,
  type SuiteKind,
  type UnitContext,
} from './suite-kind.js';

/**
 * The hidden-manifold learning curve of the Gaussian covariate model
 * (Loureiro et al. 2021; Gerace et al. 2020): a latent c ~ N(0, I_d), a
 * student of random features x = σ(Fᵀc/√d) ∈ R^p and a teacher of its own
 * random features, y = sign(θᵀσ̄(F̄ᵀc/√d)/√k). Logistic regression
 * argmin Σ log(1 + e^{−y wᵀx/√p}) + (λ/2)‖w‖² on n = αp samples; for each α
 * the record holds the GCM prediction (Gaussian-equivalent Ω, Φ, Ψ →
 * fixed point) beside the Monte Carlo fit on actual nonlinear features.
 *
 * Sampling: F, F̄ (columns rescaled to squared norm d, so pre-activations
 * have unit variance, as the Gaussian equivalence assumes) and θ ~ N(0, I_k)
 * per seed; `draws` independent training streams, nested in n (the fit at
 * one α warm-starts the next); α ≤ `smallAlpha` gets `smallAlphaDraws`
 * streams, since small n spreads most and costs least. One test set of
 * `testSize` per seed; `measured_test_error_se` adds its binomial variance to
 * the spread over draws (as theory-chmm does).
 */
export interface TheoryGcmSuite {
  readonly kind: 'theory-gcm';
  readonly id: string;
  readonly description: string;
  readonly seeds: number;
  /** Latent dimension. */
  readonly d: number;
  /** Student width. */
  readonly p: number;
  /** Teacher width. */
  readonly k: number;
  readonly student: Activation;
  readonly teacher: Activation;
  readonly lambda: number;
  readonly alphas: readonly number[];
  readonly draws: number;
  readonly smallAlpha: number;
  readonly smallAlphaDraws: number;
  readonly testSize: number;
}

/** `count` points from `lo` to `hi` inclusive (numpy's linspace). */
export function linspace(lo: number, hi: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) =>
    count === 1 ? lo : lo + ((hi - lo) * i) / (count - 1),
  );
}

/** d×w Gaussian matrix with every column rescaled to squared norm d. */
function unitColumns(rng: Rng, d: number, w: number): Float64Array {
  const f = Float64Array.from(rng.normalArray(d * w));
  for (let j = 0; j < w; j++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += (f[i * w + j] as number) ** 2;
    const c = Math.sqrt(d / s);
    for (let i = 0; i < d; i++) f[i * w + j] = (f[i * w + j] as number) * c;
  }
  return f;
}

interface Model {
  d: number;
  p: number;
  k: number;
  F: Float64Array;
  G: Float64Array;
  theta: Float64Array;
  student: (z: number) => number;
  teacher: (z: number) => number;
}

/**
 * m samples: student features (m×p, float32) and labels. Row by row, so the
 * latent and the teacher's features are never stored.
 */
export function sampleHiddenManifold(
  model: Model,
  rng: Rng,
  m: number,
): { x: Float32Array; y: Float64Array } {
  const { d, p, k, F, G, theta } = model;
  const x = new Float32Array(m * p);
  const y = new Float64Array(m);
  const hs = new Float64Array(p);
  const ht = new Float64Array(k);
  const s = 1 / Math.sqrt(d);
  for (let mu = 0; mu < m; mu++) {
    const c = rng.normalArray(d);
    hs.fill(0);
    ht.fill(0);
    for (let a = 0; a < d; a++) {
      const ca = c[a] as number;
      const fr = a * p;
      for (let j = 0; j < p; j++) hs[j] = (hs[j] as number) + ca * (F[fr + j] as number);
      const gr = a * k;
      for (let j = 0; j < k; j++) ht[j] = (ht[j] as number) + ca * (G[gr + j] as number);
    }
    const row = mu * p;
    for (let j = 0; j < p; j++) x[row + j] = model.student(s * (hs[j] as number));
    let field = 0;
    for (let j = 0; j < k; j++)
      field += (theta[j] as number) * model.teacher(s * (ht[j] as number));
    y[mu] = field >= 0 ? 1 : -1;
  }
  return { x, y };
}

function testError(x: Float32Array, y: Float64Array, w: Float64Array): number {
  const p = w.length;
  let wrong = 0;
  for (let mu = 0; mu < y.length; mu++) {
    let s = 0;
    const r = mu * p;
    for (let j = 0; j < p; j++) s += (x[r + j] as number) * (w[j] as number);
    if ((s >= 0 ? 1 : -1) !== y[mu]) wrong++;
  }
  return wrong / y.length;
}

function meanVariance(xs: readonly number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance =
    xs.length > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) : 0;
  return { mean, variance };
}

const ACTIVATIONS = Object.keys(GAUSSIAN_EQUIVALENCE) as [Activation, ...Activation[]];

export const theoryGcmSuiteSchema = z.strictObject({
  kind: z.literal('theory-gcm'),
  id: z.string().min(1),
  description: z.string(),
  seeds: z.number().int().positive(),
  d: z.number().int().positive(),
  p: z.number().int().positive(),
  k: z.number().int().positive(),
  student: z.enum(ACTIVATIONS),
  teacher: z.enum(ACTIVATIONS),
  lambda: z.number().positive(),
  alphas: z.array(z.number().positive()).min(1),
  draws: z.number().int().positive(),
  smallAlpha: z.number().min(0),
  smallAlphaDraws: z.number().int().positive(),
  testSize: z.number().int().positive(),
}) satisfies z.ZodType<TheoryGcmSuite>;

/** The task label of one α in records and tables. */
const alphaLabel = (alpha: number) => `α=${alpha.toFixed(3)}`;
const methodLabel = (suite: TheoryGcmSuite) => `logistic λ=${suite.lambda}`;

/**
 * Everything a seed's curve depends on: the fixed point is warm-started
 * along the α grid and each draw's fits are nested in n, so the whole grid
 * counts, not just a trial's own α.
 */
function gcmDeterminants(suite: TheoryGcmSuite) {
  const { id: _id, description: _description, seeds: _seeds, kind: _kind, ...rest } = suite;
  return rest;
}

/** One unit per seed: the seed's feature maps, covariances and training draws serve every α. */
function planTheoryGcm(suite: TheoryGcmSuite, seeds: readonly number[]): PlannedUnit[] {
  const alphas = [...suite.alphas].sort((a, b) => a - b);
  const determinants = gcmDeterminants(suite);
  return seeds.map((seed) => ({
    id: `seed ${seed}`,
    seed,
    trials: alphas.map((alpha) => ({
      task: alphaLabel(alpha),
      method: methodLabel(suite),
      seed,
      determinants: { ...determinants, alpha },
    })),
  }));
}

/**
 * One seed's learning curve: the GCM prediction at every α, then the Monte
 * Carlo fits. A prediction that fails fails its α only; the whole seed is
 * recomputed on resume (the recorder keeps the earlier ok records).
 */
async function runTheoryGcmUnit(
  suite: TheoryGcmSuite,
  unit: PlannedUnit,
  ctx: UnitContext,
): Promise<void> {
  const { d, p, k, lambda } = suite;
  const { seed } = unit;
  const { progress } = ctx;
  const alphas = [...suite.alphas].sort((a, b) => a - b);
  const maxDraws = Math.max(suite.draws, suite.smallAlphaDraws);
  const started = Date.now();
  const rng = createRng(seed).derive('theory-gcm');
  const model: Model = {
    d,
    p,
    k,
    F: unitColumns(rng.derive('student-features'), d, p),
    G: unitColumns(rng.derive('teacher-features'), d, k),
    theta: Float64Array.from(rng.derive('teacher-weights').normalArray(k)),
    student: activationFunction(suite.student),
    teacher: activationFunction(suite.teacher),
  };
  // Prediction: Gaussian-equivalent covariances, one spectrum, warm-started curve.
  progress.trial(`seed ${seed}: covariances and GCM curve`, 0, 2 + maxDraws);
  const predicted = new Map<number, GcmResult | Error>();
  try {
    const cov = twoFeatureMapCovariances(
      { features: { data: model.F, rows: d, cols: p }, activation: suite.student },
      { features: { data: model.G, rows: d, cols: k }, activation: suite.teacher },
    );
    const spectrum = gcmSpectrum({ ...cov, theta: model.theta });
    let init: { V: number; q: number; m: number } | undefined;
    for (const alpha of alphas) {
      try {
        const r = solveGcm(spectrum, { task: 'logistic', alpha, lambda }, init ? { init } : {});
        predicted.set(alpha, r);
        init = { V: r.V, q: r.q, m: r.m };
      } catch (err) {
        predicted.set(alpha, err as Error);
      }
    }
  } catch (err) {
    for (const alpha of alphas) predicted.set(alpha, err as Error);
  }
  const predictMs = Date.now() - started;
  // Monte Carlo.
  progress.trial(`seed ${seed}: test set`, 1, 2 + maxDraws);
  const test = sampleHiddenManifold(model, rng.derive('test'), suite.testSize);
  const errors = new Map<number, number[]>(alphas.map((a) => [a, []]));
  const losses = new Map<number, number[]>(alphas.map((a) => [a, []]));
  const fitMs = new Map<number, number>(alphas.map((a) => [a, 0]));
  for (let r = 0; r < maxDraws; r++) {
    progress.trial(`seed ${seed}: draw ${r + 1}/${maxDraws}`, 2 + r, 2 + maxDraws);
    const mine = alphas.filter(
      (a) => (a <= suite.smallAlpha ? suite.smallAlphaDraws : suite.draws) > r,
    );
    if (mine.length === 0) continue;
    const nMax = Math.max(...mine.map((a) => Math.max(1, Math.round(a * p))));
    const train = sampleHiddenManifold(model, rng.derive(`draw-${r}`), nMax);
    let w: Float64Array | undefined;
    for (const alpha of mine) {
      const t0 = Date.now();
      const n = Math.max(1, Math.round(alpha * p));
      const fit = logisticRidgeFitCg(
        { data: train.x.subarray(0, n * p), rows: n, cols: p },
        train.y.subarray(0, n),
        lambda,
        1 / Math.sqrt(p),
        { tolerance: 1e-7, ...(w ? { init: w } : {}) },
      );
      w = fit.weights;
      errors.get(alpha)?.push(testError(test.x, test.y, w));
      losses.get(alpha)?.push(fit.trainLoss);
      fitMs.set(alpha, (fitMs.get(alpha) as number) + Date.now() - t0);
    }
    progress.done(`seed ${seed}: draw ${r + 1} fitted at ${mine.length} α`);
  }
  // The records' config as before: the grid itself is in the task labels.
  const { alphas: _grid, ...config } = gcmDeterminants(suite);
  for (const alpha of alphas) {
    const n = Math.max(1, Math.round(alpha * p));
    const base = {
      task: alphaLabel(alpha),
      method: methodLabel(suite),
      seed,
      backend: 'float64',
      config,
      timestamp: new Date().toISOString(),
    };
    const pred = predicted.get(alpha);
    if (!pred || pred instanceof Error) {
      ctx.record(failedOutcome(base, pred ?? new Error('no prediction'), started));
      continue;
    }
    const e = meanVariance(errors.get(alpha) as number[]);
    const l = meanVariance(losses.get(alpha) as number[]);
    const R = (errors.get(alpha) as number[]).length;
    ctx.record({
      ...base,
      status: 'ok',
      metrics: {
        alpha,
        n,
        lambda,
        predicted_test_error: pred.testError,
        measured_test_error: e.mean,
        measured_test_error_se: Math.sqrt(
          e.variance / R + (e.mean * (1 - e.mean)) / suite.testSize,
        ),
        predicted_train_loss: pred.trainLoss,
        measured_train_loss: l.mean,
        measured_train_loss_se: Math.sqrt(l.variance / R),
        draws: R,
        gcm_iterations: pred.iterations,
      },
      durationMs: Math.round(predictMs / alphas.length) + (fitMs.get(alpha) as number),
    });
  }
}

export const theoryGcmKind: SuiteKind<TheoryGcmSuite> = {
  specificationVersion: SUITE_KIND_SPECIFICATION_VERSION,
  id: 'theory-gcm',
  description:
    "The Gaussian covariate model's hidden-manifold learning curve: predicted vs Monte Carlo test error of logistic regression on random features, per α.",
  schema: theoryGcmSuiteSchema,
  firstSeed: true,
  check(suite) {
    // α labels are rounded to 3 decimals: two α that round alike would be one trial.
    const labels = suite.alphas.map(alphaLabel);
    const twice = labels.findIndex((l, i) => labels.indexOf(l) !== i);
    if (twice >= 0)
      throw new Error(
        `alphas[${twice}]: ${suite.alphas[twice]} is ${labels[twice]} as alphas[${labels.indexOf(labels[twice] as string)}] (labels keep 3 decimals)`,
      );
  },
  plan: (suite, seeds) => planTheoryGcm(suite, seeds),
  runUnit: runTheoryGcmUnit,
  summarize(records, opts) {
    const agreement = formatAgreement(records);
    const extra = opts.metric ? formatTable(records, opts.metric, false) : '';
    return [formatTheoryGcm(records), agreement, extra].filter((t) => t !== '').join('\n\n');
  },
};

/** Run a theory-gcm suite (see `executeSuite`: resume, one record per trial as it ends). */
export function runTheoryGcm(
  opts: Omit<ExecuteOptions, 'kind' | 'suite'> & { suite: TheoryGcmSuite },
): Promise<ExecuteResult> {
  const { suite, ...rest } = opts;
  return executeSuite({ kind: theoryGcmKind, suite, ...rest });
}

/**
 * The learning curve as text: per α, predicted test error beside measured ±
 * se (mean over seeds), then a character plot (· prediction, o measurement).
 */
export function formatTheoryGcm(records: readonly TrialRecord[], height = 16): string {
  const ok = records.filter((r) => r.status === 'ok');
  const alphas = [...new Set(ok.map((r) => r.metrics.alpha as number))].sort((a, b) => a - b);
  if (alphas.length === 0) return 'no successful records';
  const rows = alphas.map((alpha) => {
    const rs = ok.filter((r) => r.metrics.alpha === alpha);
    const avg = (key: string) => rs.reduce((a, r) => a + (r.metrics[key] as number), 0) / rs.length;
    const se =
      Math.sqrt(rs.reduce((a, r) => a + (r.metrics.measured_test_error_se as number) ** 2, 0)) /
      rs.length;
    return {
      alpha,
      n: rs[0]?.metrics.n as number,
      pred: avg('predicted_test_error'),
      meas: avg('measured_test_error'),
      se,
      draws: rs[0]?.metrics.draws as number,
    };
  });
  const failed = records.length - ok.length;
  const lines = [
    `test error of logistic regression, Gaussian covariate model (predicted) vs Monte Carlo (measured ± se), mean over seeds (n = ${new Set(ok.map((r) => r.seed)).size})${failed ? `; ${failed} failed` : ''}`,
    '| α | n | predicted | measured ± se | draws |',
    '|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.alpha.toFixed(3)} | ${r.n} | ${r.pred.toFixed(4)} | ${r.meas.toFixed(4)} ± ${r.se.toFixed(4)} | ${r.draws} |`,
    ),
  ];
  const top = Math.max(...rows.map((r) => Math.max(r.pred, r.meas)));
  const bottom = Math.min(...rows.map((r) => Math.min(r.pred, r.meas)));
  const span = top - bottom || 1;
  const grid = Array.from({ length: height }, () => Array.from({ length: rows.length }, () => ' '));
  const level = (v: number) => Math.round(((top - v) / span) * (height - 1));
  rows.forEach((r, i) => {
    (grid[level(r.pred)] as string[])[i] = '·';
    const at = grid[level(r.meas)] as string[];
    at[i] = at[i] === '·' ? '●' : 'o';
  });
  lines.push(
    '',
    `test error vs α (· predicted, o measured, ● both), ${bottom.toFixed(3)} … ${top.toFixed(3)}`,
    ...grid.map((g, i) => {
      const v = top - (i / (height - 1)) * span;
      return `${v.toFixed(3)} |${g.join('')}`;
    }),
    `      +${'-'.repeat(rows.length)}`,
    `       α = ${alphas[0]?.toFixed(2)} … ${alphas[alphas.length - 1]?.toFixed(2)}`,
  );
  return lines.join('\n');
}
