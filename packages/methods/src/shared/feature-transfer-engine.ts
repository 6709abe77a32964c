/**
 * Feature-transfer training on the onnxruntime engine: the target network's
 * step on CE + a transfer loss (feature matching, attention transfer)
 * compiled into one graph with the frozen source network's forward pass as
 * constants. The tfjs path (featureTransferStep) is the reference.
 */
import { DivergenceError, type Params } from '@transferlab/core';
import {
  OnnxGraphBuilder as Builder,
  type HostTensor,
  int64Labels,
  LABEL_TYPE,
  type OnnxGraphBuilder,
  TrainingSession,
} from '@transferlab/graph';
import type { SpecBackbone } from '@transferlab/models';
import type { Batch, Engine, StepInput, StepResult } from '../types.js';
import {
  disposeFeatureTransfer,
  type FeatureTransferOptions,
  type FeatureTransferState,
  type TapPair,
} from './feature-transfer.js';
import {
  emitHeadCrossEntropy,
  emitSourceInputs,
  type SourceGraphInputs,
} from './feature-transfer-graph.js';
import type { OptimConfig } from './optim.js';
import { disposeTrainedModel, trainedModelLrFactor } from './trained-model.js';
import { graphOptimizer, hostTensor, paramSnapshots, weightReader } from './trainer.js';

/** A compiled step's view of the weights: host arrays in, tfjs tensors out for prediction. */
export interface FeatureTransferEngine {
  /** One step at the schedule's rate for `step`; the loss before the update. */
  step(batch: Batch, step: number): Promise<number>;
  /** The weights as tfjs tensors, owned by the engine, valid until the next step. */
  params(): Params;
  optimizerSlots(): Record<string, Float32Array>;
  dispose(): Promise<void>;
}

/** What a transfer loss reads in the graph. */
export interface TransferGraphContext {
  g: OnnxGraphBuilder;
  pairs: readonly TapPair[];
  targetTaps: Readonly<Record<string, string>>;
  source: SourceGraphInputs;
  /** The graph value of a trained parameter. */
  param: (name: string) => string;
}

/**
 * Compile `state`'s step (CE of the target head + `transferLoss`) for the
 * engine. The state's tfjs weights and optimizer state are copied into the
 * session and freed: from here on the engine owns the weights.
 */
export async function compileFeatureTransfer<C extends OptimConfig & FeatureTransferOptions>(
  state: FeatureTransferState<C>,
  transferLoss: (ctx: TransferGraphContext) => string,
  threads = 1,
): Promise<FeatureTransferEngine> {
  const backbone: SpecBackbone = state.backbone;
  const g = new Builder(`${state.config.pairs}-feature-transfer`);
  const x = g.input('x', ['N', ...backbone.inputShape]);
  const y = g.input('y', ['N'], LABEL_TYPE);
  const params: Record<string, HostTensor> = {};
  for (const [n, t] of Object.entries(state.params)) {
    params[n] = hostTensor(t);
    g.input(n, t.shape);
  }
  const source = emitSourceInputs(g, state.source, state.pairs, x);
  const emit = backbone.emitGraph;
  if (!emit) throw new Error(`the target backbone "${backbone.name}" has no graph form`);
  const out = emit.call(backbone, g, {
    input: x,
    weight: weightReader(g, (n) => n),
    training: state.trainBatchNorm,
    prefix: 'target/',
    taps: [...new Set(state.pairs.map((p) => p.target))],
  });
  const param = (n: string) => n;
  const ce = emitHeadCrossEntropy(g, out.features, state.head, param, y);
  const loss = g.op('Add', [
    ce,
    transferLoss({ g, pairs: state.pairs, targetTaps: out.taps, source, param }),
  ]);
  const session = await TrainingSession.create({
    graph: g,
    loss,
    params,
    trainable: state.trainable.map((name) => ({ name, lrScale: 1 })),
    carried: state.trainBatchNorm ? out.statistics : {},
    optimizer: graphOptimizer(state.config),
    intraOpNumThreads: threads,
  });
  disposeTrainedModel(state);
  const snapshots = paramSnapshots(() => session.params());
  const shape = backbone.inputShape;
  return {
    async step(batch, step) {
      const lr = state.config.lr * trainedModelLrFactor(state, step);
      const feeds = {
        x: { data: batch.xData, dims: [batch.n, ...shape] },
        y: { data: int64Labels(batch.yData), dims: [batch.n] },
      };
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
    async dispose() {
      snapshots.dispose();
      await session.dispose();
    },
  };
}

/**
 * `state` on the trial's engine: compiled with `transferLoss` for
 * onnxruntime, unchanged for tfjs. A failed compilation frees the state.
 */
export async function featureTransferOnEngine<
  C extends OptimConfig & FeatureTransferOptions,
  S extends FeatureTransferState<C>,
>(
  state: S,
  ctx: { readonly engine?: Engine; readonly threads?: number },
  transferLoss: (ctx: TransferGraphContext) => string,
): Promise<S> {
  if (ctx.engine !== 'onnxruntime') return state;
  try {
    return { ...state, engine: await compileFeatureTransfer(state, transferLoss, ctx.threads) };
  } catch (err) {
    await disposeFeatureTransfer(state);
    throw err;
  }
}

/** One step of a compiled feature-transfer state (the engine keeps the weights: the state object stays). */
export async function featureTransferEngineStep<
  S extends { readonly engine?: FeatureTransferEngine },
>(state: S, input: StepInput): Promise<StepResult<S>> {
  const engine = state.engine as FeatureTransferEngine;
  const loss = await engine.step(input.target, input.step);
  if (!Number.isFinite(loss)) throw new DivergenceError(input.step, loss);
  return { state, loss };
}
