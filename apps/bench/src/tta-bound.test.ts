import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Progress } from './progress.js';
import { readRecords } from './results.js';
import { defaultRegistries } from './run-suite.js';
import { BUILTIN_SUITE_DIR, loadSuite, readSuiteFile } from './suite-file.js';
import { formatTtaTable, runTtaBound, type TtaBoundSuite, ttaBoundKind } from './tta-bound.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const triples = (rs: readonly { task: string; method: string; seed: number }[]) =>
  rs.map((r) => `${r.task} | ${r.method} | ${r.seed}`);
const builtin = () =>
  ttaBoundKind.schema.parse(readSuiteFile(join(BUILTIN_SUITE_DIR, 'tta-bound.yaml')));

describe('tta-bound suite', () => {
  it('records the bound per setting beside the target loss reached, and the bound is above it', async () => {
    const suite: TtaBoundSuite = {
      kind: 'tta-bound',
      id: 'tta-test',
      description: 'test',
      backbone: 'mlp',
      seeds: 1,
      pairs: [
        {
          task: 'mnist-digits-to-parity',
          options: { labelsPerClass: 40, valPerClass: 5, testPerClass: 150 },
          labelMap: [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        },
      ],
      settings: ['none', 'A'],
      sourcePoints: 300,
      targetTestPoints: 300,
      tau: 0.2,
      epochs: 20,
      pretrain: { epochs: 1, maxExamples: 1000 },
    };
    const out = await runTtaBound({
      suite,
      outDir: mkdtempSync(join(tmpdir(), 'tta-')),
      backend: 'wasm',
      progress: silent,
    });
    expect(out.records.map((r) => r.method)).toEqual(['none', 'A']);
    for (const r of out.records) {
      expect(r.status, r.error).toBe('ok');
      // the paper's guarantee: the bound is at least the loss a Lipschitz target head reaches
      expect(r.metrics.predicted_bound).toBeGreaterThanOrEqual(
        r.metrics.measured_target_loss as number,
      );
      expect(r.metrics.predicted_conditional_entropy).toBeCloseTo(0, 6); // B is a fixed 0/1 map here
      // Standard errors over the target test examples: positive, far below the means.
      const lossSe = r.metrics.measured_target_loss_se as number;
      expect(lossSe).toBeGreaterThan(0);
      expect(lossSe).toBeLessThan(0.2 * (r.metrics.measured_target_loss as number));
      const acc = r.metrics.measured_target_acc as number;
      expect(r.metrics.measured_target_acc_se).toBeGreaterThan(0);
      expect(r.metrics.measured_target_acc_se).toBeLessThanOrEqual(Math.sqrt(acc * (1 - acc)));
    }
    expect(formatTtaTable(out.records)).toMatch(
      /mnist-digits-to-parity \| \d\.\d{3} ± \d\.\d{3} \| \d+\.\d{3} \| \d+\.\d{3} \|/,
    );
  });

  it('the built-in suite parses, and plan gives exactly the trials a run records; a second run resumes', async () => {
    const suite = builtin();
    expect(loadSuite('tta-bound').kind).toBe(ttaBoundKind);
    const ctx = { registries: defaultRegistries() };
    expect(ttaBoundKind.plan(suite, [0, 1], ctx).map((u) => u.id)).toEqual([
      'mnist-digits-to-parity · seed 0',
      'fashion-to-fashion-coarse · seed 0',
      'mnist-digits-to-parity · seed 1',
      'fashion-to-fashion-coarse · seed 1',
    ]);
    // Both pairs and all three settings, at toy sizes.
    const small: TtaBoundSuite = {
      ...suite,
      pairs: suite.pairs.map((p) => ({
        ...p,
        options: { ...p.options, labelsPerClass: 10, valPerClass: 2, testPerClass: 20 },
      })),
      sourcePoints: 100,
      targetTestPoints: 100,
      epochs: 5,
      pretrain: { epochs: 1, maxExamples: 300 },
    };
    const outDir = mkdtempSync(join(tmpdir(), 'tta-'));
    const common = { suite: small, seeds: 1, outDir, backend: 'wasm', progress: silent };
    const out = await runTtaBound(common);
    const trials = ttaBoundKind.plan(small, [0], ctx).flatMap((u) => u.trials);
    expect(triples(out.records)).toEqual(triples(trials));
    expect(trials).toHaveLength(2 * 3);
    for (const r of out.records) expect(r.status, r.error).toBe('ok');
    expect(ttaBoundKind.summarize(out.records, {})).toContain('bound (all)');
    const again = await runTtaBound(common);
    expect(again.resumed).toBe(6);
    expect(readRecords(out.resultsPath)).toHaveLength(6);
  });

  it('refuses a missing kind, unknown keys and settings, and unknown ids with their path', () => {
    const suite = builtin();
    const { kind: _kind, ...withoutKind } = suite;
    expect(ttaBoundKind.schema.safeParse(withoutKind).success).toBe(false);
    expect(ttaBoundKind.schema.safeParse({ ...suite, setting: ['A'] }).success).toBe(false);
    expect(ttaBoundKind.schema.safeParse({ ...suite, settings: ['B'] }).success).toBe(false);
    const reg = defaultRegistries();
    const pair = suite.pairs[0] as TtaBoundSuite['pairs'][number];
    expect(() =>
      ttaBoundKind.check?.({ ...suite, pairs: [pair, { ...pair, task: 'mnist-parity' }] }, reg),
    ).toThrow(/^pairs\[1\]\.task: Unknown task "mnist-parity"/);
    expect(() =>
      ttaBoundKind.check?.({ ...suite, pairs: [{ ...pair, options: { labelsPerClas: 3 } }] }, reg),
    ).toThrow(/^pairs\[0\]\.options: .*no option "labelsPerClas"/);
    expect(() => ttaBoundKind.check?.({ ...suite, pairs: [pair, pair] }, reg)).toThrow(
      /^pairs\[1\]\.task: "mnist-digits-to-parity" is also pairs\[0\]/,
    );
    expect(() => ttaBoundKind.check?.({ ...suite, backbone: 'mlq' }, reg)).toThrow(/^backbone: /);
  });
});
