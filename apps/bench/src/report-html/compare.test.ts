import { describe, expect, it } from 'vitest';
import type { TrialRecord } from '../results.js';
import { compareRuns, formatCompare, welchCI } from './compare.js';

const rec = (task: string, method: string, seed: number, acc: number | 'failed'): TrialRecord => ({
  suite: 's',
  task,
  method,
  seed,
  status: acc === 'failed' ? 'failed' : 'ok',
  metrics: acc === 'failed' ? {} : { target_test_acc: acc },
  durationMs: 1,
  backend: 'cpu',
});

describe('compareRuns', () => {
  it('pairs on seed when both runs have the same seeds: the mean and CI of the per-seed differences', () => {
    // Seeds listed in different orders on the two sides: pairing is by seed, not position.
    const a = [rec('t', 'ft', 0, 0.5), rec('t', 'ft', 1, 0.6), rec('t', 'ft', 2, 0.7)];
    const b = [rec('t', 'ft', 2, 0.72), rec('t', 'ft', 0, 0.55), rec('t', 'ft', 1, 0.7)];
    const { rows } = compareRuns(a, b);
    expect(rows).toHaveLength(1);
    const row = rows[0];
    // By hand: differences 0.05, 0.10, 0.02; mean 0.17/3; sd from the squared deviations.
    const d = [0.05, 0.1, 0.02];
    const mean = 0.17 / 3;
    const sd = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / 2);
    expect(row?.kind).toBe('paired');
    expect(row?.pairs).toBe(3);
    expect(row?.meanA).toBeCloseTo(0.6, 12);
    expect(row?.meanB).toBeCloseTo(1.97 / 3, 12);
    expect(row?.diff).toBeCloseTo(mean, 12);
    expect(row?.ci95).toBeCloseTo((4.303 * sd) / Math.sqrt(3), 12);
    // sd = 0.04041…, so the half-width is 4.303 · 0.04041 / 1.732 = 0.1004.
    expect(row?.ci95).toBeCloseTo(0.10039, 4);
  });

  it('falls back to Welch when the seeds differ, and says so', () => {
    const a = [1, 2, 3, 4].map((v, s) => rec('t', 'm', s, v));
    const b = [2, 4, 6].map((v, s) => rec('t', 'm', s + 10, v));
    const row = compareRuns(a, b).rows[0];
    expect(row?.kind).toBe('welch');
    expect(row?.note).toBe('the runs have different seeds');
    expect(row?.diff).toBeCloseTo(1.5, 12);
    // By hand: var A 5/3, var B 4; se² = 5/12 + 4/3 = 1.75;
    // df = 1.75² / ((5/12)²/3 + (4/3)²/2) = 3.23 → 3, t = 3.182.
    expect(row?.ci95).toBeCloseTo(3.182 * Math.sqrt(1.75), 10);
    expect(welchCI([1, 2, 3, 4], [2, 4, 6])).toBeCloseTo(4.20937, 4);
  });

  it('does not pair when a seed appears twice on one side', () => {
    const a = [rec('t', 'm', 0, 0.5), rec('t', 'm', 1, 0.6)];
    const b = [rec('t', 'm', 0, 0.5), rec('t', 'm', 0, 0.7), rec('t', 'm', 1, 0.6)];
    const row = compareRuns(a, b).rows[0];
    expect(row?.kind).toBe('welch');
    expect(row?.note).toBe('a seed appears twice on one side');
    expect(row?.nB).toBe(3);
  });

  it('lists task × method on one side only, and cells with no ok trial, instead of dropping them', () => {
    const a = [
      rec('t', 'shared', 0, 0.5),
      rec('t', 'shared', 1, 0.6),
      rec('t', 'old', 0, 0.4),
      rec('u', 'dead', 0, 0.5),
    ];
    const b = [
      rec('t', 'shared', 0, 0.6),
      rec('t', 'shared', 1, 0.65),
      rec('t', 'new', 0, 0.7),
      rec('u', 'dead', 0, 'failed'),
    ];
    const result = compareRuns(a, b);
    expect(result.rows.map((r) => [r.task, r.method, r.kind])).toEqual([
      ['t', 'shared', 'paired'],
      ['u', 'dead', 'none'],
    ]);
    expect(result.rows[1]).toMatchObject({ meanA: 0.5, meanB: null, diff: null, nB: 0 });
    expect(result.onlyA).toEqual([{ task: 't', method: 'old' }]);
    expect(result.onlyB).toEqual([{ task: 't', method: 'new' }]);

    const text = formatCompare(result);
    const lines = text.split('\n');
    expect(lines[0]).toContain('target_test_acc (%)');
    expect(lines[1]).toBe('| task | method | A | B | B − A | CI |');
    // Differences 0.10 and 0.05: mean 7.5 points, half-width 12.706 · 0.03536 / √2 = 31.8 points.
    expect(lines[3]).toBe(
      '| t | shared | 55.0 (n = 2) | 62.5 (n = 2) | +7.5 ± 31.8 | paired (2 seeds) |',
    );
    expect(lines[4]).toBe('| u | dead | 50.0 (n = 1) | – (n = 0) | – | none: no ok trial in B |');
    expect(text).toContain('only in A: t · old');
    expect(text).toContain('only in B: t · new');
  });

  it('compares another metric without percentages', () => {
    const a = [0, 1].map((s) => ({ ...rec('t', 'm', s, 0), metrics: { loss: 2 + s } }));
    const b = [0, 1].map((s) => ({ ...rec('t', 'm', s, 0), metrics: { loss: 1.5 + s } }));
    const result = compareRuns(a, b, 'loss');
    expect(result.rows[0]?.diff).toBeCloseTo(-0.5, 12);
    // Both differences are −0.5: no spread, a zero half-width.
    expect(result.rows[0]?.ci95).toBe(0);
    expect(formatCompare(result)).toContain(
      '| t | m | 2.500 (n = 2) | 2.000 (n = 2) | -0.5000 ± 0.000 |',
    );
  });
});
