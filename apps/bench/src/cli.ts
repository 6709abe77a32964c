#!/usr/bin/env node
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { requireEngine } from '@transferlab/methods';
import { formatRankTable, runModelSelection } from './model-selection.js';
import { runOnnxBackbone } from './onnx-backbone.js';
import { onnxCheck } from './onnx-check.js';
import {
  formatAgreement,
  formatLambdaTable,
  formatPairedTable,
  formatTable,
  requireMetric,
} from './report.js';
import { ensureDir, latestRun, readRecords, type TrialRecord } from './results.js';
import { defaultRegistries, runSuite } from './run-suite.js';
import { formatSpeedJson, formatStepCost, measureSpeed, measureStepCost } from './speed.js';
import { createSuiteRegistry } from './suites.js';
import { formatChmmTable, runChmmSuite } from './theory-chmm/index.js';
import { formatTheoryGcm, runTheoryGcm } from './theory-gcm.js';
import { formatTheoryLinear, runTheoryLinear } from './theory-linear.js';
import { formatTtaTable, runTtaBound } from './tta-bound.js';

const USAGE = `transferlab benchmark

  pnpm bench list                                   suites, methods, tasks, backbones
  pnpm bench run <suite> [--seeds N] [--first-seed K] [--out DIR] [--backend wasm|cpu|tensorflow] [--engine onnxruntime|tfjs]
                                            training engine: default onnxruntime for every method it covers
  pnpm bench report <results.jsonl | DIR> [--metric NAME] [--all]   (default: the latest run in the file)
  pnpm bench speed [--engine onnxruntime|tfjs] [--backend NAME] [--backbone ID|mobilenetv2-224]
                   [--seconds S] [--threads 1,2] [--json]
                                            training steps/s of each backbone on each engine (and tfjs backend);
                                            --json: one JSON line per row
  pnpm bench step-cost [--backbone ID] [--engine E] [--backend NAME] [--seconds S]
                                            one training step of each method, as a multiple of fine-tuning's
  pnpm bench onnx-check <model.onnx> [--input-shape 28,28,1]   import + compare with onnxruntime
`;

/** The tables a run prints: per-method means and paired gains, or rank correlations for model selection. */
function summarize(records: readonly TrialRecord[], metric?: string): string {
  const agreement = formatAgreement(records);
  if (records.some((r) => r.metrics.predicted_risk !== undefined))
    return `${formatTheoryLinear(records)}${agreement ? `\n\n${agreement}` : ''}`;
  if (records.some((r) => r.metrics.predicted_bound !== undefined)) return formatTtaTable(records);
  if (records.some((r) => r.suite.startsWith('theory-gcm')))
    return `${formatTheoryGcm(records)}${agreement ? `\n\n${agreement}` : ''}`;
  if (
    records.some(
      (r) => r.metrics.n_target !== undefined && r.metrics.measured_test_error !== undefined,
    )
  ) {
    return `${formatChmmTable(records)}${agreement ? `\n\n${agreement}` : ''}`;
  }
  if (records.some((r) => r.source !== undefined)) {
    return `${formatTable(
      records.map((r) => ({ ...r, method: `← ${r.source}` })),
      'measured_target_test_acc',
    )}\n\n${formatRankTable(records)}`;
  }
  // Against scratch where it ran, else against fine-tuning (the regularisers' suite).
  const baseline = records.some((r) => r.method === 'scratch') ? 'scratch' : 'fine-tune';
  const paired = formatPairedTable(records, baseline, metric);
  const lambdas = formatLambdaTable(records);
  return `${formatTable(records, metric)}${paired ? `\n\n${paired}` : ''}${lambdas ? `\n\n${lambdas}` : ''}`;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      seeds: { type: 'string' },
      'first-seed': { type: 'string' },
      out: { type: 'string' },
      backend: { type: 'string' },
      engine: { type: 'string' },
      json: { type: 'boolean' },
      threads: { type: 'string' },
      metric: { type: 'string' },
      seconds: { type: 'string' },
      backbone: { type: 'string' },
      all: { type: 'boolean' },
      'input-shape': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  const suites = createSuiteRegistry();
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  switch (command) {
    case 'list': {
      const reg = defaultRegistries();
      const section = (title: string, rows: { id: string; text: string }[]) =>
        `${title}\n${rows.map((r) => `  ${r.id.padEnd(26)} ${r.text}`).join('\n')}\n`;
      process.stdout.write(
        [
          section(
            'suites',
            suites.items.map((s) => ({ id: s.id, text: s.description })),
          ),
          section(
            'methods',
            reg.methods.items.map((m) => ({ id: m.id, text: m.description })),
          ),
          section(
            'tasks',
            reg.tasks.items.map((t) => ({ id: t.id, text: t.description })),
          ),
          section(
            'backbones',
            reg.backbones.items.map((b) => ({ id: b.id, text: b.description })),
          ),
        ].join('\n'),
      );
      return 0;
    }
    case 'run': {
      const suiteId = rest[0];
      if (!suiteId) throw new Error(`run: which suite? Valid suite ids: ${suites.ids.join(', ')}`);
      const suite = suites.get(suiteId);
      const seeds = values.seeds === undefined ? undefined : Number(values.seeds);
      if (seeds !== undefined && !(Number.isInteger(seeds) && seeds > 0)) {
        throw new Error(`--seeds must be a positive integer, got "${values.seeds}"`);
      }
      const engine = values.engine === undefined ? undefined : requireEngine(values.engine);
      const firstSeed =
        values['first-seed'] === undefined ? undefined : Number(values['first-seed']);
      if (suite.kind !== undefined && suite.kind !== 'transfer' && firstSeed !== undefined)
        throw new Error(`--first-seed applies to transfer suites only, not "${suite.id}"`);
      const outDir = values.out ?? join('results', suite.id);
      // Before any work: an unusable --out would otherwise surface only after pre-training.
      ensureDir(outDir);
      const common = {
        outDir,
        ...(seeds !== undefined ? { seeds } : {}),
        ...(values.backend ? { backend: values.backend } : {}),
      };
      const result =
        suite.kind === 'model-selection'
          ? await runModelSelection({ suite, ...common })
          : suite.kind === 'theory-linear'
            ? runTheoryLinear({ suite, ...common })
            : suite.kind === 'theory-gcm'
              ? runTheoryGcm({ suite, ...common })
              : suite.kind === 'theory-chmm'
                ? await runChmmSuite({ suite, ...common })
                : suite.kind === 'tta-bound'
                  ? await runTtaBound({ suite, ...common })
                  : suite.kind === 'onnx-backbone'
                    ? await runOnnxBackbone({ suite, ...common, ...(engine ? { engine } : {}) })
                    : await runSuite({
                        suite,
                        ...common,
                        ...(engine ? { engine } : {}),
                        ...(firstSeed !== undefined ? { firstSeed } : {}),
                      });
      const backendName =
        typeof result.backend === 'string'
          ? result.backend
          : (result.backend as { name: string }).name;
      const failed = result.records.filter((r) => r.status !== 'ok').length;
      process.stdout.write(
        `\nsuite ${suite.id} on backend ${backendName}\n${summarize(result.records, values.metric)}\n`,
      );
      process.stdout.write(
        `\n${result.records.length} trials, ${failed} failed; results appended to ${result.resultsPath}\n`,
      );
      return failed === 0 ? 0 : 1;
    }
    case 'report': {
      const target = rest[0];
      if (!target) throw new Error('report: give a results.jsonl file or its directory');
      const path = target.endsWith('.jsonl') ? target : join(target, 'results.jsonl');
      const all = readRecords(path);
      const records = values.all ? all : latestRun(all);
      if (values.metric !== undefined) requireMetric(records, values.metric);
      process.stdout.write(`${summarize(records, values.metric)}\n`);
      return 0;
    }
    case 'onnx-check': {
      const file = rest[0];
      if (!file) throw new Error('onnx-check: give the path of an .onnx file');
      const shape = values['input-shape'];
      const inputShape = shape === undefined ? undefined : shape.split(',').map(Number);
      if (inputShape && !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
        throw new Error(
          `--input-shape must be positive integers separated by commas, got "${shape}"`,
        );
      }
      const report = await onnxCheck(file, {
        ...(values.backend ? { backend: values.backend } : {}),
        ...(inputShape ? { inputShape } : {}),
      });
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    case 'speed': {
      const seconds = values.seconds === undefined ? 3 : Number(values.seconds);
      if (!(seconds > 0))
        throw new Error(`--seconds must be a positive number, got "${values.seconds}"`);
      const threads = values.threads === undefined ? [1, 2] : values.threads.split(',').map(Number);
      if (!threads.every((t) => Number.isInteger(t) && t > 0))
        throw new Error(
          `--threads must be positive integers separated by commas, got "${values.threads}"`,
        );
      const engine = values.engine === undefined ? undefined : requireEngine(values.engine);
      // --engine onnxruntime times only the engine; --engine tfjs or --backend only tfjs (that backend).
      const { results, unavailable } = await measureSpeed({
        seconds,
        threads,
        onnxruntime: engine !== 'tfjs' && values.backend === undefined,
        ...(values.backend
          ? { backends: [values.backend] }
          : engine === 'onnxruntime'
            ? { backends: [] }
            : {}),
        ...(values.backbone ? { backbones: [values.backbone] } : {}),
      });
      if (values.json) {
        process.stdout.write(formatSpeedJson(results));
        for (const u of unavailable)
          process.stderr.write(
            `(${u.engine}${u.backend ? `/${u.backend}` : ''} unavailable: ${u.error.split('\n')[0]})\n`,
          );
        return 0;
      }
      process.stdout.write(
        '| engine | backend | backbone | batch | steps/s | examples/s |\n|---|---|---|---|---|---|\n',
      );
      for (const r of results) {
        process.stdout.write(
          `| ${r.engine} | ${r.backend ?? '—'} | ${r.backbone} | ${r.batchSize} | ${r.stepsPerSecond.toFixed(1)} | ${r.examplesPerSecond.toFixed(0)} |\n`,
        );
      }
      for (const u of unavailable)
        process.stdout.write(
          `(${u.engine}${u.backend ? `/${u.backend}` : ''} unavailable: ${u.error.split('\n')[0]})\n`,
        );
      return 0;
    }
    case 'step-cost': {
      const seconds = values.seconds === undefined ? 3 : Number(values.seconds);
      if (!(seconds > 0))
        throw new Error(`--seconds must be a positive number, got "${values.seconds}"`);
      const results = await measureStepCost({
        backbone: values.backbone ?? 'mlp',
        seconds,
        ...(values.engine ? { engine: requireEngine(values.engine) } : {}),
        ...(values.backend ? { backend: values.backend } : {}),
      });
      process.stdout.write(formatStepCost(results));
      for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
      return 0;
    }
    default:
      throw new Error(
        `Unknown command "${command}". Valid commands: list, run, report, speed, step-cost, onnx-check\n\n${USAGE}`,
      );
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = 2;
  },
);
