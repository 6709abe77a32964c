/**
 * A network trainer on either engine, from one description: the backbone,
 * the weights, which of them train at which rate, the optimizer, and the
 * method's loss (`LossFn`, written once against `LossOps`).
 *
 * - `tfjs`: eager tfjs with core's optimizers (the reference implementation).
 * - `onnxruntime`: the loss's forward graph, its gradient graph (autodiff)
 *   and the optimizer's update compiled into one ONNX model; each step is
 *   one onnxruntime run over typed arrays.
 *
 * Both take the same steps: a test per method holds them to the same weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeParams, type Params } from '@transferlab/core';
import {
  createSession,
  DT,
  type GraphOptimizer,
  type HostTensor,
  int64Labels,
  LABEL_TYPE,
  OnnxGraphBuilder,
  runSession,
  TrainingSession,
} from '@transferlab/graph';
import type { Backbone } from '@transferlab/models';
import { type Batch, ENGINES, type Engine, type StepInput } from '../types.js';
import type { NormSession } from './batch-norm.js';
import {
  graphLossOps,
  type LossFn,
  type StepValueSpec,
  type StepValues,
  tfjsLossOps,
} from './loss-ops.js';
import type { OptimConfig } from './optim.js';
import {
  disposeTrainedModel,
  initTrainedModel,
  type TrainedModel,
  trainedModelLrFactor,
  trainedModelStep,
} from './trained-model.js';

/** A clear error for an engine name that is not one. */
export function requireEngine(name: string): Engine {
  if ((ENGINES as readonly string[]).includes(name)) return name as Engine;
  throw new Error(`unknown engine "${name}" (valid: ${ENGINES.join(', ')})`);
}

export interface NetworkTrainerSpec<C extends OptimConfig = OptimConfig> {
  engine: Engine;
  backbone: Backbone;
  /** Backbone and head weights (taken over: the trainer owns and disposes them). */
  params: Params;
  /** Parameters outside the backbone (heads): they train at the full learning rate. */
  isHead: (name: string) => boolean;
  config: C;
  totalSteps: number;
  /** The backbone's learning rate relative to the heads'; 0 freezes it. */
  backboneLrMultiplier: number;
  /** Keep normalisation in inference mode while the backbone trains. */
  freezeBatchNorm?: boolean;
  loss: LossFn;
  /**
   * A frozen copy of the network the loss may read (`ops.features(x, 'frozen')`,
   * `ops.linear(f, head, 'frozen')`): backbone and head weights, taken over.
   * It answers in inference mode and is never trained (LwF's teacher).
   */
  frozen?: Params;
  /** The step values the loss reads (`ops.value(name)`), declared for the engine's compiler. */
  values?: Readonly<Record<string, StepValueSpec>>;
  /** The loss reads a source batch (`ops.source`): the method's `needs.sourceBatches`. */
  sourceBatches?: boolean;
  /** onnxruntime intra-op threads (default 1). */
  intraOpNumThreads?: number;
}

export interface NetworkTrainer {
  readonly engine: Engine;
  /** The parameters the optimizer updates (normalisation statistics never are). */
  readonly trainable: readonly string[];
  /**
   * One optimizer step at the schedule's learning rate for `input.step`, with
   * the step values the loss reads; the loss before the update.
   */
  step(input: StepInput, values?: StepValues): Promise<number>;
  /**
   * The current weights as tfjs tensors, for prediction. Live: owned by the
   * trainer and valid until the next step (copy what you keep).
   */
  params(): Params;
  /** The optimizer's slots as arrays (`m:<param>`, `v:<param>` for Adam; `v:<param>` for SGD with momentum): copies. */
  optimizerSlots(): Record<string, Float32Array>;
  /**
   * The trained network's features of `batch` at the current weights,
   * [n, featureDim] row-major, as the next step's forward pass computes them
   * (normalisation in training mode when steps train it; the running
   * statistics are left alone): what a loss needs computed on the host
   * before a step (BSS's singular vectors). On onnxruntime a forward-only
   * session, compiled on first use.
   */
  features(batch: Batch): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export async function createNetworkTrainer<C extends OptimConfig>(
  spec: NetworkTrainerSpec<C>,
): Promise<NetworkTrainer> {
  const model = initTrainedModel({
    backbone: spec.backbone,
    params: spec.params,
    config: spec.config,
    totalSteps: spec.totalSteps,
    isHead: spec.isHead,
    backboneLrMultiplier: spec.backboneLrMultiplier,
    ...(spec.freezeBatchNorm !== undefined ? { freezeBatchNorm: spec.freezeBatchNorm } : {}),
  });
  if (spec.engine === 'tfjs') return tfjsTrainer(model, spec);
  try {
    return await onnxruntimeTrainer(model, spec);
  } catch (err) {
    disposeTrainedModel(model);
    throw err;
  } finally {
    if (spec.frozen) disposeParams(spec.frozen);
  }
}

function tfjsTrainer(initial: TrainedModel, spec: NetworkTrainerSpec): NetworkTrainer {
  let model = initial;
  const frozen = spec.frozen;
  return {
    engine: 'tfjs',
    trainable: initial.trainable,
    async step(input, values = {}) {
      const batches = {
        target: { x: input.target.x, y: input.target.y },
        ...(input.source ? { source: { x: input.source.x, y: input.source.y } } : {}),
      };
      const tensors: Record<string, tf.Tensor> = {};
      for (const [name, v] of Object.entries(values))
        tensors[name] = tf.tensor(
          v.data,
          [...v.dims],
          v.data instanceof Int32Array ? 'int32' : 'float32',
        );
      try {
        const result = trainedModelStep(
          model,
          input.step,
          (p: Params, norm: NormSession) =>
            spec.loss(
              tfjsLossOps(p, norm, batches, {
                values: tensors,
                ...(frozen ? { frozen, backbone: spec.backbone } : {}),
              }),
            ) as tf.Scalar,
        );
        model = result.state;
        return result.loss;
      } finally {
        tf.dispose(Object.values(tensors));
      }
    },
    params: () => model.params,
    optimizerSlots: () =>
      Object.fromEntries(
        Object.entries(model.optState.slots).map(([k, t]) => [k, Float32Array.from(t.dataSync())]),
      ),
    async features(batch) {
      return tf.tidy(() => {
        const f = spec.backbone.apply(model.params, batch.x, { training: model.trainBatchNorm });
        return Float32Array.from(f.features.dataSync());
      });
    },
    async dispose() {
      disposeTrainedModel(model);
      if (frozen) disposeParams(frozen);
    },
  };
}

/** The optimizer of an `OptimConfig` as a graph fragment (the same update as core's). */
export function graphOptimizer(c: OptimConfig): GraphOptimizer {
  return c.optimizer === 'adam'
    ? { kind: 'adam', weightDecay: c.weightDecay }
    : { kind: 'sgd', momentum: c.momentum, weightDecay: c.weightDecay };
}

/** A tfjs tensor's values as a host array for the engine (a copy). */
export const hostTensor = (t: tf.Tensor): HostTensor => ({
  data: Float32Array.from(t.dataSync()),
  dims: [...t.shape],
});

/** Host arrays as tfjs tensors, rebuilt only when the step count moved. */
export function paramSnapshots(read: () => Readonly<Record<string, HostTensor>>) {
  let snapshot: Params | undefined;
  let at = -1;
  return {
    get(steps: number): Params {
      if (snapshot && at === steps) return snapshot;
      if (snapshot) disposeParams(snapshot);
      const next: Record<string, tf.Tensor> = {};
      for (const [n, v] of Object.entries(read()))
        next[n] = tf.tensor(v.data as Float32Array, [...v.dims]);
      snapshot = next;
      at = steps;
      return next;
    },
    dispose() {
      if (snapshot) disposeParams(snapshot);
      snapshot = undefined;
    },
  };
}

/**
 * A conv weight asked for in ONNX's layout gets one Transpose per graph, not
 * one per pass; `value` names the parameter's current graph value.
 */
export function weightReader(g: OnnxGraphBuilder, value: (name: string) => string) {
  const cache = new Map<string, string>();
  return (name: string, _shape: readonly number[], perm?: readonly number[]) => {
    const v = value(name);
    if (!perm) return v;
    const key = `${v}|${perm.join()}`;
    let t = cache.get(key);
    if (!t) {
      t = g.op('Transpose', [v], { perm: { type: 'ints', value: perm } });
      cache.set(key, t);
    }
    return t;
  };
}

async function onnxruntimeTrainer<C extends OptimConfig>(
  model: TrainedModel<C>,
  spec: NetworkTrainerSpec<C>,
): Promise<NetworkTrainer> {
  const emit = spec.backbone.emitGraph;
  if (!emit)
    throw new Error(
      `the onnxruntime engine cannot compile backbone "${spec.backbone.name}": it has no graph form (emitGraph); run it with --engine tfjs`,
    );
  const g = new OnnxGraphBuilder(`${spec.backbone.name}-train-step`);
  const inputShape = spec.backbone.inputShape;
  const params: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(model.params)) {
    params[name] = hostTensor(t);
    g.input(name, t.shape);
  }
  const batchInputs = (prefix: string) => ({
    x: g.input(`${prefix}x`, ['N', ...inputShape]),
    y: g.input(`${prefix}y`, ['N'], LABEL_TYPE),
  });
  const target = batchInputs('');
  // Source batches get their own batch size symbol: the two batches may differ.
  const usesSource = spec.sourceBatches ?? false;
  const source = usesSource
    ? {
        x: g.input('source:x', ['M', ...inputShape]),
        y: g.input('source:y', ['M'], LABEL_TYPE),
      }
    : undefined;
  // Running statistics chain from pass to pass within a step, as in the tfjs path.
  const statistics: Record<string, string> = {};
  let passes = 0;
  // The frozen network: constants in the graph, read in inference mode.
  const frozenValue = (name: string) => {
    const graphName = `frozen:${name}`;
    if (!g.has(graphName)) {
      const t = spec.frozen?.[name];
      if (!t)
        throw new Error(
          `this loss reads "${name}" of the frozen network, but the trainer's frozen weights have none (have: ${Object.keys(spec.frozen ?? {}).join(', ') || 'none'})`,
        );
      g.initializer(graphName, t.dataSync() as Float32Array, t.shape);
    }
    return graphName;
  };
  const frozenWeight = (name: string, _shape: readonly number[], perm?: readonly number[]) =>
    perm
      ? g.op('Transpose', [frozenValue(name)], { perm: { type: 'ints', value: perm } })
      : frozenValue(name);
  const valueInputs: Record<string, string> = {};
  for (const [name, v] of Object.entries(spec.values ?? {}))
    valueInputs[name] = g.input(
      `value:${name}`,
      v.dims,
      v.type === 'int32' ? LABEL_TYPE : DT.FLOAT,
    );
  // Normalisation statistics chain from pass to pass; a conv weight is transposed once per graph.
  const cachedWeight = weightReader(g, (name) => statistics[name] ?? name);
  const ops = graphLossOps(g, {
    target,
    ...(source ? { source } : {}),
    features: (x, net) => {
      if (net === 'frozen')
        return emit.call(spec.backbone, g, {
          input: x,
          weight: frozenWeight,
          training: false,
          prefix: `frozen${passes++}/`,
        }).features;
      const out = emit.call(spec.backbone, g, {
        input: x,
        weight: cachedWeight,
        training: model.trainBatchNorm,
        prefix: `pass${passes++}/`,
      });
      Object.assign(statistics, out.statistics);
      return out.features;
    },
    param: (name, net) => {
      if (net === 'frozen') return frozenValue(name);
      if (!(name in params))
        throw new Error(
          `this loss reads parameter "${name}", which does not exist (have: ${Object.keys(params).join(', ')})`,
        );
      return name;
    },
    value: (name) => {
      const input = valueInputs[name];
      if (!input)
        throw new Error(
          `this loss reads step value "${name}", which the trainer does not declare (values: ${Object.keys(valueInputs).join(', ') || 'none'})`,
        );
      return input;
    },
  });
  const loss = spec.loss(ops);
  const trainable = new Set(model.trainable);
  const multiplier = spec.backboneLrMultiplier;
  const session = await TrainingSession.create({
    graph: g,
    loss,
    params,
    trainable: [...trainable].map((name) => ({
      name,
      lrScale: spec.isHead(name) ? 1 : multiplier,
    })),
    carried: model.trainBatchNorm ? statistics : {},
    optimizer: graphOptimizer(spec.config),
    intraOpNumThreads: spec.intraOpNumThreads ?? 1,
  });
  // The features probe: the backbone alone, in the step's normalisation mode.
  let probe: Awaited<ReturnType<typeof createSession>> | undefined;
  let probeOutput = '';
  const backboneParams = Object.keys(spec.backbone.paramShapes);
  const features = async (batch: Batch) => {
    if (!probe) {
      const fg = new OnnxGraphBuilder(`${spec.backbone.name}-features`);
      for (const name of backboneParams) fg.input(name, params[name]?.dims ?? []);
      const out = emit.call(spec.backbone, fg, {
        input: fg.input('x', ['N', ...inputShape]),
        weight: (name, _shape, perm) =>
          perm ? fg.op('Transpose', [name], { perm: { type: 'ints', value: perm } }) : name,
        training: model.trainBatchNorm,
        prefix: 'probe/',
      });
      // Training mode's running-statistic updates are left dangling: a few elementwise ops.
      fg.output(out.features);
      probe = await createSession(fg.toBytes({ opset: 17 }), {
        intraOpNumThreads: spec.intraOpNumThreads ?? 1,
      });
      probeOutput = out.features;
    }
    const current = session.params();
    const feeds: Record<string, HostTensor> = {
      x: { data: batch.xData, dims: [batch.n, ...inputShape] },
    };
    for (const name of backboneParams) feeds[name] = current[name] as HostTensor;
    const out = await runSession(probe, feeds, [probeOutput]);
    return Float32Array.from((out[probeOutput] as HostTensor).data as Float32Array);
  };
  // The weights as tfjs tensors for prediction: rebuilt only after steps.
  const snapshots = paramSnapshots(() => session.params());
  disposeTrainedModel(model);
  return {
    engine: 'onnxruntime',
    trainable: model.trainable,
    async step(input, values = {}) {
      if (usesSource && !input.source)
        throw new Error(
          'onnxruntime engine: this loss reads a source batch, but the step has none',
        );
      const feeds: Record<string, HostTensor> = {
        x: { data: input.target.xData, dims: [input.target.n, ...inputShape] },
        y: { data: int64Labels(input.target.yData), dims: [input.target.n] },
      };
      if (usesSource && input.source) {
        feeds['source:x'] = { data: input.source.xData, dims: [input.source.n, ...inputShape] };
        feeds['source:y'] = { data: int64Labels(input.source.yData), dims: [input.source.n] };
      }
      for (const name of Object.keys(valueInputs)) {
        const v = values[name];
        if (!v) throw new Error(`onnxruntime engine: step value "${name}" was not supplied`);
        feeds[`value:${name}`] = {
          data: v.data instanceof Int32Array ? int64Labels(v.data) : v.data,
          dims: v.dims,
        };
      }
      const lr = spec.config.lr * trainedModelLrFactor(model, input.step);
      return (await session.step(feeds, lr)).loss;
    },
    params: () => snapshots.get(session.steps),
    optimizerSlots: () =>
      Object.fromEntries(
        Object.entries(session.optimizerSlots()).map(([k, v]) => [
          k,
          Float32Array.from(v.data as Float32Array),
        ]),
      ),
    features,
    async dispose() {
      snapshots.dispose();
      await probe?.release();
      probe = undefined;
      await session.dispose();
    },
  };
}
