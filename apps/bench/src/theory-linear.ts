import { createRng } from '@transferlab/core';
import {
  groundTruthRepresentation,
  optimalSpectralRepresentation,
  ridgeSolve,
  type SpectralTaskProfile,
  spectralProfileFromSpectra,
  spectralRisk,
  supportRepresentation,
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
 * Li, Sen & Adlam's linear feature-transfer model, predicted against
 * measured: x ~ N(0, Σ) in d dimensions with a power-law spectrum, tasks
 * β ~ N(0, B) with B diagonal in Σ's eigenbasis, a representation
 * B̂ = U diag(w), and min-norm regression on z = B̂ᵀx with n samples. For each
 * representation and n the record holds the asymptotic risk (with its bias
 * and variance terms) beside the Monte Carlo risk over fresh (X, β, ε).
 */
export interface TheoryLinearSuite {
  readonly kind: 'theory-linear';
  readonly id: string;
  readonly description: string;
  readonly seeds: number;
  readonly d: number;
  /** Σ's eigenvalues s_i = i^(−sigmaDecay); task variances b_i = i^(−taskDecay). */
  readonly sigmaDecay: number;
  readonly taskDecay: number;
  readonly noiseVariance: number;
  readonly sampleSizes: readonly number[];
  /** Number of strongest directions the support featurisation keeps. */
  readonly supportSize: number;
  /** Monte Carlo draws per (seed, representation, n). */
  readonly draws: number;
}

export function theoryLinearProfile(s: TheoryLinearSuite): SpectralTaskProfile {
  const idx = Array.from({ length: s.d }, (_, i) => i + 1);
  return spectralProfileFromSpectra(
    idx.map((i) => i ** -s.sigmaDecay),
    idx.map((i) => i ** -s.taskDecay),
  );
}

/** Monte Carlo risk of min-norm regression on features x ∘ w (Σ diagonal), averaged over draws. */
export function measureSpectralRisk(
  profile: SpectralTaskProfile,
  weights: ArrayLike<number>,
  n: number,
  noiseVariance: number,
  draws: number,
  seed: number,
): { mean: number; se: number } {
  const s = profile.sigmaEigenvalues;
  const b = profile.taskVariances;
  const d = s.length;
  const active = Array.from({ length: d }, (_, i) => i).filter((i) => (weights[i] as number) > 0);
  const rng = createRng(seed).derive('theory-linear');
  const risks: number[] = [];
  for (let t = 0; t < draws; t++) {
    const beta = Float64Array.from(
      { length: d },
      (_, i) => Math.sqrt(b[i] as number) * rng.normal(),
    );
    const x = new Float64Array(n * d);
    for (let r = 0; r < n; r++)
      for (let i = 0; i < d; i++) x[r * d + i] = Math.sqrt(s[i] as number) * rng.normal();
    const y = Float64Array.from({ length: n }, (_, r) => {
      let v = 0;
      for (let i = 0; i < d; i++) v += (x[r * d + i] as number) * (beta[i] as number);
      return v + Math.sqrt(noiseVariance) * rng.normal();
    });
    const k = active.length;
    const z = new Float64Array(n * k);
    for (let r = 0; r < n; r++)
      active.forEach((i, j) => {
        z[r * k + j] = (x[r * d + i] as number) * (weights[i] as number);
      });
    const theta = ridgeSolve({ rows: n, cols: k, data: z }, y, 0);
    // excess risk E(zᵀθ̂ − xᵀβ)² = Σ_i s_i (w_i θ̂_i − β_i)² with θ̂_i = 0 off the support
    let risk = 0;
    const coef = new Float64Array(d);
    active.forEach((i, j) => {
      coef[i] = (weights[i] as number) * (theta[j] as number);
    });
    for (let i = 0; i < d; i++)
      risk += (s[i] as number) * ((coef[i] as number) - (beta[i] as number)) ** 2;
    risks.push(risk);
  }
  const mean = risks.reduce((a, v) => a + v, 0) / risks.length;
  const sd = Math.sqrt(
    risks.reduce((a, v) => a + (v - mean) ** 2, 0) / Math.max(1, risks.length - 1),
  );
  return { mean, se: sd / Math.sqrt(risks.length) };
}

/** The three featurisations of one n, by their method labels. */
function representationLabels(suite: TheoryLinearSuite): string[] {
  return ['ground-truth', `support-${suite.supportSize}`, 'optimal'];
}

export const theoryLinearSuiteSchema = z.strictObject({
  kind: z.literal('theory-linear'),
  id: z.string().min(1),
  description: z.string(),
  seeds: z.number().int().positive(),
  d: z.number().int().positive(),
  sigmaDecay: z.number().min(0),
  taskDecay: z.number().min(0),
  noiseVariance: z.number().min(0),
  sampleSizes: z.array(z.number().int().positive()).min(1),
  supportSize: z.number().int().positive(),
  draws: z.number().int().positive(),
}) satisfies z.ZodType<TheoryLinearSuite>;

/**
 * One unit per (seed, n): the three representations of one sample size share
 * the problem (and the optimal one's solve). Each n's Monte Carlo stream is
 * seeded by (seed, n) alone, so a trial depends on its own n, not the list.
 */
function planTheoryLinear(suite: TheoryLinearSuite, seeds: readonly number[]): PlannedUnit[] {
  const { d, sigmaDecay, taskDecay, noiseVariance, draws } = suite;
  const units: PlannedUnit[] = [];
  for (const seed of seeds)
    for (const n of suite.sampleSizes)
      units.push({
        id: `n=${n} · seed ${seed}`,
        seed,
        trials: representationLabels(suite).map((method) => ({
          task: `n=${n}`,
          method,
          seed,
          determinants: {
            d,
            sigmaDecay,
            taskDecay,
            noiseVariance,
            draws,
            n,
            ...(method.startsWith('support-') ? { supportSize: suite.supportSize } : {}),
          },
        })),
      });
  return units;
}

async function runTheoryLinearUnit(
  suite: TheoryLinearSuite,
  unit: PlannedUnit,
  ctx: UnitContext,
): Promise<void> {
  const { seed } = unit;
  const task = unit.trials[0]?.task as string;
  const n = Number(task.slice('n='.length));
  const profile = theoryLinearProfile(suite);
  const problem = { n, lambda: 0, noiseVariance: suite.noiseVariance };
  // Solved inside the optimal trial: its failure must not fail the other two.
  let optimal: ReturnType<typeof optimalSpectralRepresentation> | undefined;
  const [groundTruth, support, optimalLabel] = representationLabels(suite) as [
    string,
    string,
    string,
  ];
  const representations: [string, () => ArrayLike<number>][] = [
    [groundTruth, () => groundTruthRepresentation(profile)],
    [support, () => supportRepresentation(profile, suite.supportSize)],
    [
      optimalLabel,
      () => {
        optimal = optimalSpectralRepresentation(profile, problem);
        return optimal.weights;
      },
    ],
  ];
  for (const [i, [method, weightsOf]] of representations.entries()) {
    if (ctx.isDone(task, method)) continue;
    ctx.progress.trial(`${task} · ${method} · seed ${seed}`, i, representations.length);
    const started = Date.now();
    const base = { task, method, seed, backend: 'float64' };
    try {
      const weights = weightsOf();
      const predicted = spectralRisk(profile, weights, problem);
      const measured = Number.isFinite(predicted.risk)
        ? measureSpectralRisk(
            profile,
            weights,
            n,
            suite.noiseVariance,
            suite.draws,
            seed * 1_000_003 + n,
          )
        : { mean: Number.NaN, se: Number.NaN };
      ctx.record({
        ...base,
        status: 'ok',
        metrics: {
          n,
          predicted_risk: predicted.risk,
          predicted_bias: predicted.bias,
          predicted_variance: predicted.variance,
          predicted_approximation_error: predicted.approximationError,
          measured_risk: measured.mean,
          measured_risk_se: measured.se,
          ...(method === optimalLabel && optimal
            ? { optimal_support: optimal.support, optimal_hard: optimal.regime === 'hard' ? 1 : 0 }
            : {}),
        },
        durationMs: Date.now() - started,
        timestamp: new Date().toISOString(),
      });
    } catch (err) {
      ctx.record(failedOutcome(base, err, started));
    }
  }
}

export const theoryLinearKind: SuiteKind<TheoryLinearSuite> = {
  specificationVersion: SUITE_KIND_SPECIFICATION_VERSION,
  id: 'theory-linear',
  description:
    "Li, Sen & Adlam's linear feature-transfer model: asymptotic min-norm risk beside Monte Carlo, per representation and n.",
  schema: theoryLinearSuiteSchema,
  firstSeed: true,
  check(suite) {
    const repeated = suite.sampleSizes.findIndex((n, i) => suite.sampleSizes.indexOf(n) !== i);
    if (repeated >= 0)
      throw new Error(`sampleSizes[${repeated}]: n = ${suite.sampleSizes[repeated]} appears twice`);
    if (suite.supportSize > suite.d)
      throw new Error(`supportSize: ${suite.supportSize} exceeds the dimension d = ${suite.d}`);
  },
  plan: (suite, seeds) => planTheoryLinear(suite, seeds),
  runUnit: runTheoryLinearUnit,
  summarize(records, opts) {
    // Its own table: this suite has no accuracy, so the transfer tables would read "failed".
    const agreement = formatAgreement(records);
    const extra = opts.metric ? formatTable(records, opts.metric, false) : '';
    return [formatTheoryLinear(records), agreement, extra].filter((t) => t !== '').join('\n\n');
  },
};

/** Run a theory-linear suite (see `executeSuite`: resume, one record per trial as it ends). */
export function runTheoryLinear(
  opts: Omit<ExecuteOptions, 'kind' | 'suite'> & { suite: TheoryLinearSuite },
): Promise<ExecuteResult> {
  const { suite, ...rest } = opts;
  return executeSuite({ kind: theoryLinearKind, suite, ...rest });
}

/** predicted vs measured risk per representation and n (seed-averaged). */
export function formatTheoryLinear(records: readonly TrialRecord[]): string {
  const ok = records.filter((r) => r.status === 'ok');
  const reps = [...new Set(ok.map((r) => r.method))];
  const ns = [...new Set(ok.map((r) => r.metrics.n as number))].sort((a, b) => a - b);
  const lines = [
    'min-norm risk, predicted (asymptotic) / measured (Monte Carlo) ± its standard error, mean over seeds',
  ];
  lines.push(`| n | ${reps.join(' | ')} |`, `|---|${reps.map(() => '---').join('|')}|`);
  for (const n of ns) {
    const cells = reps.map((rep) => {
      const rs = ok.filter((r) => r.method === rep && r.metrics.n === n);
      if (rs.length === 0) return '';
      const avg = (k: string) => rs.reduce((a, r) => a + (r.metrics[k] as number), 0) / rs.length;
      const se =
        Math.sqrt(rs.reduce((a, r) => a + (r.metrics.measured_risk_se as number) ** 2, 0)) /
        rs.length;
      return `${avg('predicted_risk').toPrecision(3)} / ${avg('measured_risk').toPrecision(3)} ± ${se.toPrecision(2)}`;
    });
    lines.push(`| ${n} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
