import * as tf from '@tensorflow/tfjs-core';
import { BACKENDS, createRng, disposeParams, initBackend, mergeParams } from '@transferlab/core';
import { batchFromTensors, createMethodRegistry, scratch } from '@transferlab/methods';
import {
  buildTrainStepGraph,
  compileTrainStep,
  createBackboneRegistry,
  linearHead,
  type OnnxTrainer,
} from '@transferlab/models';

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

export interface SpeedResult {
  backend: string;
  backbone: string;
  batchSize: number;
  stepsPerSecond: number;
  examplesPerSecond: number;
  steps: number;
}

/**
 * Training throughput: full steps (forward, backward, Adam update) of a
 * backbone + linear head — the `scratch` method's step — on random 28×28
 * inputs, after a warm-up, for about `seconds` per (backend, backbone).
 */
export async function measureSpeed(opts: {
  backends?: readonly string[];
  backbones?: readonly string[];
  batchSize?: number;
  seconds?: number;
  /** Also time the compiled ONNX training step (onnxruntime, Adam like the others) where it applies. Default true. */
  onnxruntime?: boolean;
}): Promise<{ results: SpeedResult[]; unavailable: { backend: string; error: string }[] }> {
  const batchSize = opts.batchSize ?? 64;
  const seconds = opts.seconds ?? 3;
  const registry = createBackboneRegistry();
  const results: SpeedResult[] = [];
  const unavailable: { backend: string; error: string }[] = [];
  for (const backend of opts.backends ?? BACKENDS) {
    try {
      await initBackend({ backend });
    } catch (err) {
      unavailable.push({ backend, error: (err as Error).message });
      continue;
    }
    for (const id of opts.backbones ?? registry.ids) {
      const backbone = registry.get(id).create([28, 28, 1]);
      const rng = createRng(0);
      // The `scratch` method's step: backbone + linear head, Adam, cross-entropy;
      // normalisation layers in training mode, their statistics not trained.
      const config = scratch.validate({ batchSize });
      let state = await scratch.init({
        config,
        backbone,
        numClasses: 10,
        rng,
        totalSteps: 1_000_000,
      });
      const x = tf.tensor(rng.normalArray(batchSize * 784), [batchSize, 28, 28, 1]);
      const y = tf.tensor1d(
        Int32Array.from({ length: batchSize }, () => rng.int(10)),
        'int32',
      );
      let stepIndex = 0;
      const target = batchFromTensors(x, y);
      const step = async () => {
        state = (await scratch.trainStep(state, { target, step: stepIndex++ })).state;
      };
      try {
        // One warm-up step and at least one timed step: a ResNet step on the
        // plain-JS cpu backend takes minutes.
        const { steps, stepsPerSecond } = await timeSteps(step, seconds, 1);
        results.push({
          backend,
          backbone: backbone.name,
          batchSize,
          steps,
          stepsPerSecond,
          examplesPerSecond: stepsPerSecond * batchSize,
        });
      } finally {
        await scratch.dispose(state);
        x.dispose();
        y.dispose();
      }
    }
  }
  // The compiled path: the whole Adam step as one ONNX graph in onnxruntime,
  // for the backbones it can compile (flatten + dense).
  if (opts.onnxruntime ?? true) {
    // The initial weights are drawn as tfjs tensors: any backend will do.
    if (results.length === 0) await initBackend();
    for (const id of opts.backbones ?? registry.ids) {
      const backbone = registry.get(id).create([28, 28, 1]);
      const head = linearHead(backbone.featureDim, 10);
      try {
        buildTrainStepGraph(backbone, head);
      } catch {
        continue; // not compilable: conv, residual or normalisation layers
      }
      const rng = createRng(0);
      const params = mergeParams(backbone.init(rng), head.init(rng));
      let trainer: OnnxTrainer | undefined;
      try {
        trainer = await compileTrainStep(backbone, head, params, { optimizer: 'adam' });
        const x = Float32Array.from(rng.normalArray(batchSize * 784));
        const y = Int32Array.from({ length: batchSize }, () => rng.int(10));
        const onnx = trainer;
        const { steps, stepsPerSecond } = await timeSteps(
          () => onnx.step(x, y, batchSize, 0.01),
          seconds,
          1,
        );
        results.push({
          backend: 'onnxruntime',
          backbone: backbone.name,
          batchSize,
          steps,
          stepsPerSecond,
          examplesPerSecond: stepsPerSecond * batchSize,
        });
      } catch (err) {
        unavailable.push({ backend: 'onnxruntime', error: (err as Error).message });
        break;
      } finally {
        await trainer?.dispose();
        disposeParams(params);
      }
    }
  }
  return { results, unavailable };
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
      const base = {
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
        state = await method.init({
          config,
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
    '| method | backbone | backend | batch | steps/s | cost × fine-tune |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    lines.push(
      r.error
        ? `| ${r.label} | ${r.backbone} | ${r.backend} | ${r.batchSize} | — | not measured: ${r.error.split('\n')[0]} |`
        : `| ${r.label} | ${r.backbone} | ${r.backend} | ${r.batchSize} | ${r.stepsPerSecond.toFixed(1)} | ${r.costVsFineTune === undefined ? '—' : r.costVsFineTune.toFixed(2)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
