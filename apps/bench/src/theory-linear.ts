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
import { createResultsLog, failedRecord, type TrialRecord } from './results.js';

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

export function runTheoryLinear(opts: {
  suite: TheoryLinearSuite;
  seeds?: number;
  outDir: string;
}): {
  records: TrialRecord[];
  resultsPath: string;
  backend: string;
} {
  const { suite } = opts;
  const profile = theoryLinearProfile(suite);
  const log = createResultsLog(opts.outDir);
  const run = new Date().toISOString();
  const seeds = opts.seeds ?? suite.seeds;
  for (let seed = 0; seed < seeds; seed++) {
    for (const n of suite.sampleSizes) {
      const problem = { n, lambda: 0, noiseVariance: suite.noiseVariance };
      const optimal = optimalSpectralRepresentation(profile, problem);
      const representations: [string, ArrayLike<number>][] = [
        ['ground-truth', groundTruthRepresentation(profile)],
        [`support-${suite.supportSize}`, supportRepresentation(profile, suite.supportSize)],
        ['optimal', optimal.weights],
      ];
      for (const [label, weights] of representations) {
        const started = Date.now();
        const base = {
          suite: suite.id,
          run,
          task: `n=${n}`,
          method: label,
          seed,
          backend: 'float64',
        };
        try {
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
          log.add({
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
              ...(label === 'optimal'
                ? {
                    optimal_support: optimal.support,
                    optimal_hard: optimal.regime === 'hard' ? 1 : 0,
                  }
                : {}),
            },
            durationMs: Date.now() - started,
          });
        } catch (err) {
          log.add(failedRecord(base, err, started));
        }
      }
    }
  }
  return { records: log.records, resultsPath: log.path, backend: 'float64' };
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
