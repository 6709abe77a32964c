import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type OnnxBackboneSuite, onnxBackboneKind, runOnnxBackbone } from './onnx-backbone.js';
import type { Progress } from './progress.js';
import { readRecords } from './results.js';
import { defaultRegistries } from './run-suite.js';
import { BUILTIN_SUITE_DIR, loadSuite, readSuiteFile } from './suite-file.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const triples = (rs: readonly { task: string; method: string; seed: number }[]) =>
  rs.map((r) => `${r.task} | ${r.method} | ${r.seed}`);
const builtin = () =>
  onnxBackboneKind.schema.parse(readSuiteFile(join(BUILTIN_SUITE_DIR, 'onnx-backbone.yaml')));

describe('onnx-backbone suite', () => {
  it('exports, re-imports, probes through onnxruntime and fine-tunes the import', async () => {
    const suite: OnnxBackboneSuite = {
      kind: 'onnx-backbone',
      id: 'onnx-test',
      description: 'test',
      backbone: 'mlp',
      seeds: 1,
      task: { id: 'mnist-digits-to-parity', options: { labelsPerClass: 20, testPerClass: 100 } },
      testPoints: 200,
      probeEpochs: 60,
      mobilenet: false,
      pretrain: { epochs: 1, maxExamples: 1500 },
      fineTune: { epochs: 3 },
    };
    const out = await runOnnxBackbone({
      suite,
      outDir: mkdtempSync(join(tmpdir(), 'onnxb-')),
      backend: 'wasm',
      progress: silent,
    });
    expect(out.records.map((r) => r.method)).toEqual([
      'linear-probe (onnxruntime)',
      'fine-tune (imported)',
    ]);
    for (const r of out.records) {
      expect(r.status, r.error).toBe('ok');
      expect(r.metrics.roundtrip_max_abs_diff).toBeLessThan(1e-4);
      expect(r.metrics.target_test_acc).toBeGreaterThan(0.6); // parity from digit features; chance is 0.5
    }
    expect(out.records[0]?.metrics.images_per_second).toBeGreaterThan(0);
  });

  it('the built-in suite parses; plan gives exactly the trials a run records; a run resumes within a seed', async () => {
    const suite = builtin();
    expect(loadSuite('onnx-backbone').kind).toBe(onnxBackboneKind);
    const ctx = { registries: defaultRegistries() };
    // MobileNetV2 is fine-tuned on the first mobilenetFineTune.seeds seeds only.
    expect(onnxBackboneKind.plan(suite, [0, 1, 2], ctx).map((u) => u.trials.length)).toEqual([
      5, 3, 3,
    ]);
    const small: OnnxBackboneSuite = {
      ...suite,
      task: {
        ...suite.task,
        options: { ...suite.task.options, labelsPerClass: 2, valPerClass: 1, testPerClass: 4 },
      },
      testPoints: 10,
      probeEpochs: 5,
      mobilenet: false,
      mobilenetFineTune: { seeds: 1, testPoints: 4, options: { epochs: 1, batchSize: 5 } },
      pretrain: { epochs: 1, maxExamples: 300 },
      fineTune: { epochs: 1 },
    };
    const { mobilenetFineTune: _mft, ...withoutMobilenet } = small;
    const outDir = mkdtempSync(join(tmpdir(), 'onnxb-'));
    const common = { seeds: 1, outDir, backend: 'wasm', progress: silent };
    const first = await runOnnxBackbone({ ...common, suite: withoutMobilenet });
    expect(triples(first.records)).toEqual(
      triples(onnxBackboneKind.plan(withoutMobilenet, [0], ctx).flatMap((u) => u.trials)),
    );
    // Adding MobileNetV2 leaves the other trials' keys alone: the run resumes them
    // and runs only the three new trials of the same unit.
    const withMobilenet = { ...small, mobilenet: true };
    const second = await runOnnxBackbone({ ...common, suite: withMobilenet });
    expect(second.resumed).toBe(2);
    expect(second.run).toBe(first.run);
    const trials = onnxBackboneKind.plan(withMobilenet, [0], ctx).flatMap((u) => u.trials);
    expect(trials).toHaveLength(5);
    expect(triples(second.records)).toEqual(triples(trials));
    for (const r of second.records) expect(r.status, r.error).toBe('ok');
    expect(readRecords(second.resultsPath)).toHaveLength(5);
    const text = onnxBackboneKind.summarize(second.records, {});
    expect(text).toContain('mobilenetv2 fine-tune (BN frozen)');
    expect(text).toContain('round trip max abs diff');
  }, 600_000);

  it('refuses a missing kind, unknown keys and unknown ids with their path', () => {
    const suite = builtin();
    const { kind: _kind, ...withoutKind } = suite;
    expect(onnxBackboneKind.schema.safeParse(withoutKind).success).toBe(false);
    expect(onnxBackboneKind.schema.safeParse({ ...suite, probeEpoch: 3 }).success).toBe(false);
    const reg = defaultRegistries();
    expect(() =>
      onnxBackboneKind.check?.({ ...suite, task: { id: 'fashion-coarse' } }, reg),
    ).toThrow(/^task\.id: Unknown task "fashion-coarse"/);
    expect(() =>
      onnxBackboneKind.check?.(
        { ...suite, task: { ...suite.task, options: { labelsPerClas: 3 } } },
        reg,
      ),
    ).toThrow(/^task\.options: .*no option "labelsPerClas"/);
    expect(() => onnxBackboneKind.check?.({ ...suite, backbone: 'cnm' }, reg)).toThrow(
      /^backbone: /,
    );
    expect(() => onnxBackboneKind.check?.({ ...suite, mobilenet: false }, reg)).toThrow(
      /^mobilenetFineTune: runs only with mobilenet: true/,
    );
  });
});
