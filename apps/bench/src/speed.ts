import * as tf from '@tensorflow/tfjs-core';
import { BACKENDS, createRng, disposeParams, initBackend, type Params } from '@transferlab/core';
import {
  type AnyTransferMethod,
  batchFromTensors,
  createBatch,
  createMethodRegistry,
  disposeBatch,
  type Engine,
  fineTune,
  scratch,
} from '@transferlab/methods';
import {
  type Backbone,
  createBackboneRegistry,
  linearHead,
  loadNsfwMobileNetV2,
} from '@transferlab/models';
import { chooseEngine } from './runner.js';

/**
 * Time `step` for about `seconds` (at least one step) after `warmupSteps`
 * untimed ones: steps taken and steps per second.
 */
async function timeSteps(
  step: () => unknown,
  seconds: number,
  warmupSteps: number,
): Promise<{ steps: number; stepsPerSecond: number }> {
  for (let i = 0; i < warmupSteps; i++) await step();
  let steps = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000 || steps < 1) {
    await step();
    steps++;
  }
  return { steps, stepsPerSecond: steps / ((performance.now() - started) / 1000) };
}

/** One measured row: what `pnpm bench speed --json` prints, one JSON object per line. */
export interface SpeedResult {
  engine: Engine;
  /** The tfjs backend (null for onnxruntime). */
  backend: string | null;
  backbone: string;
  batchSize: number;
  stepsPerSecond: number;
  examplesPerSecond: number;
  steps: number;
  /** onnxruntime's intra-op threads. */
  threads?: number;
  /** onnxruntime rows: the faster thread count for this backbone (the engine's row to compare). */
  best?: boolean;
}

/** The row that times fine-tuning a real pretrained network: nsfwjs MobileNetV2 at 224×224. */
export const MOBILENET_ROW = 'mobilenetv2-224';

interface SpeedSubject {
  id: string;
  backbone: Backbone;
  pretrained?: Params;
  method: AnyTransferMethod;
  options: Record<string, unknown>;
  numClasses: number;
  batchSize: number;
  dispose(): void;
}

/**
 * Training throughput of one method step on either engine: the `scratch`
 * step (backbone + linear head, Adam 1e-3, cross-entropy, normalisation in
 * training mode) for the registry's backbones on random 28×28×1 inputs at
 * `batchSize`, and a MobileNetV2 fine-tuning step (224×224×3, batch 8,
 * nsfwjs's pretrained weights) — each after warm-up steps, for about
 * `seconds`. Engines and tfjs backends that cannot run are reported, the
 * rest go on.
 */
export async function measureSpeed(opts: {
  /** tfjs backends to time (default: every one); [] for none. */
  backends?: readonly string[];
  /** Time the onnxruntime engine. Default true. */
  onnxruntime?: boolean;
  /** Registry backbone ids, and/or "mobilenetv2-224". Default: every registry backbone and MobileNetV2. */
  backbones?: readonly string[];
  batchSize?: number;
  seconds?: number;
  /**
   * onnxruntime intra-op thread counts to time, each a row; the faster row of
   * each backbone is marked `best` (two threads land run to run at either of
   * two speeds on two cores, so both are measured). Default [1, 2].
   */
  threads?: readonly number[];
}): Promise<{
  results: SpeedResult[];
  unavailable: { engine: string; backend: string | null; error: string }[];
}> {
  const batchSize = opts.batchSize ?? 64;
  const seconds = opts.seconds ?? 3;
  const threadCounts = opts.threads ?? [1, 2];
  const registry = createBackboneRegistry();
  const ids = opts.backbones ?? [...registry.ids, MOBILENET_ROW];
  for (const id of ids) if (id !== MOBILENET_ROW) registry.get(id);
  const results: SpeedResult[] = [];
  const unavailable: { engine: string; backend: string | null; error: string }[] = [];
  const runs: { engine: Engine; backend: string | null }[] = [
    ...((opts.onnxruntime ?? true) ? [{ engine: 'onnxruntime' as const, backend: null }] : []),
    ...(opts.backends ?? BACKENDS).map((b) => ({ engine: 'tfjs' as const, backend: b })),
  ];
  for (const run of runs) {
    try {
      // Weights are drawn and predictions made with tfjs on any engine.
      await initBackend(run.backend ? { backend: run.backend } : {});
    } catch (err) {
      unavailable.push({ ...run, error: (err as Error).message });
      continue;
    }
    for (const id of ids) {
      let subject: SpeedSubject | undefined;
      try {
        subject = await speedSubject(id, batchSize, registry);
        const rows: SpeedResult[] = [];
        for (const threads of run.engine === 'onnxruntime' ? threadCounts : [1]) {
          const timed = await timeMethodSteps(subject, run.engine, seconds, threads);
          rows.push({
            ...run,
            backbone: subject.id,
            batchSize: subject.batchSize,
            ...timed,
            examplesPerSecond: timed.stepsPerSecond * subject.batchSize,
            ...(run.engine === 'onnxruntime' ? { threads } : {}),
          });
        }
        if (run.engine === 'onnxruntime') {
          const fastest = Math.max(...rows.map((r) => r.stepsPerSecond));
          for (const r of rows) r.best = r.stepsPerSecond === fastest;
        }
        results.push(...rows);
      } catch (err) {
        unavailable.push({ ...run, error: `${id}: ${(err as Error).message}` });
      } finally {
        subject?.dispose();
      }
    }
  }
  return { results, unavailable };
}

async function speedSubject(
  id: string,
  batchSize: number,
  registry: ReturnType<typeof createBackboneRegistry>,
): Promise<SpeedSubject> {
  if (id === MOBILENET_ROW) {
    const mobilenet = await loadNsfwMobileNetV2();
    return {
      id,
      backbone: mobilenet.backbone,
      pretrained: mobilenet.params,
      method: fineTune,
      options: {},
      numClasses: 5,
      batchSize: 8,
      dispose: () => disposeParams(mobilenet.params),
    };
  }
  const backbone = registry.get(id).create([28, 28, 1]);
  return {
    id: backbone.name,
    backbone,
    method: scratch,
    options: {},
    numClasses: 10,
    batchSize,
    dispose: () => {},
  };
}

async function timeMethodSteps(
  subject: SpeedSubject,
  engine: Engine,
  seconds: number,
  threads: number,
): Promise<{ steps: number; stepsPerSecond: number }> {
  const { method, backbone, batchSize: n } = subject;
  const rng = createRng(0);
  const config = method.validate({ ...subject.options, batchSize: n });
  let state = await method.init({
    config,
    engine,
    backbone,
    numClasses: subject.numClasses,
    ...(subject.pretrained ? { pretrained: subject.pretrained } : {}),
    rng,
    totalSteps: 1_000_000,
    ...(engine === 'onnxruntime' ? { threads } : {}),
  });
  const size = backbone.inputShape.reduce((a, b) => a * b, 1);
  const target = createBatch(
    Float32Array.from(rng.normalArray(n * size)),
    Int32Array.from({ length: n }, () => rng.int(subject.numClasses)),
    backbone.inputShape,
  );
  let stepIndex = 0;
  const step = async () => {
    state = (await method.trainStep(state, { target, step: stepIndex++ })).state;
  };
  try {
    // Warm-up: a step or two (kernel compilation, the session's first allocations).
    return await timeSteps(step, seconds, engine === 'onnxruntime' ? 3 : 1);
  } finally {
    await method.dispose(state);
    disposeBatch(target);
  }
}

/** The rows as JSON lines (`pnpm bench speed --json`). */
export function formatSpeedJson(results: readonly SpeedResult[]): string {
  return results
    .map((r) =>
      JSON.stringify({
        engine: r.engine,
        backend: r.backend,
        backbone: r.backbone,
        batchSize: r.batchSize,
        stepsPerSecond: Number(r.stepsPerSecond.toFixed(2)),
        ...(r.threads !== undefined ? { threads: r.threads } : {}),
        ...(r.best !== undefined ? { best: r.best } : {}),
      }),
    )
    .join('\n')
    .concat(results.length ? '\n' : '');
}

/** One method configuration whose training-step cost is measured. */
export interface StepCostEntry {
  readonly label: string;
  readonly method: string;
  readonly options?: Readonly<Record<string, unknown>>;
}

/**
 * What `pnpm bench step-cost` measures by default: every built-in method
 * with its default options, plus MeRLin's variants (ridge head, source loss,
 * inner gradient steps instead of the closed form). Fine-tuning comes first:
 * it is the reference the others are divided by.
 */
export function defaultStepCostEntries(methodIds: readonly string[]): StepCostEntry[] {
  const entries: StepCostEntry[] = [{ label: 'fine-tune', method: 'fine-tune' }];
  for (const id of methodIds) if (id !== 'fine-tune') entries.push({ label: id, method: id });
  entries.push(
    { label: 'merlin head=ridge', method: 'merlin', options: { head: 'ridge' } },
    { label: 'merlin sourceWeight=1', method: 'merlin', options: { sourceWeight: 1 } },
    { label: 'merlin innerSteps=5', method: 'merlin', options: { innerSteps: 5 } },
  );
  return entries;
}

export interface StepCostResult {
  label: string;
  method: string;
  backbone: string;
  backend: string;
  /** Where the method's steps ran (its first supported engine unless one was asked for). */
  engine?: Engine;
  batchSize: number;
  steps: number;
  stepsPerSecond: number;
  /** Seconds per step ÷ fine-tuning's seconds per step on the same batch. */
  costVsFineTune?: number;
  /** Why the method could not be measured (e.g. it needs a layer-spec backbone). */
  error?: string;
}

/**
 * Wall-clock cost of one `trainStep` of each method on the same batch: a
 * random 28×28 target batch (10 classes) and, for methods that want one, a
 * source batch of the same size; "pretrained" weights are a random
 * initialisation (the cost of a step does not depend on the values). A
 * warm-up, then steps for about `seconds`. A method that fails to
 * initialise or step is reported with its error and the rest go on.
 */
export async function measureStepCost(opts: {
  backbone: string;
  entries?: readonly StepCostEntry[];
  backend?: string;
  /** The engine asked for (default: onnxruntime where the method and backbone support it), as a trial chooses it. */
  engine?: Engine;
  batchSize?: number;
  seconds?: number;
}): Promise<StepCostResult[]> {
  const backend = (await initBackend(opts.backend ? { backend: opts.backend } : {})).name;
  const batchSize = opts.batchSize ?? 64;
  const seconds = opts.seconds ?? 3;
  const numClasses = 10;
  const methods = createMethodRegistry();
  const entries = opts.entries ?? defaultStepCostEntries(methods.ids);
  const backbone = createBackboneRegistry().get(opts.backbone).create([28, 28, 1]);
  const rng = createRng(0);
  const pretrained = backbone.init(rng.derive('pretrained'));
  const sourceHead = linearHead(backbone.featureDim, numClasses, 'source_head').init(
    rng.derive('source-head'),
  );
  const batch = (name: string) => {
    const r = rng.derive(name);
    return batchFromTensors(
      tf.tensor(r.normalArray(batchSize * 784), [batchSize, 28, 28, 1]),
      // Every class present in both halves of MeRLin's split.
      tf.tensor1d(
        Int32Array.from({ length: batchSize }, (_, i) => i % numClasses),
        'int32',
      ),
    );
  };
  const target = batch('target');
  const source = batch('source');
  const results: StepCostResult[] = [];
  try {
    for (const entry of entries) {
      let base: Omit<StepCostResult, 'steps' | 'stepsPerSecond'> = {
        label: entry.label,
        method: entry.method,
        backbone: backbone.name,
        backend,
        batchSize,
      };
      let state: unknown;
      let method: ReturnType<typeof methods.get> | undefined;
      try {
        method = methods.get(entry.method);
        const config = method.validate({ ...entry.options, batchSize });
        const engine = chooseEngine(method, backbone, opts.engine);
        base = { ...base, engine };
        state = await method.init({
          config,
          engine,
          // Methods that look at the target set before training (DELTA, Co-Tuning) see this batch.
          targetTrain: target,
          backbone,
          numClasses,
          pretrained,
          sourceHead,
          sourceNumClasses: numClasses,
          rng: rng.derive(`init:${entry.label}`),
          totalSteps: 1_000_000,
        });
        let step = 0;
        const run = async () => {
          const m = method as NonNullable<typeof method>;
          const out = await m.trainStep(state, {
            target,
            ...(m.needs.sourceBatches ? { source } : {}),
            step,
          });
          state = out.state;
          step++;
        };
        // Warm-up (kernel compilation, first allocations, the JIT): 3 steps and
        // a quarter of the budget, so the first method measured is not penalised.
        const warmStart = performance.now();
        for (let w = 0; w < 3 || performance.now() - warmStart < seconds * 250; w++) await run();
        results.push({ ...base, ...(await timeSteps(run, seconds, 0)) });
      } catch (err) {
        results.push({ ...base, steps: 0, stepsPerSecond: 0, error: (err as Error).message });
      } finally {
        if (method && state !== undefined) await method.dispose(state);
      }
    }
  } finally {
    disposeParams(pretrained);
    disposeParams(sourceHead);
    tf.dispose([target.x, target.y, source.x, source.y]);
  }
  // The reference: the first fine-tune entry (the default list puts it first, without options).
  const reference = results.find((r) => r.method === 'fine-tune' && !r.error);
  if (reference)
    for (const r of results)
      if (!r.error) r.costVsFineTune = reference.stepsPerSecond / r.stepsPerSecond;
  return results;
}

export function formatStepCost(results: readonly StepCostResult[]): string {
  const lines = [
    '| method | backbone | engine | backend | batch | steps/s | cost × fine-tune |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const where = `${r.backbone} | ${r.engine ?? '—'} | ${r.engine === 'onnxruntime' ? '—' : r.backend}`;
    lines.push(
      r.error
        ? `| ${r.label} | ${where} | ${r.batchSize} | — | not measured: ${r.error.split('\n')[0]} |`
        : `| ${r.label} | ${where} | ${r.batchSize} | ${r.stepsPerSecond.toFixed(1)} | ${r.costVsFineTune === undefined ? '—' : r.costVsFineTune.toFixed(2)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
