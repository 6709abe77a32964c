#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { requireEngine } from '@transferlab/methods';
import { type Command, intOption, loadSuiteFromArgs, str, type Values } from './command.js';
import { defaultJobs, executeSuite } from './execute.js';
import { fitCommands } from './fit/commands.js';
import { streamMemory } from './fit/stream-memory.js';
import { builtinKindRegistry } from './kinds.js';
import { onnxCheck } from './onnx-check.js';
import { queueCommands } from './queue/commands.js';
import { requireMetric } from './report.js';
import { compareRuns, formatCompare } from './report-html/compare.js';
import { formatCsv, summaryJson } from './report-html/csv.js';
import { defaultReportSections, renderHtmlReport } from './report-html/html.js';
import { dedupeByKey, ensureDir, latestRun, readRecords, type TrialRecord } from './results.js';
import { defaultRegistries } from './run-suite.js';
import { formatSpeedJson, formatStepCost, measureSpeed, measureStepCost } from './speed.js';
import { builtinSuiteIds, loadSuite, registriesForSuite } from './suite-file.js';

/**
 * Which kind wrote these records. Records carry it; older ones are told
 * apart by their metrics, as the reports once did.
 */
function kindOf(records: readonly TrialRecord[]): string {
  const stated = records.find((r) => r.kind !== undefined)?.kind;
  if (stated) return stated;
  if (records.some((r) => r.metrics.predicted_risk !== undefined)) return 'theory-linear';
  if (records.some((r) => r.metrics.predicted_bound !== undefined)) return 'tta-bound';
  if (records.some((r) => r.suite.startsWith('theory-gcm'))) return 'theory-gcm';
  if (
    records.some(
      (r) => r.metrics.n_target !== undefined && r.metrics.measured_test_error !== undefined,
    )
  )
    return 'theory-chmm';
  if (records.some((r) => r.source !== undefined)) return 'model-selection';
  return 'transfer';
}

/** Each suite's records summarised by its own kind's report. */
export function summarize(records: readonly TrialRecord[], metric?: string): string {
  const kinds = builtinKindRegistry();
  const suites = [...new Set(records.map((r) => r.suite))];
  return suites
    .map((suite) => {
      const mine = records.filter((r) => r.suite === suite);
      const kind = kinds.get(kindOf(mine));
      const text = kind.summarize(mine, metric !== undefined ? { metric } : {});
      return suites.length > 1 ? `## ${suite}\n\n${text}` : text;
    })
    .join('\n\n');
}

const commands: Record<string, Command> = {
  list: {
    usage: 'pnpm bench list                      suites, suite kinds, methods, tasks, backbones',
    options: {},
    async run() {
      const reg = defaultRegistries();
      const section = (title: string, rows: { id: string; text: string }[]) =>
        `${title}\n${rows.map((r) => `  ${r.id.padEnd(26)} ${r.text}`).join('\n')}\n`;
      const suites = builtinSuiteIds().map((id) => {
        try {
          const { suite, kind } = loadSuite(id);
          return {
            id,
            text: `${kind.id === 'transfer' ? '' : `[${kind.id}] `}${suite.description}`,
          };
        } catch (err) {
          return { id, text: `(invalid: ${(err as Error).message.split('\n')[0]})` };
        }
      });
      process.stdout.write(
        [
          section('suites', suites),
          section(
            'suite kinds',
            builtinKindRegistry().items.map((k) => ({ id: k.id, text: k.description })),
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
    },
  },
  run: {
    usage: `pnpm bench run <suite-id | path/to/suite.yaml> [options]
  --seeds N            seeds 0 … N−1 (default: the suite's)
  --first-seed K       start at seed K, to split a sweep across processes
  --out DIR            results directory (default results/<suite>); a run into it resumes
  --fresh              start a new run in DIR instead of resuming
  --jobs N             trials in N worker processes (default: the machine's cores, ${defaultJobs()} here)
  --methods a,b        only these methods (labels), --tasks x,y only these tasks
  --set path=value     change the suite for this run, e.g. methods.fine-tune.lr=0.003, seeds=3 (repeatable)
  --plugin FILE        a method plugin module; suite methods with its id use it (repeatable)
  --engine E           onnxruntime|tfjs (default: onnxruntime for every method it covers)
  --backend B          tfjs backend: wasm|cpu|tensorflow
  --metric NAME        the metric the printed table shows`,
    options: {
      seeds: { type: 'string' },
      'first-seed': { type: 'string' },
      out: { type: 'string' },
      fresh: { type: 'boolean' },
      jobs: { type: 'string' },
      methods: { type: 'string' },
      tasks: { type: 'string' },
      set: { type: 'string', multiple: true },
      plugin: { type: 'string', multiple: true },
      engine: { type: 'string' },
      backend: { type: 'string' },
      metric: { type: 'string' },
    },
    async run(values, [ref]) {
      if (!ref)
        throw new Error(
          `run: which suite? Valid suite ids: ${builtinSuiteIds().join(', ')} (or a suite file)`,
        );
      const { kind, suite } = await loadSuiteFromArgs(ref, values);
      const engine =
        str(values.engine) === undefined ? undefined : requireEngine(str(values.engine) as string);
      const firstSeed = str(values['first-seed']);
      const outDir = str(values.out) ?? join('results', suite.id);
      // Before any work: an unusable --out would otherwise surface only after pre-training.
      ensureDir(outDir);
      const seeds = intOption('seeds', values.seeds);
      const jobs = intOption('jobs', values.jobs) ?? defaultJobs();
      const result = await executeSuite({
        kind,
        suite,
        outDir,
        jobs,
        registries: await registriesForSuite(suite),
        ...(seeds !== undefined ? { seeds } : {}),
        ...(firstSeed !== undefined ? { firstSeed: Number(firstSeed) } : {}),
        ...(values.fresh ? { fresh: true } : {}),
        ...(str(values.backend) ? { backend: str(values.backend) as string } : {}),
        ...(engine ? { engine } : {}),
      });
      const metric = str(values.metric);
      if (metric !== undefined) requireMetric(result.records, metric);
      const failed = result.records.filter((r) => r.status !== 'ok').length;
      process.stdout.write(
        `\nsuite ${suite.id} (${kind.id}) on backend ${result.backend}\n${kind.summarize(result.records, metric !== undefined ? { metric } : {})}\n`,
      );
      process.stdout.write(
        `\n${result.records.length} trials (${result.resumed} resumed from earlier), ${failed} failed; results in ${result.resultsPath}\n`,
      );
      return failed === 0 ? 0 : 1;
    },
  },
  report: {
    usage: `pnpm bench report <DIR | results.jsonl> [--metric NAME] [--all] [--html [FILE]] [--csv [FILE]] [--json [FILE]]
  the tables again, from the file: the latest run (--all: every run), each trial key once
  --html [FILE]   one self-contained HTML page with charts (default DIR/report.html)
  --csv [FILE]    per task × method: n, mean, 95% CI, failures (default DIR/summary.csv)
  --json [FILE]   the same rows as JSON (default DIR/summary.json)`,
    options: {
      metric: { type: 'string' },
      all: { type: 'boolean' },
      html: { type: 'string' },
      csv: { type: 'string' },
      json: { type: 'string' },
    },
    async run(values, [target]) {
      if (!target) throw new Error('report: give a results.jsonl file or its directory');
      const records = recordsOf(target, Boolean(values.all));
      const metric = str(values.metric);
      if (metric !== undefined) requireMetric(records, metric);
      const text = summarize(records, metric);
      process.stdout.write(`${text}\n`);
      const dir = target.endsWith('.jsonl') ? dirname(target) : target;
      const where = (flag: string, fallback: string) => {
        const v = str(values[flag]);
        return v === undefined ? undefined : v === '' ? join(dir, fallback) : v;
      };
      const html = where('html', 'report.html');
      const csv = where('csv', 'summary.csv');
      const json = where('json', 'summary.json');
      const summaryMetric = metric ?? 'target_test_acc';
      if (csv) {
        requireMetric(records, summaryMetric);
        writeFileSync(csv, formatCsv(records, summaryMetric));
        process.stdout.write(`wrote ${csv}\n`);
      }
      if (json) {
        requireMetric(records, summaryMetric);
        writeFileSync(json, `${JSON.stringify(summaryJson(records, summaryMetric), null, 2)}\n`);
        process.stdout.write(`wrote ${json}\n`);
      }
      if (html) {
        const suites = [...new Set(records.map((r) => r.suite))];
        const page = await renderHtmlReport(
          defaultReportSections(records, { ...(metric ? { metric } : {}), summaryText: text }),
          {
            title: `transferlab report: ${suites.join(', ')}`,
            ...(records[0]?.provenance ? { provenance: provenanceLine(records) } : {}),
          },
        );
        writeFileSync(html, page);
        process.stdout.write(`wrote ${html}\n`);
      }
      return 0;
    },
  },
  compare: {
    usage: `pnpm bench compare <DIR_A | a.jsonl> <DIR_B | b.jsonl> [--metric NAME] [--all]
  per task × method: mean in A, in B, and B − A with its 95% CI (paired on seeds when both ran the same seeds)`,
    options: { metric: { type: 'string' }, all: { type: 'boolean' } },
    async run(values, [a, b]) {
      if (!a || !b)
        throw new Error('compare: give two result directories (or results.jsonl files)');
      const metric = str(values.metric) ?? 'target_test_acc';
      const ra = recordsOf(a, Boolean(values.all));
      const rb = recordsOf(b, Boolean(values.all));
      requireMetric([...ra, ...rb], metric);
      process.stdout.write(`A = ${a}\nB = ${b}\n${formatCompare(compareRuns(ra, rb, metric))}\n`);
      return 0;
    },
  },
  speed: {
    usage: `pnpm bench speed [--engine onnxruntime|tfjs] [--backend NAME] [--backbone ID|mobilenetv2-224]
                 [--seconds S] [--threads 1,2] [--json]
  training steps/s of each backbone on each engine (and tfjs backend); --json: one JSON line per row`,
    options: {
      engine: { type: 'string' },
      backend: { type: 'string' },
      backbone: { type: 'string' },
      seconds: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
    },
    async run(values) {
      const seconds = str(values.seconds) === undefined ? 3 : Number(values.seconds);
      if (!(seconds > 0))
        throw new Error(`--seconds must be a positive number, got "${values.seconds}"`);
      const threads =
        str(values.threads) === undefined
          ? [1, 2]
          : (values.threads as string).split(',').map(Number);
      if (!threads.every((t) => Number.isInteger(t) && t > 0))
        throw new Error(
          `--threads must be positive integers separated by commas, got "${values.threads}"`,
        );
      const engine =
        str(values.engine) === undefined ? undefined : requireEngine(values.engine as string);
      const backend = str(values.backend);
      // --engine onnxruntime times only the engine; --engine tfjs or --backend only tfjs (that backend).
      const { results, unavailable } = await measureSpeed({
        seconds,
        threads,
        onnxruntime: engine !== 'tfjs' && backend === undefined,
        ...(backend ? { backends: [backend] } : engine === 'onnxruntime' ? { backends: [] } : {}),
        ...(str(values.backbone) ? { backbones: [values.backbone as string] } : {}),
      });
      const notes = unavailable.map(
        (u) =>
          `(${u.engine}${u.backend ? `/${u.backend}` : ''} unavailable: ${u.error.split('\n')[0]})\n`,
      );
      if (values.json) {
        process.stdout.write(formatSpeedJson(results));
        for (const n of notes) process.stderr.write(n);
        return 0;
      }
      process.stdout.write(
        '| engine | backend | backbone | batch | steps/s | examples/s |\n|---|---|---|---|---|---|\n',
      );
      for (const r of results)
        process.stdout.write(
          `| ${r.engine} | ${r.backend ?? '—'} | ${r.backbone} | ${r.batchSize} | ${r.stepsPerSecond.toFixed(1)} | ${r.examplesPerSecond.toFixed(0)} |\n`,
        );
      for (const n of notes) process.stdout.write(n);
      return 0;
    },
  },
  'step-cost': {
    usage: `pnpm bench step-cost [--backbone ID] [--engine E] [--backend NAME] [--seconds S]
  one training step of each method, as a multiple of fine-tuning's`,
    options: {
      backbone: { type: 'string' },
      engine: { type: 'string' },
      backend: { type: 'string' },
      seconds: { type: 'string' },
    },
    async run(values) {
      const seconds = str(values.seconds) === undefined ? 3 : Number(values.seconds);
      if (!(seconds > 0))
        throw new Error(`--seconds must be a positive number, got "${values.seconds}"`);
      const results = await measureStepCost({
        backbone: str(values.backbone) ?? 'mlp',
        seconds,
        ...(str(values.engine) ? { engine: requireEngine(values.engine as string) } : {}),
        ...(str(values.backend) ? { backend: values.backend as string } : {}),
      });
      process.stdout.write(formatStepCost(results));
      for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
      return 0;
    },
  },
  // Your own image folder: train, evaluate per class, export (apps/bench/src/fit/).
  fit: fitCommands.fit,
  predict: fitCommands.predict,
  'stream-memory': streamMemory,
  'onnx-check': {
    usage: `pnpm bench onnx-check <model.onnx> [--input-shape 28,28,1] [--backend NAME]
  import an ONNX model and compare its outputs with onnxruntime's`,
    options: { 'input-shape': { type: 'string' }, backend: { type: 'string' } },
    async run(values, [file]) {
      if (!file) throw new Error('onnx-check: give the path of an .onnx file');
      const shape = str(values['input-shape']);
      const inputShape = shape === undefined ? undefined : shape.split(',').map(Number);
      if (inputShape && !inputShape.every((d) => Number.isInteger(d) && d > 0))
        throw new Error(
          `--input-shape must be positive integers separated by commas, got "${shape}"`,
        );
      const report = await onnxCheck(file, {
        ...(str(values.backend) ? { backend: values.backend as string } : {}),
        ...(inputShape ? { inputShape } : {}),
      });
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    },
  },
  // Sweeps across machines on Redis/BullMQ (apps/bench/src/queue/).
  queue: queueCommands.queue,
  worker: queueCommands.worker,
  status: queueCommands.status,
  collect: queueCommands.collect,
};

/** One line on where records came from: commit(s), Node, CPU. */
function provenanceLine(records: readonly TrialRecord[]): Record<string, string> {
  const commits = [...new Set(records.map((r) => r.provenance?.commit).filter(Boolean))];
  const p = records.find((r) => r.provenance)?.provenance;
  return {
    commit: commits.map((c) => (c as string).slice(0, 12)).join(', ') || 'unknown',
    ...(p ? { node: p.node, cpu: `${p.cpu} (${p.cores} cores)`, platform: p.platform } : {}),
  };
}

/** The records a report reads: one file, or DIR/results.jsonl; the latest run unless `all`; each key once. */
function recordsOf(target: string, all: boolean): TrialRecord[] {
  const path = target.endsWith('.jsonl') ? target : join(target, 'results.jsonl');
  const records = readRecords(path);
  return all ? dedupeByKey(records) : latestRun(records);
}

const USAGE = `transferlab benchmark — pnpm bench <command> [options]; pnpm bench <command> --help for one command

${Object.values(commands)
  .map((c) => c.usage.split('\n')[0])
  .join('\n')}
`;

/**
 * Flags whose value is optional (`--html` or `--html out.html`): a flag not
 * followed by a file of its extension gets an empty value, meaning "the default file".
 */
function withOptionalValues(args: string[], flags: Record<string, string>): string[] {
  return args.map((a, i) => {
    const ext = flags[a];
    if (ext === undefined) return a;
    const next = args[i + 1];
    return next?.toLowerCase().endsWith(ext) ? a : `${a}=`;
  });
}

async function main(argv: string[]): Promise<number> {
  const name = argv.find((a) => !a.startsWith('-'));
  if (name === undefined) {
    process.stdout.write(USAGE);
    return argv.includes('--help') || argv.includes('-h') ? 0 : 2;
  }
  const command = commands[name];
  if (!command)
    throw new Error(
      `Unknown command "${name}". Valid commands: ${Object.keys(commands).join(', ')}\n\n${USAGE}`,
    );
  const { values, positionals } = parseArgs({
    args: withOptionalValues(
      argv.filter((_, i) => i !== argv.indexOf(name)),
      Object.fromEntries(
        Object.entries({ html: '.html', csv: '.csv', json: '.json' })
          .filter(([flag]) => command.options[flag]?.type === 'string')
          .map(([flag, ext]) => [`--${flag}`, ext]),
      ),
    ),
    allowPositionals: true,
    options: { ...command.options, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  return command.run(values as Values, positionals);
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
