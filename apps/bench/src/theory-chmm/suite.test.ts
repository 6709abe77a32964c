import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Progress } from '../progress.js';
import { readRecords } from '../results.js';
import { defaultRegistries } from '../run-suite.js';
import { BUILTIN_SUITE_DIR, loadSuite, readSuiteFile } from '../suite-file.js';
import { type ChmmSuite, runChmmSuite, theoryChmmKind } from './suite.js';

const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };
const triples = (rs: readonly { task: string; method: string; seed: number }[]) =>
  rs.map((r) => `${r.task} | ${r.method} | ${r.seed}`);
const BUILTIN = [
  'theory-chmm',
  'theory-chmm-quick',
  'theory-chmm-surrogate',
  'theory-chmm-surrogate-2x',
] as const;
const builtin = (id: (typeof BUILTIN)[number]) =>
  theoryChmmKind.schema.parse(readSuiteFile(join(BUILTIN_SUITE_DIR, `${id}.yaml`)));
const ctx = { registries: defaultRegistries() };

/** The same protocol at toy sizes: every level, method and option the suite sets, seconds to run. */
function tiny(suite: ChmmSuite): ChmmSuite {
  return {
    ...suite,
    experiment: {
      ...suite.experiment,
      params: { ...suite.experiment.params, D: 10, N: 20 },
      nSource: 200,
      nTargetList: [10, 30],
      hidden: 8,
      sourceTraining: { steps: 20 },
      scratchTraining: { steps: 10 },
      nTest: 600,
      nSourceTest: 100,
      targetRepeats: 2,
      scratchRepeats: 1,
    },
  };
}

describe('the theory-chmm kind', () => {
  it('the built-in suites parse, and plan one unit per seed of levels × methods × sizes', () => {
    const sizes = BUILTIN.map((id) => {
      const suite = builtin(id);
      expect(loadSuite(id).kind).toBe(theoryChmmKind);
      const units = theoryChmmKind.plan(suite, [0, 1], ctx);
      expect(units.map((u) => u.id)).toEqual(['seed 0', 'seed 1']);
      return units[0]?.trials.length;
    });
    // 7 levels × 3 methods × 6 sizes; 2 × 3 × 3; 2 × 2 × 6; 2 × 1 × 6.
    expect(sizes).toEqual([126, 18, 24, 12]);
    const first = theoryChmmKind.plan(builtin('theory-chmm-quick'), [0], ctx)[0]?.trials[0];
    expect(first).toMatchObject({ task: 'dF=0 dT=0 · n=25', method: 'transfer', seed: 0 });
  });

  it.each(['theory-chmm', 'theory-chmm-surrogate'] as const)(
    'plan gives exactly the trials a run of %s records (toy sizes)',
    async (id) => {
      const suite = tiny(builtin(id));
      const out = await runChmmSuite({
        suite,
        seeds: 1,
        outDir: mkdtempSync(join(tmpdir(), 'tl-chmm-')),
        progress: silent,
      });
      const trials = theoryChmmKind.plan(suite, [0], ctx).flatMap((u) => u.trials);
      expect(triples(out.records)).toEqual(triples(trials));
      for (const r of out.records) expect(r.status, r.error).toBe('ok');
      if (id === 'theory-chmm-surrogate')
        for (const r of out.records) expect(r.metrics.surrogate_test_error).toBeGreaterThan(0);
      const text = theoryChmmKind.summarize(out.records, {});
      expect(text).toContain('"pred" = Gaussian covariate model');
      expect(text).toContain('prediction vs Monte Carlo');
    },
  );

  it('resumes: a second run does nothing; an added method runs alone, the others resumed', async () => {
    const base = tiny(builtin('theory-chmm-quick'));
    const fixed: ChmmSuite = {
      ...base,
      experiment: { ...base.experiment, methods: ['transfer', 'random-features'] },
    };
    const outDir = mkdtempSync(join(tmpdir(), 'tl-chmm-'));
    const common = { seeds: 1, outDir, progress: silent };
    const first = await runChmmSuite({ ...common, suite: fixed });
    expect(first.records).toHaveLength(2 * 2 * 2);
    const again = await runChmmSuite({ ...common, suite: fixed });
    expect(again.resumed).toBe(8);
    expect(readRecords(first.resultsPath)).toHaveLength(8);
    // Scratch added: the methods list is not part of a trial's key, so the
    // fixed-feature trials are kept and only scratch's four trials run.
    const all: ChmmSuite = {
      ...base,
      experiment: { ...base.experiment, methods: ['transfer', 'random-features', 'scratch'] },
    };
    const more = await runChmmSuite({ ...common, suite: all });
    expect(more.resumed).toBe(8);
    expect(more.run).toBe(first.run);
    const added = readRecords(first.resultsPath).slice(8);
    expect(added.map((r) => r.method)).toEqual(['scratch', 'scratch', 'scratch', 'scratch']);
    expect(triples(more.records).sort()).toEqual(
      triples(theoryChmmKind.plan(all, [0], ctx).flatMap((u) => u.trials)).sort(),
    );
  });

  it('refuses a missing kind, unknown keys, and bad options with their path', () => {
    const suite = builtin('theory-chmm-quick');
    const { kind: _kind, ...withoutKind } = suite;
    expect(theoryChmmKind.schema.safeParse(withoutKind).success).toBe(false);
    expect(
      theoryChmmKind.schema.safeParse({
        ...suite,
        experiment: { ...suite.experiment, nTargets: [5] },
      }).success,
    ).toBe(false);
    expect(
      theoryChmmKind.schema.safeParse({
        ...suite,
        experiment: { ...suite.experiment, methods: ['fine-tune'] },
      }).success,
    ).toBe(false);
    const reg = defaultRegistries();
    const e = suite.experiment;
    expect(() =>
      theoryChmmKind.check?.(
        { ...suite, experiment: { ...e, levels: [{}, { featurePerturbation: 0 }] } },
        reg,
      ),
    ).toThrow(/^experiment\.levels\[1\]: labelled "dF=0 dT=0" as experiment\.levels\[0\]/);
    expect(() =>
      theoryChmmKind.check?.({ ...suite, experiment: { ...e, scratchRepeats: 30 } }, reg),
    ).toThrow(/^experiment\.scratchRepeats: 30 exceeds targetRepeats \(20\)/);
    expect(() =>
      theoryChmmKind.check?.({ ...suite, experiment: { ...e, nTargetList: [25, 25] } }, reg),
    ).toThrow(/^experiment\.nTargetList\[1\]: n_target 25 appears twice/);
  });
});
