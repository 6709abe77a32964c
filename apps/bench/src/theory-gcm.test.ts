import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Progress } from './progress.js';
import { formatTheoryGcm, linspace, runTheoryGcm, type TheoryGcmSuite } from './theory-gcm.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

describe('theory-gcm', () => {
  it('linspace matches numpy', () => {
    const xs = linspace(0.01, 3, 50);
    expect(xs).toHaveLength(50);
    expect(xs[1]).toBeCloseTo(0.01 + 2.99 / 49, 15);
    expect(xs[49]).toBe(3);
  });

  it('records a converged prediction beside Monte Carlo ± se at every α (tiny sizes)', () => {
    const suite: TheoryGcmSuite = {
      kind: 'theory-gcm',
      id: 'theory-gcm-tiny',
      description: 'tiny',
      seeds: 1,
      d: 60,
      p: 80,
      k: 40,
      student: 'erf',
      teacher: 'sign',
      lambda: 0.05,
      alphas: [0.5, 1, 2],
      draws: 4,
      smallAlpha: 0.5,
      smallAlphaDraws: 8,
      testSize: 4000,
    };
    const out = mkdtempSync(join(tmpdir(), 'tl-gcm-'));
    const { records } = runTheoryGcm({ suite, outDir: out, progress: silent });
    expect(records).toHaveLength(3);
    for (const r of records) {
      expect(r.status).toBe('ok');
      const m = r.metrics;
      expect(m.draws).toBe(m.alpha === 0.5 ? 8 : 4);
      expect(m.n).toBe(Math.round((m.alpha as number) * 80));
      expect(m.measured_test_error_se).toBeGreaterThan(0);
      // p = 80 is far from the limit; the curve still tracks the simulation within a few points.
      expect(
        Math.abs((m.predicted_test_error as number) - (m.measured_test_error as number)),
      ).toBeLessThan(4 * (m.measured_test_error_se as number) + 0.03);
      expect(m.predicted_train_loss).toBeGreaterThan(0);
    }
    // More data, lower error, in both.
    const errs = records.map((r) => r.metrics.predicted_test_error as number);
    expect(errs[0]).toBeGreaterThan(errs[2] as number);
    const text = formatTheoryGcm(records, 8);
    expect(text).toContain('| 1.000 | 80 |');
    expect(text).toMatch(/· predicted, o measured/);
  });
});
