import { describe, expect, it } from 'vitest';
import { formatAgreement, formatPairedTable, formatTable, predictionPairs } from './report.js';
import type { TrialRecord } from './results.js';

const rec = (
  method: string,
  seed: number,
  acc: number,
  status: 'ok' | 'failed' = 'ok',
): TrialRecord => ({
  suite: 's',
  task: 't',
  method,
  seed,
  status,
  metrics: status === 'ok' ? { target_test_acc: acc } : {},
  durationMs: 1,
  backend: 'cpu',
});

describe('report tables', () => {
  const records = [
    rec('scratch', 0, 0.5),
    rec('scratch', 1, 0.7),
    rec('scratch', 2, 0.6),
    rec('fine-tune', 0, 0.6),
    rec('fine-tune', 1, 0.8),
    rec('fine-tune', 2, 0.7),
    rec('linear-probe', 0, 0.9),
    rec('linear-probe', 1, 0, 'failed'),
  ];

  it('prints mean ± t-interval per task × method and marks failed seeds', () => {
    const table = formatTable(records);
    // scratch: mean 0.6, sd 0.1, t(2)=4.303 → ±0.248
    expect(table).toContain('60.0 ± 24.8');
    expect(table).toContain('70.0 ± 24.8');
    expect(table).toContain('90.0 [1/2 ok]');
  });

  it('paired differences remove the shared seed effect', () => {
    const table = formatPairedTable(records);
    // fine-tune − scratch is exactly +0.1 on every seed: zero spread
    expect(table).toContain('+10.0 ± 0.0');
    expect(table).toContain('fine-tune − scratch');
    // linear-probe has one paired seed: no interval
    expect(table).toMatch(/\+40\.0(?! ±)/);
  });
});

describe('latestRun', () => {
  it('keeps the records of the last run in an accumulating file', async () => {
    const { latestRun } = await import('./results.js');
    const a = { ...rec('scratch', 0, 0.1), run: 'r1' };
    const b = { ...rec('scratch', 0, 0.2), run: 'r2' };
    const c = { ...rec('fine-tune', 0, 0.3), run: 'r2' };
    expect(latestRun([a, b, c])).toEqual([b, c]);
    expect(latestRun([rec('x', 0, 1)])).toHaveLength(1);
  });
});

describe('formatLambdaTable', () => {
  it('averages λ per (source, target) pair over seeds', async () => {
    const { formatLambdaTable } = await import('./report.js');
    const r = (seed: number, a: number, b: number): TrialRecord => ({
      ...rec('l2t-ww', seed, 0.5),
      metrics: {
        target_test_acc: 0.5,
        'l2t_lambda:conv1->conv2': a,
        'l2t_lambda:fc->conv2': b,
        'l2t_entropy:conv1->conv2': 1 - b,
      },
    });
    const table = formatLambdaTable([r(0, 1, 0.2), r(1, 0.5, 0.4)]);
    const [lambdas, entropies] = table.split('\n\n');
    expect(lambdas).toContain('| source \\ target | conv2 |');
    expect(lambdas).toContain('| conv1 | 0.750 |');
    expect(lambdas).toContain('| fc | 0.300 |');
    expect(entropies).toMatch(/^L2T-ww channel weights/);
    expect(entropies).toContain('| conv1 | 0.700 |');
    expect(formatLambdaTable([rec('scratch', 0, 0.5)])).toBe('');
  });
});

describe('formatAgreement', () => {
  const pair = (method: string, seed: number, predicted: number, measured: number, se: number) => ({
    suite: 's',
    task: `n=${seed}`,
    method,
    seed,
    status: 'ok' as const,
    metrics: { predicted_risk: predicted, measured_risk: measured, measured_risk_se: se, n: 1 },
    durationMs: 1,
    backend: 'cpu',
  });

  it('counts pairs within 1, 2, 3 standard errors per method and lists those beyond 3', () => {
    const records: TrialRecord[] = [
      pair('a', 0, 1.0, 1.05, 0.1), // z = −0.5
      pair('a', 1, 1.0, 0.85, 0.1), // z = 1.5
      pair('a', 2, 1.0, 0.75, 0.1), // z = 2.5
      pair('b', 0, 2.0, 1.0, 0.1), // z = 10
      { ...pair('b', 1, 2, 2, 0), status: 'ok' }, // se 0: not a pair
    ];
    const pairs = predictionPairs(records);
    expect(pairs).toHaveLength(4);
    expect(pairs[3]?.z).toBeCloseTo(10, 12);
    const text = formatAgreement(records);
    expect(text).toContain('| a | 3 | 33% | 67% | 3 (100%) | 1.50 |');
    expect(text).toContain('| b | 1 | 0% | 0% | 0 (0%) | 10.00 |');
    expect(text).toContain('| all | 4 | 25% | 50% | 3 (75%) | 2.00 |');
    expect(text).toContain('n=0 · b · seed 0: risk 2.000 vs 1.000 ± 0.1000 (z = 10.0)');
    expect(formatAgreement([])).toBe('');
  });
});
