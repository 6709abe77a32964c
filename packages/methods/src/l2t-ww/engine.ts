/**
 * L2T-ww's whole step as one ONNX graph for the onnxruntime engine: the real
 * step of the target network, the T + 1 look-ahead steps recorded as graph
 * values of the meta-parameters φ, the meta-objective, its gradient in φ
 * (autodiff differentiating the look-ahead's gradient nodes again: the exact
 * second-order meta-gradient, or the first-order variant) and the Adam step
 * on φ — the same computation as step.ts / lookahead.ts on tfjs, which the
 * engine tests hold it to.
 */
import { DivergenceError } from '@transferlab/core';
import {
  adamCorrections,
  addGradients,
  appendOptimizer,
  attr,
  createSession,
  type HostTensor,
  int64Labels,
  LABEL_TYPE,
  OnnxGraphBuilder,
  pruneDeadNodes,
  runSession,
  sgdStepValues,
} from '@transferlab/graph';
import type { TapPair } from '../shared/feature-transfer.js';
import type { FeatureTransferEngine } from '../shared/feature-transfer-engine.js';
import {
  emitHeadCrossEntropy,
  emitMatchingLoss,
  emitSourceInputs,
} from '../shared/feature-transfer-graph.js';
import { trainedModelLrFactor } from '../shared/trained-model.js';
import { graphOptimizer, hostTensor, paramSnapshots, weightReader } from '../shared/trainer.js';
import type { Batch } from '../types.js';
import { ID } from './config.js';
import { lookaheadParamNames } from './lookahead.js';
import type { WhereActivation } from './meta-nets.js';
import type { L2tWwState } from './step.js';

/** What a step reports beside its loss. */
export interface L2tWwEngineStep {
  metaLoss: number;
  /** Per pair: mean λ and normalised channel-weight entropy over the batch. */
  lambda: number[];
  entropy: number[];
}

export interface L2tWwEngine extends FeatureTransferEngine {
  /** The meta-networks' weights and the Adam slots (`m:…`, `v:…`), copies. */
  metaState(): Record<string, Float32Array>;
  /** What the last step measured. */
  last: L2tWwEngineStep;
  /**
   * The meta-objective and its gradient for `batch` at the current weights,
   * with the meta-networks' weights `meta` (default: the current ones) in the
   * look-ahead — the real step before it keeps the current ones, as the
   * meta-gradient treats it — committing nothing. For checks against finite
   * differences and tfjs.
   */
  probe(
    batch: Batch,
    step: number,
    meta?: Readonly<Record<string, Float32Array>>,
  ): Promise<{ metaLoss: number; metaGradient: Record<string, Float32Array> }>;
}

const next = (name: string) => `${name}:next`;

function activate(g: OnnxGraphBuilder, v: string, a: WhereActivation): string {
  switch (a) {
    case 'relu6':
      return g.op('Clip', [v, g.scalar(0, 'zero'), g.scalar(6, 'six')]);
    case 'relu':
      return g.op('Relu', [v]);
    case 'softplus': {
      // log(1 + eˣ) = relu(x) + log(1 + e^−|x|), finite for any x.
      const pos = g.op('Relu', [v]);
      const abs = g.op('Add', [pos, g.op('Relu', [g.op('Neg', [v])])]);
      const tail = g.op('Log', [g.op('Add', [g.op('Exp', [g.op('Neg', [abs])]), g.scalar(1)])]);
      return g.op('Add', [pos, tail]);
    }
  }
}

/** The meta-networks' outputs (`metaOutputs`): per pair channel weights [N, C] and λ [N], null when not learned. */
function emitMetaOutputs(
  g: OnnxGraphBuilder,
  meta: ReadonlySet<string>,
  value: (name: string) => string,
  pairs: readonly TapPair[],
  pooled: Readonly<Record<string, string>>,
  activation: WhereActivation,
): { weights: string[] | null; lambdas: string[] | null } {
  const dense = (p: TapPair, net: string) =>
    g.op('Gemm', [
      pooled[p.source] as string,
      value(`${net}.${p.index}.weight`),
      value(`${net}.${p.index}.bias`),
    ]);
  return {
    weights: meta.has('what.0.weight')
      ? pairs.map((p) => g.op('Softmax', [dense(p, 'what')], { axis: attr.int(-1) }))
      : null,
    lambdas: meta.has('where.0.weight')
      ? pairs.map((p) =>
          g.op('Squeeze', [activate(g, dense(p, 'where'), activation), g.ints([1], 'axes')]),
        )
      : null,
  };
}

/**
 * Compile `state`'s step (tfjs-initialised: weights, optimizer state and
 * meta-networks are copied into the engine and the tfjs ones freed by the caller).
 */
export async function compileL2tWw(state: L2tWwState, threads = 1): Promise<L2tWwEngine> {
  const c = state.config;
  const target = state.backbone;
  const emit = target.emitGraph;
  if (!emit)
    throw new Error(`method "${ID}": the target backbone "${target.name}" has no graph form`);
  const g = new OnnxGraphBuilder('l2t-ww-step');
  const x = g.input('x', ['N', ...target.inputShape]);
  const y = g.input('y', ['N'], LABEL_TYPE);
  const lr = g.input('lr', []);
  // Every value carried from step to step: an input S and an output S:next
  // (the optimizers declare their slots' inputs themselves).
  const values: Record<string, HostTensor> = {};
  for (const [n, t] of Object.entries({ ...state.params, ...state.meta })) {
    values[n] = hostTensor(t);
    g.input(n, t.shape);
  }
  for (const [n, t] of Object.entries({ ...state.optState.slots, ...state.metaState.slots }))
    values[n] = hostTensor(t);
  const metaNames = Object.keys(state.meta);
  const momentum = c.momentum;
  const sgd = { momentum, weightDecay: c.weightDecay };
  const pairs = state.pairs;
  const tapNames = [...new Set(pairs.map((p) => p.target))];
  const train = state.trainBatchNorm;

  const source = emitSourceInputs(g, state.source, pairs, x);
  const metaSet = new Set(metaNames);
  const meta = emitMetaOutputs(g, metaSet, (n) => n, pairs, source.pooled, c.whereActivation);
  // The real step reads the meta-networks as constants: inputs of their own
  // (fed the same weights), so a probe can move φ in the look-ahead alone.
  const constant = (n: string) => {
    const name = `constant:${n}`;
    return g.has(name) ? name : g.stopGradient(g.input(name, values[n]?.dims ?? []));
  };
  const frozen = emitMetaOutputs(g, metaSet, constant, pairs, source.pooled, c.whereActivation);
  const matching = (
    taps: Readonly<Record<string, string>>,
    param: (n: string) => string,
    m: typeof meta,
  ) =>
    emitMatchingLoss(g, {
      pairs,
      targetTaps: taps,
      sourceMaps: source.maps,
      param,
      weights: m.weights,
      lambdas: m.lambdas,
      beta: c.beta,
    });

  // (1) The real step on CE + matching, the meta-outputs constants.
  const perms = new Map<string, readonly number[]>();
  const readInput = weightReader(g, (n) => n);
  const real = emit.call(target, g, {
    input: x,
    weight: (n, shape, perm) => {
      if (perm) perms.set(n, perm);
      return readInput(n, shape, perm);
    },
    training: train,
    prefix: 'real/',
    taps: tapNames,
  });
  const id = (n: string) => n;
  const realLoss = g.op('Add', [
    emitHeadCrossEntropy(g, real.features, state.head, id, y),
    matching(real.taps, id, frozen),
  ]);
  const trainable = state.trainable;
  const grads = addGradients(g, realLoss, trainable);
  appendOptimizer(
    g,
    trainable.map((n) => ({ name: n, grad: grads[n] as string, lrScale: 1 })),
    graphOptimizer(c),
  );
  for (const [n, v] of Object.entries(train ? real.statistics : {}))
    g.output(g.op('Identity', [v], {}, next(n)));
  const outputs = [realLoss];

  // (2) The look-ahead from the weights after (1), conv weights kept in ONNX's
  // layout throughout (the updates are elementwise: one Transpose each, not one per pass).
  let metaLoss = '';
  let metaGradient: Record<string, string> = {};
  if (metaNames.length > 0) {
    const toEmitLayout = (n: string, v: string) => {
      const perm = perms.get(n);
      return perm ? g.op('Transpose', [v], { perm: attr.ints(perm) }) : v;
    };
    const cur: Record<string, string> = {};
    const vel: Record<string, string> = {};
    for (const n of trainable) {
      cur[n] = toEmitLayout(n, next(n));
      if (momentum > 0) vel[n] = toEmitLayout(n, next(`v:${n}`));
    }
    const names = lookaheadParamNames(target, state.head, pairs);
    const pass = (prefix: string, q: Record<string, string>, taps: string[]) =>
      emit.call(target, g, {
        input: x,
        // Running statistics are inputs the look-ahead never updates (training mode reads batch moments).
        weight: (n) => q[n] ?? n,
        training: train,
        prefix,
        taps,
      });
    const lookaheadStep = (
      step: string,
      differentiated: readonly string[],
      loss: (q: Record<string, string>) => string,
    ) => {
      const q = { ...cur };
      // First order: the weights are constants inside the look-ahead's gradient.
      if (c.metaGradient === 'first-order')
        for (const n of differentiated) q[n] = g.stopGradient(cur[n] as string);
      const inner = addGradients(
        g,
        loss(q),
        differentiated.map((n) => q[n] as string),
        { prefix: `${step}:grad:` },
      );
      const reached = new Set(differentiated);
      for (const n of trainable) {
        const u = sgdStepValues(
          g,
          {
            param: cur[n] as string,
            ...(reached.has(n) ? { grad: inner[q[n] as string] as string } : {}),
            ...(vel[n] ? { velocity: vel[n] } : {}),
            lr,
          },
          sgd,
        );
        cur[n] = u.param;
        if (u.velocity) vel[n] = u.velocity;
      }
    };
    for (let t = 0; t < c.lookaheadSteps; t++)
      lookaheadStep(`lookahead${t}`, names.matching, (q) =>
        matching(pass(`lookahead${t}/`, q, tapNames).taps, (n) => q[n] ?? n, meta),
      );
    const ce = (prefix: string, q: Record<string, string>) =>
      emitHeadCrossEntropy(g, pass(prefix, q, []).features, state.head, (n) => q[n] ?? n, y);
    lookaheadStep('lookaheadCe', names.crossEntropy, (q) => ce('lookaheadCe/', q));
    metaLoss = ce('meta/', cur);
    metaGradient = addGradients(g, metaLoss, metaNames, { prefix: 'meta:grad:' });
    appendOptimizer(
      g,
      metaNames.map((n) => ({ name: n, grad: metaGradient[n] as string, lrScale: 1 })),
      { kind: 'adam', weightDecay: c.metaWeightDecay },
      { lr: 'meta:lr' },
    );
    outputs.push(metaLoss, ...Object.values(metaGradient));
  }
  const pairOutputs = pairs.flatMap((p) => [
    frozen.weights?.[p.index] ?? '',
    frozen.lambdas?.[p.index] ?? '',
  ]);
  for (const o of [...outputs, ...pairOutputs]) if (o) g.output(o);
  pruneDeadNodes(g);
  for (const n of Object.keys(values))
    if (!g.outputNames().includes(next(n)))
      throw new Error(`l2t-ww engine: internal error, "${n}" has no update`);
  const session = await createSession(g.toBytes({ opset: 17 }), { intraOpNumThreads: threads });

  const snapshots = paramSnapshots(() =>
    Object.fromEntries(Object.keys(state.params).map((n) => [n, values[n] as HostTensor])),
  );
  let steps = 0;
  let metaSteps = 0;
  const run = (batch: Batch, step: number, override: Record<string, HostTensor> = {}) => {
    const feeds: Record<string, HostTensor> = {
      ...values,
      ...override,
      x: { data: batch.xData, dims: [batch.n, ...target.inputShape] },
      y: { data: int64Labels(batch.yData), dims: [batch.n] },
      lr: { data: Float32Array.of(c.lr * trainedModelLrFactor(state, step)), dims: [] },
    };
    for (const n of metaNames) feeds[`constant:${n}`] = values[n] as HostTensor;
    if (metaNames.length > 0) {
      const { c1, c2 } = adamCorrections({ kind: 'adam' }, metaSteps + 1);
      feeds['meta:lr'] = { data: Float32Array.of(c.metaLr), dims: [] };
      feeds['adam:c1'] = { data: Float32Array.of(c1), dims: [] };
      feeds['adam:c2'] = { data: Float32Array.of(c2), dims: [] };
    }
    return runSession(session, feeds);
  };
  const engine: L2tWwEngine = {
    last: { metaLoss: Number.NaN, lambda: [], entropy: [] },
    async probe(batch, step, meta = {}) {
      const override: Record<string, HostTensor> = {};
      for (const [n, data] of Object.entries(meta)) {
        const v = values[n];
        if (!v || !metaNames.includes(n))
          throw new Error(`probe: "${n}" is not a meta-parameter (${metaNames.join(', ')})`);
        override[n] = { data, dims: v.dims };
      }
      const out = await run(batch, step, override);
      return {
        metaLoss: metaLoss ? ((out[metaLoss] as HostTensor).data[0] as number) : Number.NaN,
        metaGradient: Object.fromEntries(
          Object.entries(metaGradient).map(([n, v]) => [
            n,
            Float32Array.from((out[v] as HostTensor).data as Float32Array),
          ]),
        ),
      };
    },
    async step(batch: Batch, step: number) {
      const out = await run(batch, step);
      const loss = (out[realLoss] as HostTensor).data[0] as number;
      if (!Number.isFinite(loss)) throw new DivergenceError(step, loss);
      const value = metaLoss ? ((out[metaLoss] as HostTensor).data[0] as number) : Number.NaN;
      const metaFinite = metaNames.every((n) =>
        (out[next(n)] as HostTensor).data.every((v) => Number.isFinite(v as number)),
      );
      if (metaLoss && (!Number.isFinite(value) || !metaFinite))
        throw new Error(
          `method "${ID}": the meta-gradient is not finite at step ${step} (meta-objective ${value}): training diverged`,
        );
      for (const n of Object.keys(values)) values[n] = out[next(n)] as HostTensor;
      steps++;
      if (metaNames.length > 0) metaSteps++;
      engine.last = { metaLoss: value, ...pairStatistics(pairs, out, pairOutputs) };
      return loss;
    },
    params: () => snapshots.get(steps),
    optimizerSlots: () => copies(values, Object.keys(state.optState.slots)),
    metaState: () =>
      copies(
        values,
        Object.keys(values).filter((n) => n in state.meta || n.slice(2) in state.meta),
      ),
    async dispose() {
      snapshots.dispose();
      await session.release();
    },
  };
  return engine;
}

function copies(values: Record<string, HostTensor>, names: readonly string[]) {
  return Object.fromEntries(
    names.map((n) => [n, Float32Array.from((values[n] as HostTensor).data as Float32Array)]),
  );
}

/** Mean λ and channel-weight entropy ÷ log C per pair (1 = uniform), as `pairStatistics` on tfjs. */
function pairStatistics(
  pairs: readonly TapPair[],
  out: Record<string, HostTensor>,
  names: readonly string[],
): { lambda: number[]; entropy: number[] } {
  const lambda: number[] = [];
  const entropy: number[] = [];
  for (const p of pairs) {
    const lam = out[names[2 * p.index + 1] as string];
    const w = out[names[2 * p.index] as string];
    lambda.push(lam ? mean(lam.data as Float32Array) : 1);
    if (!w) {
      entropy.push(1);
      continue;
    }
    const [n, k] = w.dims as [number, number];
    const d = w.data as Float32Array;
    let h = 0;
    for (let i = 0; i < n * k; i++) h -= (d[i] as number) * Math.log((d[i] as number) + 1e-12);
    entropy.push(h / n / Math.log(k));
  }
  return { lambda, entropy };
}

const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / Math.max(1, a.length);
