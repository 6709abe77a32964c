/**
 * L2T-ww on the onnxruntime engine (engine.ts) against tfjs (step.ts,
 * lookahead.ts) and against finite differences of its own meta-objective;
 * and the look-ahead itself against an independent hand computation.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  createRng,
  initBackend,
  type Params,
  softmaxCrossEntropy,
  valueAndGrads,
} from '@transferlab/core';
import { liveSessionCount } from '@transferlab/graph';
import { type BackboneSpec, cnnSpec, createBackbone, resnetSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeBatch } from '../shared/batch.js';
import { matchingLoss } from '../shared/feature-transfer.js';
import { maxRelDifference, randomBatch } from '../shared/testing.js';
import { trainedModelLrFactor } from '../shared/trained-model.js';
import type { Batch, Engine } from '../types.js';
import type { L2tWwEngine } from './engine.js';
import { type L2tWwState, l2tWw, sourceInputs } from './index.js';
import { metaOutputs } from './meta-nets.js';
import { KINKED, SMOOTH_BN } from './test-targets.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const CLASSES = 3;
const cnnSource = cnnSpec([6, 6, 1], [2, 3], 4);
const resnetBnSource = resnetSpec([6, 6, 1], [2, 3], 1, { batchNorm: true });

async function init(
  engine: Engine,
  sourceSpec: BackboneSpec,
  options: Record<string, unknown>,
): Promise<{ state: L2tWwState; free: () => void }> {
  const source = createBackbone(sourceSpec);
  const pretrained = source.init(createRng(7));
  const state = await l2tWw.init({
    config: l2tWw.validate({ lr: 0.05, beta: 0.7, metaLr: 0.01, ...options }),
    engine,
    backbone: source,
    numClasses: CLASSES,
    pretrained,
    rng: createRng(3),
    totalSteps: 10,
  });
  return { state, free: () => tf.dispose(Object.values(pretrained)) };
}

const batchOf = (seed: number, n = 6): Batch => randomBatch([6, 6, 1], n, seed, CLASSES);

/** Target weights, SGD slots and meta-networks (with Adam's slots) after `steps` bilevel steps. */
async function after(
  engine: Engine,
  sourceSpec: BackboneSpec,
  options: Record<string, unknown>,
  steps: number,
): Promise<Record<string, Float32Array>> {
  const { state: initial, free } = await init(engine, sourceSpec, options);
  let state = initial;
  for (let step = 0; step < steps; step++) {
    const b = batchOf(20 + step, step === steps - 1 ? 5 : 6);
    state = (await l2tWw.trainStep(state, { target: b, step })).state;
    disposeBatch(b);
  }
  const copy = (p: Params, prefix = '') =>
    Object.fromEntries(
      Object.entries(p).map(([k, v]) => [`${prefix}${k}`, Float32Array.from(v.dataSync())]),
    );
  const out: Record<string, Float32Array> = copy(await l2tWw.predictParams(state));
  if (state.engine) {
    const e = state.engine as L2tWwEngine;
    for (const [k, v] of Object.entries(e.optimizerSlots())) out[`slot ${k}`] = v;
    for (const [k, v] of Object.entries(e.metaState())) out[`meta ${k}`] = v;
  } else {
    Object.assign(out, copy(state.optState.slots, 'slot '), copy(state.meta, 'meta '));
    Object.assign(out, copy(state.metaState.slots, 'meta '));
  }
  out['λ, entropy'] = Float32Array.from(
    state.stats.flatMap((s) => [s.lambdaSum, s.entropySum, state.lastMetaLoss]),
  );
  await l2tWw.dispose(state);
  free();
  return out;
}

describe('l2t-ww on the onnxruntime engine', () => {
  const cases: [string, BackboneSpec, Record<string, unknown>][] = [
    [
      'CNN source → ReLU/max-pool target, exact, T = 2',
      cnnSource,
      { targetBackbone: 'spec', targetSpec: KINKED },
    ],
    [
      'T = 3, first-order',
      cnnSource,
      {
        targetBackbone: 'spec',
        targetSpec: KINKED,
        lookaheadSteps: 3,
        metaGradient: 'first-order',
      },
    ],
    [
      'batch-normalised ResNet source → batch-normalised target',
      resnetBnSource,
      { targetBackbone: 'spec', targetSpec: SMOOTH_BN, whereActivation: 'softplus' },
    ],
    ['same architecture, pairs one-to-one', cnnSource, { pairs: 'one-to-one' }],
  ];
  for (const [name, sourceSpec, options] of cases) {
    it(`${name}: same weights, slots and meta-networks as tfjs after 3 bilevel steps`, async () => {
      const sessions = liveSessionCount();
      const ref = await after('tfjs', sourceSpec, options, 3);
      const got = await after('onnxruntime', sourceSpec, options, 3);
      expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
      const { worst, at } = maxRelDifference(got, ref);
      expect(worst, `worst at ${at}`).toBeLessThan(1e-3);
      expect(liveSessionCount()).toBe(sessions);
    });
  }

  it('exact meta-gradient = tfjs meta-gradient and central finite differences', async () => {
    const options = {
      targetBackbone: 'spec',
      targetSpec: SMOOTH_BN,
      whereActivation: 'softplus',
      whereBiasInit: 2,
    };
    const { state: tfjsState, free: freeTfjs } = await init('tfjs', cnnSource, options);
    const { state: engineState, free } = await init('onnxruntime', cnnSource, options);
    const engine = engineState.engine as L2tWwEngine;
    // Non-uniform channel weights: the what-nets start at zero.
    const rng = createRng(11);
    const meta: Record<string, Float32Array> = {};
    for (const [n, t] of Object.entries(tfjsState.meta))
      meta[n] = Float32Array.from(rng.normalArray(t.size), (v) => 0.5 * v);
    const b = batchOf(40);
    // At the initial meta-networks the engine's objective is tfjs's (its step reports it before the update).
    const initial = await engine.probe(b, 0);
    const stepped = await l2tWw.trainStep(tfjsState, { target: b, step: 0 });
    expect(Math.abs(stepped.state.lastMetaLoss - initial.metaLoss)).toBeLessThan(
      1e-5 * Math.abs(initial.metaLoss) + 1e-6,
    );
    // Finite differences at non-uniform meta-networks, θ after the real step held fixed.
    const probed = await engine.probe(b, 0, meta);
    // Central differences of the engine's own objective, per coordinate of each meta-net.
    const eps = 1e-2;
    for (const [n, d] of Object.entries(meta)) {
      for (const i of [0, Math.floor(d.length / 2), d.length - 1]) {
        const plus = Float32Array.from(d);
        const minus = Float32Array.from(d);
        plus[i] = (plus[i] as number) + eps;
        minus[i] = (minus[i] as number) - eps;
        const fd =
          ((await engine.probe(b, 0, { ...meta, [n]: plus })).metaLoss -
            (await engine.probe(b, 0, { ...meta, [n]: minus })).metaLoss) /
          (2 * eps);
        const got = probed.metaGradient[n]?.[i] as number;
        expect(Math.abs(got - fd), `${n}[${i}]: ${got} vs ${fd}`).toBeLessThan(
          0.02 * Math.abs(fd) + 2e-5,
        );
      }
    }
    disposeBatch(b);
    await l2tWw.dispose(stepped.state);
    await l2tWw.dispose(engineState);
    freeTfjs();
    free();
  });

  it('the look-ahead is T matching steps with β, then one CE step (against a hand computation)', async () => {
    const options = { targetBackbone: 'spec', targetSpec: KINKED, lookaheadSteps: 3, lr: 0.2 };
    const { state, free } = await init('tfjs', cnnSource, options);
    const { state: engineState, free: freeEngine } = await init('onnxruntime', cnnSource, options);
    const metaBefore = Object.fromEntries(
      Object.entries(state.meta).map(([n, t]) => [n, t.clone()]),
    );
    const b = batchOf(50);
    const engineValue = (await (engineState.engine as L2tWwEngine).probe(b, 0)).metaLoss;
    const stepped = (await l2tWw.trainStep(state, { target: b, step: 0 })).state;
    // After the step: θ and the velocities are the real step's, the look-ahead's start.
    const hand = (T: number, beta: number) => handMetaObjective(stepped, metaBefore, b, T, beta);
    const expected = hand(3, 0.7);
    const tolerance = 1e-5 * Math.abs(expected);
    expect(Math.abs(stepped.lastMetaLoss - expected)).toBeLessThan(tolerance);
    expect(Math.abs(engineValue - expected)).toBeLessThan(tolerance);
    // The check can tell: one look-ahead step fewer, or β ignored, moves the objective far more.
    expect(Math.abs(hand(2, 0.7) - expected)).toBeGreaterThan(100 * tolerance);
    expect(Math.abs(hand(3, 1) - expected)).toBeGreaterThan(100 * tolerance);
    disposeBatch(b);
    tf.dispose(Object.values(metaBefore));
    await l2tWw.dispose(stepped);
    await l2tWw.dispose(engineState);
    free();
    freeEngine();
  });
});

/**
 * The meta-objective written out for a target without normalisation: from
 * θ, v of `state`, T steps of SGD (v ← μv + ∇ + wd·θ; θ ← θ − lr·v) on
 * β-weighted matching (gradients for the backbone and connectors, zero for
 * the head), one on CE (backbone and head), then CE at the result.
 */
function handMetaObjective(
  state: L2tWwState,
  meta: Params,
  b: Batch,
  T: number,
  beta: number,
): number {
  return tf.tidy(() => {
    const c = state.config;
    const backbone = state.backbone;
    const lr = c.lr * trainedModelLrFactor(state, 0);
    const { sourceMaps, pooled } = sourceInputs(state.source, state.pairs, b.x);
    const { weights, lambdas } = metaOutputs(meta, state.pairs, pooled, c.whereActivation);
    const backboneNames = Object.keys(backbone.paramShapes);
    const connectors = Object.keys(state.params).filter((n) => n.startsWith('connector.'));
    let theta: Params = { ...state.params };
    const velocity: Record<string, tf.Tensor> = {};
    for (const n of Object.keys(theta)) velocity[n] = state.optState.slots[`v:${n}`] as tf.Tensor;
    const sgd = (grads: Params) => {
      const next: Record<string, tf.Tensor> = {};
      for (const [n, p] of Object.entries(theta)) {
        const d = tf.add(grads[n] ?? tf.zerosLike(p), tf.mul(p, c.weightDecay));
        velocity[n] = tf.add(tf.mul(velocity[n] as tf.Tensor, c.momentum), d);
        next[n] = tf.sub(p, tf.mul(velocity[n] as tf.Tensor, lr));
      }
      theta = next;
    };
    const taps = [...new Set(state.pairs.map((p) => p.target))];
    const ce = (p: Params) =>
      softmaxCrossEntropy(state.head.apply(p, backbone.apply(p, b.x).features), b.y);
    for (let t = 0; t < T; t++) {
      const match = (p: Params) =>
        matchingLoss({
          pairs: state.pairs,
          params: p,
          targetTaps: backbone.apply(p, b.x, { taps }).taps,
          sourceMaps,
          weights,
          lambdas,
          beta,
        });
      sgd(valueAndGrads(match, theta, [...backboneNames, ...connectors]).grads);
    }
    sgd(valueAndGrads(ce, theta, [...backboneNames, ...state.head.paramNames]).grads);
    return ce(theta).dataSync()[0] as number;
  });
}
