import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { lpFt } from './index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../../..');

/** The benchmark CLI, as a user runs it from the repository's root. */
const bench = (...args: string[]) =>
  spawnSync(
    process.execPath,
    ['--conditions=@transferlab/source', '--import', 'tsx', 'apps/bench/src/cli.ts', ...args],
    { cwd: root, encoding: 'utf8' },
  );

describe('the LP-FT example plugin', () => {
  it('is a method: its id, needs and option checks', () => {
    expect(lpFt.id).toBe('lp-ft');
    expect(lpFt.needs).toEqual({ pretrainedBackbone: true, sourceBatches: false });
    expect(lpFt.validate({ probeSteps: 0 })).toMatchObject({ probeSteps: 0, lr: 1e-2 });
    expect(() => lpFt.validate({ probeSteps: 1.5 })).toThrow(
      /method "lp-ft": probeSteps must be a non-negative integer, got 1.5/,
    );
    expect(() => lpFt.validate({ probeStep: 10 })).toThrow(/unknown option "probeStep"/);
  });

  it('runs from a suite file (`from:`), in two worker processes, and with --plugin', () => {
    const out = mkdtempSync(join(tmpdir(), 'tl-plugin-'));
    const r = bench('run', 'examples/method-plugin/suite.yaml', '--jobs', '2', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const records = readFileSync(join(out, 'results.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            method: string;
            seed: number;
            status: string;
            engine: string;
            metrics: Record<string, number>;
          },
      );
    const mine = records.filter((x) => x.method === 'lp-ft');
    expect(mine.map((x) => x.seed).sort()).toEqual([0, 1]);
    for (const x of mine) {
      expect(x.status).toBe('ok');
      expect(x.engine).toBe('onnxruntime');
      // digits → parity: two classes, chance 50%
      expect(x.metrics.target_test_acc).toBeGreaterThan(0.65);
    }
    // --plugin: a suite that names the method by its id only
    const dir = mkdtempSync(join(tmpdir(), 'tl-plugin-'));
    const byId = join(dir, 'by-id.yaml');
    writeFileSync(
      byId,
      readFileSync(join(root, 'examples/method-plugin/suite.yaml'), 'utf8').replace(
        /\n\s*from: .*\n/,
        '\n',
      ),
    );
    const viaFlag = bench(
      'run',
      byId,
      '--methods',
      'lp-ft',
      '--seeds',
      '1',
      '--jobs',
      '1',
      '--plugin',
      './examples/method-plugin/src/index.ts',
      '--out',
      join(dir, 'out'),
    );
    expect(viaFlag.status, viaFlag.stderr).toBe(0);
    expect(viaFlag.stdout).toMatch(/lp-ft/);
  }, 180_000);
});
