import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ModelSelectionSuite,
  modelSelectionKind,
  rankCorrelations,
  runModelSelection,
} from './model-selection.js';
import type { Progress } from './progress.js';
import { readRecords, type TrialRecord } from './results.js';
import { defaultRegistries } from './run-suite.js';
import { BUILTIN_SUITE_DIR, loadSuite, readSuiteFile } from './suite-file.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const triples = (rs: readonly { task: string; method: string; seed: number }[]) =>
  rs.map((r) => `${r.task} | ${r.method} | ${r.seed}`);
const builtin = () =>
  modelSelectionKind.schema.parse(readSuiteFile(join(BUILTIN_SUITE_DIR, 'model-selection.yaml')));

describe('rankCorrelations', () => {
  const rec = (source: string, seed: number, acc: number, leep: number): TrialRecord => ({
    suite: 'm',
    task: 't',
    method: 'fine-tune',
    source,
    seed,
    status: 'ok',
    metrics: {
      measured_target_test_acc: acc,
      predicted_leep: leep,
      predicted_nce: -acc,
      predicted_logme: acc,
      predicted_hscore: 1,
    },
    durationMs: 0,
    backend: 'cpu',
  });
  it('is +1 for a perfect ranking, −1 for a reversed one, per seed', () => {
    const records = [
      rec('a', 0, 0.9, -0.1),
      rec('b', 0, 0.8, -0.2),
      rec('c', 0, 0.7, -0.3),
      rec('a', 1, 0.6, -0.9),
      rec('b', 1, 0.7, -0.5),
      rec('c', 1, 0.8, -0.1),
    ];
    const byEstimator = Object.fromEntries(
      rankCorrelations(records).map((r) => [r.estimator, r.taus]),
    );
    expect(byEstimator.leep).toEqual([1, 1]);
    expect(byEstimator.nce).toEqual([-1, -1]);
    expect(byEstimator.logme).toEqual([1, 1]);
    expect(byEstimator.hscore).toEqual([]); // constant scores: no ranking
  });
});

describe('runModelSelection', () => {
  it('scores each source on the target, fine-tunes it, and records predicted beside measured', async () => {
    const suite: ModelSelectionSuite = {
      kind: 'model-selection',
      id: 'tiny-ms',
      description: 'test',
      backbone: 'mlp',
      seeds: 1,
      targets: [
        { id: 'mnist-digits-to-parity', options: { labelsPerClass: 10, testPerClass: 200 } },
      ],
      candidates: [
        { label: 'digits', task: 'mnist-digits-to-parity' },
        {
          label: 'digits-brief',
          task: 'mnist-digits-to-parity',
          pretrain: { epochs: 1, maxExamples: 200 },
        },
        { label: 'digits-0-4', task: 'mnist04-to-mnist59' },
      ],
      pretrain: { epochs: 1, maxExamples: 1000 },
      fineTune: { epochs: 3 },
    };
    const outDir = mkdtempSync(join(tmpdir(), 'tl-ms-'));
    const out = await runModelSelection({ suite, outDir, backend: 'wasm', progress: silent });
    expect(out.records.map((r) => r.source)).toEqual(['digits', 'digits-brief', 'digits-0-4']);
    // One trial per candidate: the source is in the method label too.
    expect(out.records.map((r) => r.method)).toEqual([
      'fine-tune ← digits',
      'fine-tune ← digits-brief',
      'fine-tune ← digits-0-4',
    ]);
    for (const r of out.records) {
      expect(r.status, r.error).toBe('ok');
      expect(r.metrics.measured_target_test_acc).toBeGreaterThan(0.4);
      expect(r.metrics.predicted_leep).toBeLessThan(0);
      expect(r.metrics.predicted_nce).toBeLessThanOrEqual(0);
      for (const k of ['predicted_logme', 'predicted_hscore'])
        expect(Number.isFinite(r.metrics[k])).toBe(true);
    }
    // a source whose inputs do not match the target's is a failed trial, not a crash
    const bad = await runModelSelection({
      suite: {
        ...suite,
        candidates: [
          { label: 'quadratic', task: 'mnist-digits-to-parity', options: { labelsPerClass: 10 } },
        ],
      },
      outDir: mkdtempSync(join(tmpdir(), 'tl-ms-')),
      backend: 'wasm',
      progress: silent,
    });
    expect(bad.records[0]?.status).toBe('ok');
    // A second run into the first directory resumes: all three done, nothing appended.
    const again = await runModelSelection({ suite, outDir, backend: 'wasm', progress: silent });
    expect(again.resumed).toBe(3);
    expect(readRecords(out.resultsPath)).toHaveLength(3);
    // The report: accuracy per source, then Kendall's τ.
    const text = modelSelectionKind.summarize(out.records, {});
    expect(text).toMatch(/\| task +\| ← digits +\| ← digits-brief +\| ← digits-0-4 +\|/);
    expect(text).toContain("Kendall's τ");
  });
});

describe('the model-selection kind', () => {
  it('the built-in suite parses, and plan gives exactly the trials a run records', async () => {
    const suite = builtin();
    expect(loadSuite('model-selection').kind).toBe(modelSelectionKind);
    const ctx = { registries: defaultRegistries() };
    const units = modelSelectionKind.plan(suite, [0], ctx);
    expect(units.map((u) => u.id)).toEqual([
      'mnist-digits-to-parity · seed 0',
      'fashion-to-fashion-coarse · seed 0',
    ]);
    expect(units[0]?.trials.map((t) => t.method)).toEqual(
      suite.candidates.map((c) => `fine-tune ← ${c.label}`),
    );
    // Every target and candidate, at toy sizes.
    const small: ModelSelectionSuite = {
      ...suite,
      targets: suite.targets.map((t) => ({
        ...t,
        options: { ...t.options, labelsPerClass: 5, valPerClass: 2, testPerClass: 20 },
      })),
      candidates: suite.candidates.map((c) => ({
        ...c,
        pretrain: { epochs: 1, maxExamples: 200 },
      })),
      pretrain: { epochs: 1, maxExamples: 200 },
      fineTune: { epochs: 1 },
    };
    const out = await runModelSelection({
      suite: small,
      seeds: 1,
      outDir: mkdtempSync(join(tmpdir(), 'tl-ms-')),
      backend: 'wasm',
      progress: silent,
    });
    const trials = modelSelectionKind.plan(small, [0], ctx).flatMap((u) => u.trials);
    expect(triples(out.records)).toEqual(triples(trials));
    expect(trials).toHaveLength(2 * 5);
    for (const r of out.records) expect(r.status, r.error).toBe('ok');
  });

  it('refuses a missing kind, unknown keys and unknown ids with their path', () => {
    const suite = builtin();
    const { kind: _kind, ...withoutKind } = suite;
    expect(modelSelectionKind.schema.safeParse(withoutKind).success).toBe(false);
    expect(modelSelectionKind.schema.safeParse({ ...suite, finetune: {} }).success).toBe(false);
    const reg = defaultRegistries();
    const [first, second] = suite.candidates as [
      ModelSelectionSuite['candidates'][number],
      ModelSelectionSuite['candidates'][number],
    ];
    expect(() =>
      modelSelectionKind.check?.(
        { ...suite, candidates: [first, { ...second, task: 'mnist-parity' }] },
        reg,
      ),
    ).toThrow(/^candidates\[1\]\.task: Unknown task "mnist-parity"/);
    expect(() =>
      modelSelectionKind.check?.(
        { ...suite, targets: [{ id: 'mnist-digits-to-parity', options: { labelsPerClas: 3 } }] },
        reg,
      ),
    ).toThrow(/^targets\[0\]\.options: .*no option "labelsPerClas"/);
    expect(() =>
      modelSelectionKind.check?.(
        { ...suite, candidates: [first, { ...second, label: first.label }] },
        reg,
      ),
    ).toThrow(/^candidates\[1\]\.label: "mnist-digits" is also candidates\[0\]/);
    expect(() => modelSelectionKind.check?.({ ...suite, fineTune: { epochs: -1 } }, reg)).toThrow(
      /^fineTune: /,
    );
  });
});
