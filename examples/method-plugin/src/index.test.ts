import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// The bench app is not a library (no exports): its modules by path, as the CLI's own tests use them.
import {
  checkMethodContract,
  loadMethodPlugin,
  withPlugins,
} from '../../../apps/bench/src/plugins.js';
import type { Progress } from '../../../apps/bench/src/progress.js';
import { defaultRegistries, runSuite } from '../../../apps/bench/src/run-suite.js';
import type { SuiteSpec } from '../../../apps/bench/src/suites.js';
import { lpFt } from './index.js';

const here = dirname(fileURLToPath(import.meta.url));
const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

describe('the LP-FT example plugin', () => {
  it('loads through loadMethodPlugin and meets the method contract', async () => {
    const method = await loadMethodPlugin('./index.ts', here);
    expect(method.id).toBe('lp-ft');
    expect(checkMethodContract(method, 'index.ts')).toBe(method);
    expect(method.needs).toEqual({ pretrainedBackbone: true, sourceBatches: false });
    expect(method.validate({ probeSteps: 0 })).toMatchObject({ probeSteps: 0, lr: 1e-2 });
    expect(() => method.validate({ probeSteps: 1.5 })).toThrow(
      /method "lp-ft": probeSteps must be a non-negative integer, got 1.5/,
    );
    expect(() => method.validate({ probeStep: 10 })).toThrow(/unknown option "probeStep"/);
  });

  it('runs a real trial in a suite through withPlugins, recorded under its id', async () => {
    const registries = await withPlugins(
      defaultRegistries(),
      [{ id: 'lp-ft', from: './examples/method-plugin/src/index.ts' }],
      join(here, '../../..'),
    );
    // The same module the test imported: one plugin, not a second copy.
    expect(registries.methods.get('lp-ft')).toBe(lpFt);
    // Small but real: MNIST digits → parity (2 classes, chance 50%), a short pre-training.
    const suite: SuiteSpec = {
      id: 'plugin-example',
      description: 'LP-FT loaded as a plugin',
      backbone: 'mlp',
      seeds: 1,
      tasks: [{ id: 'mnist-digits-to-parity', options: { labelsPerClass: 10, testPerClass: 200 } }],
      methods: [{ id: 'lp-ft', options: { epochs: 5 } }],
      pretrain: { epochs: 1, maxExamples: 1500 },
    };
    const { records } = await runSuite({
      suite,
      registries,
      outDir: mkdtempSync(join(tmpdir(), 'tl-plugin-')),
      backend: 'wasm',
      progress: silent,
      diskCache: false,
    });
    expect(records).toHaveLength(1);
    const [record] = records;
    expect(record?.status).toBe('ok');
    expect(record?.method).toBe('lp-ft');
    expect(record?.engine).toBe('onnxruntime');
    expect(record?.metrics.target_test_acc).toBeGreaterThan(0.65);
  });
});
