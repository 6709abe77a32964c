import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params, valueAndGrads } from '@transferlab/core';
import { type BackboneSpec, cnnSpec, createBackbone } from '@transferlab/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchFromTensors } from '../shared/batch.js';
import type { Batch } from '../types.js';
import { type L2tWwState, l2tWw } from './index.js';
import {
  type LookaheadProblem,
  lookaheadLoss,
  type MetaGradientMode,
  metaGradient,
} from './lookahead.js';
import { sourceInputs } from './step.js';
import { KINKED, SMOOTH, SMOOTH_BN } from './test-targets.js';

/**
 * The key test: the exact meta-gradient (CE at the look-ahead weights,
 * differentiated through T matching steps and one CE step of SGD with
 * momentum and weight decay) against central finite differences of the same
 * function, on a tiny source CNN → a tiny target CNN of another width, with
 * pairs that need resizing. Meta-parameters are randomised so that the
 * channel weights are not uniform.
 */

const source = createBackbone(cnnSpec([6, 6, 1], [2, 3], 4));
const N = 6;

/**
 * Targets of another architecture than the source, without dense layers (a
 * tiny dense ReLU layer dies easily, which makes the meta-gradient vanish).
 * SMOOTH has no kinks (linear convs, one strided; global average pooling;
 * a softplus where-net), so finite differences can be taken with a large step and extrapolated;
 * KINKED has ReLUs and max-pooling, whose kinks limit the step (a step that
 * crosses one changes the function's branch) and hence the accuracy.
 */
const CLASSES = 3;

function batch(seed: number): Batch {
  const rng = createRng(seed);
  return batchFromTensors(
    tf.tensor4d(rng.normalArray(N * 36), [N, 6, 6, 1]),
    tf.tensor1d(
      Int32Array.from({ length: N }, (_, i) => i % CLASSES),
      'int32',
    ),
  );
}

interface Fixture {
  state: L2tWwState;
  problem: LookaheadProblem;
  meta: Params;
  dispose(): Promise<void>;
}

/** A state after two real steps (so momentum buffers are non-zero), and the look-ahead problem of a third batch. */
async function fixture(
  mode: MetaGradientMode,
  lr: number,
  target: BackboneSpec = KINKED,
): Promise<Fixture> {
  const pretrained = source.init(createRng(7));
  const config = l2tWw.validate({
    targetBackbone: 'spec',
    targetSpec: target,
    lr,
    beta: 1,
    metaGradient: mode,
    // Smooth targets: softplus; else relu6, with λ kept in its linear range.
    whereActivation: target === KINKED ? 'relu6' : 'softplus',
    whereBiasInit: 2,
  });
  let state = await l2tWw.init({
    config,
    backbone: source,
    numClasses: CLASSES,
    pretrained,
    rng: createRng(3),
    totalSteps: 10,
  });
  for (let step = 0; step < 2; step++) {
    const b = batch(10 + step);
    state = (await l2tWw.trainStep(state, { target: b, step })).state;
    tf.dispose([b.x, b.y]);
  }
  tf.dispose(Object.values(pretrained));
  const rng = createRng(11);
  const meta = Object.fromEntries(
    Object.entries(state.meta).map(([n, t]) => [
      n,
      tf.add(t, tf.tensor(rng.normalArray(t.size, 0.5), t.shape)),
    ]),
  );
  const b = batch(20);
  const src = sourceInputs(state.source, state.pairs, b.x);
  const problem: LookaheadProblem = {
    target: state.backbone,
    head: state.head,
    pairs: state.pairs,
    optimizer: state.optimizer,
    params: state.params,
    optState: state.optState,
    lrFactor: 1,
    x: b.x,
    y: b.y,
    sourceMaps: src.sourceMaps,
    pooled: src.pooled,
    beta: config.beta,
    steps: config.lookaheadSteps,
    activation: config.whereActivation,
    mode,
  };
  return {
    state,
    problem,
    meta,
    async dispose() {
      tf.dispose([
        b.x,
        b.y,
        ...src.sourceMaps,
        ...Object.values(src.pooled),
        ...Object.values(meta),
      ]);
      await l2tWw.dispose(state);
    },
  };
}

function randomDirection(meta: Params, seed: number, filter: (n: string) => boolean): Params {
  const rng = createRng(seed);
  return Object.fromEntries(
    Object.entries(meta).map(([n, t]) => [
      n,
      filter(n) ? tf.tensor(rng.normalArray(t.size), t.shape) : tf.zerosLike(t),
    ]),
  );
}

function dot(a: Params, b: Params): number {
  return tf.tidy(() => {
    let s = tf.scalar(0);
    for (const [n, t] of Object.entries(a)) s = tf.add(s, tf.sum(tf.mul(t, b[n] as tf.Tensor)));
    return s.dataSync()[0] as number;
  });
}

function lossAt(f: Fixture, dir: Params, eps: number): number {
  return tf.tidy(() => {
    const shifted = Object.fromEntries(
      Object.entries(f.meta).map(([n, t]) => [n, tf.add(t, tf.mul(dir[n] as tf.Tensor, eps))]),
    );
    return lookaheadLoss(shifted, f.problem).dataSync()[0] as number;
  });
}

/** Central differences; `richardson` extrapolates two steps (error O(ε⁴) for a smooth function). */
function finiteDifference(f: Fixture, dir: Params, eps: number, richardson: boolean): number {
  const d = (h: number) => (lossAt(f, dir, h) - lossAt(f, dir, -h)) / (2 * h);
  return richardson ? (4 * d(eps / 2) - d(eps)) / 3 : d(eps);
}

const results: string[] = [];

describe.each(['wasm', 'cpu'] as const)('L2T-ww meta-gradient on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend });
  });

  it.each([
    ['smooth', SMOOTH, 1e-1, true, 1e-3],
    ['smooth, batch-normalised', SMOOTH_BN, 1e-1, true, 1e-3],
    ['ReLU + max-pool', KINKED, 1e-3, false, 2e-2],
  ] as const)(
    'exact mode matches finite differences (%s target)',
    async (label, target, eps, richardson, tol) => {
      const f = await fixture('exact', 0.05, target);
      const grads = tf.tidy(() => {
        const { grads } = metaGradient(f.meta, f.problem);
        return Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, tf.keep(g)]));
      });
      try {
        const groups: [string, (n: string) => boolean][] = [
          ['what', (n) => n.startsWith('what.')],
          ['where', (n) => n.startsWith('where.')],
          ['all', () => true],
        ];
        for (const [group, filter] of groups) {
          const dir = randomDirection(f.meta, group.length, filter);
          const analytic = dot(grads, dir);
          const fd = finiteDifference(f, dir, eps, richardson);
          tf.dispose(Object.values(dir));
          const rel = Math.abs(analytic - fd) / Math.abs(fd);
          results.push(
            `${backend} exact, ${label} target, ${group}: analytic ${analytic.toExponential(6)}, FD ${fd.toExponential(6)}, rel. error ${rel.toExponential(2)}`,
          );
          expect(Math.abs(fd), `${group}: the meta-gradient must not vanish`).toBeGreaterThan(1e-3);
          expect(rel, group).toBeLessThan(tol);
        }
      } finally {
        tf.dispose(Object.values(grads));
        await f.dispose();
      }
    },
  );

  it('first-order differs from exact, but the two agree as the target lr shrinks', async () => {
    const gap = async (lr: number) => {
      const exact = await fixture('exact', lr);
      const first = await fixture('first-order', lr);
      try {
        return tf.tidy(() => {
          const ge = metaGradient(exact.meta, exact.problem).grads;
          const gf = metaGradient(first.meta, first.problem).grads;
          let diff = 0;
          let norm = 0;
          for (const [n, g] of Object.entries(ge)) {
            diff += tf.sum(tf.square(tf.sub(g, gf[n] as tf.Tensor))).dataSync()[0] as number;
            norm += tf.sum(tf.square(g)).dataSync()[0] as number;
          }
          return Math.sqrt(diff / norm);
        });
      } finally {
        await exact.dispose();
        await first.dispose();
      }
    };
    const big = await gap(0.05);
    const small = await gap(0.0005);
    results.push(
      `${backend} first-order vs exact, relative difference: lr 0.05 → ${big.toExponential(2)}, lr 0.0005 → ${small.toExponential(2)}`,
    );
    expect(big).toBeGreaterThan(1e-2);
    expect(small).toBeLessThan(big / 20);
  });

  it('the plain tfjs conv and max-pool gradients are not differentiable (why safe-ops exists)', async () => {
    // If a tfjs release registers these gradients, safe-ops.ts could go.
    const x = tf.tensor4d(createRng(1).normalArray(2 * 4 * 4), [2, 4, 4, 1]);
    const w = tf.tensor4d(createRng(2).normalArray(9 * 2), [3, 3, 1, 2]);
    const secondOrder = (f: (w: tf.Tensor4D) => tf.Tensor) => () =>
      tf.tidy(() =>
        valueAndGrads(
          (p) => {
            const g = valueAndGrads((q) => tf.sum(tf.square(f(q.w as tf.Tensor4D))), p).grads;
            return tf.sum(tf.square(g.w as tf.Tensor));
          },
          { w },
        ),
      );
    expect(secondOrder((q) => tf.conv2d(x, q, 1, 'same'))).toThrow(/Conv2DBackpropFilter/);
    expect(secondOrder((q) => tf.maxPool(tf.conv2d(x, q, 1, 'same'), 2, 2, 'valid'))).toThrow(
      /Conv2DBackpropFilter|MaxPoolGrad/,
    );
    tf.dispose([x, w]);
  });
});

afterAll(() => {
  console.log(`L2T-ww meta-gradient checks:\n  ${results.join('\n  ')}`);
});
