/**
 * The compiled training step (autodiff + optimizer fragment + session) on
 * softmax regression, against the same steps computed in float64 by hand:
 * ∇W = Xᵀ(softmax(XW + b) − onehot(y))/N, then SGD with momentum and
 * coupled decay, Adam and AdamW exactly as their formulas say.
 */
import { describe, expect, it } from 'vitest';
import { OnnxGraphBuilder } from './builder.js';
import { randomFloats } from './grad-check.js';
import { int64Labels, LABEL_TYPE, softmaxCrossEntropy } from './losses.js';
import type { GraphOptimizer } from './optimizers.js';
import { TrainingSession } from './training.js';

const N = 6;
const D = 4;
const K = 3;
const x = randomFloats(N * D, 3);
const y = Int32Array.from({ length: N }, (_, i) => i % K);

function referenceSteps(opt: GraphOptimizer, lrs: number[], lrScaleW: number) {
  const W = Float64Array.from(randomFloats(D * K, 5, 0.5));
  const b = new Float64Array(K);
  const slots = {
    m: [new Float64Array(D * K), new Float64Array(K)],
    v: [new Float64Array(D * K), new Float64Array(K)],
  };
  const losses: number[] = [];
  lrs.forEach((lr, t) => {
    const gW = new Float64Array(D * K);
    const gb = new Float64Array(K);
    let loss = 0;
    for (let i = 0; i < N; i++) {
      const z = Array.from({ length: K }, (_, k) => {
        let s = b[k] as number;
        for (let d = 0; d < D; d++) s += (x[i * D + d] as number) * (W[d * K + k] as number);
        return s;
      });
      const mx = Math.max(...z);
      const e = z.map((v) => Math.exp(v - mx));
      const sum = e.reduce((a, c) => a + c, 0);
      loss -= Math.log((e[y[i] as number] as number) / sum) / N;
      for (let k = 0; k < K; k++) {
        const r = ((e[k] as number) / sum - (k === y[i] ? 1 : 0)) / N;
        gb[k] = (gb[k] as number) + r;
        for (let d = 0; d < D; d++)
          gW[d * K + k] = (gW[d * K + k] as number) + (x[i * D + d] as number) * r;
      }
    }
    losses.push(loss);
    const wd = opt.weightDecay ?? 0;
    [
      [W, gW, lrScaleW, 0],
      [b, gb, 1, 1],
    ].forEach(([p0, g0, scale, slot]) => {
      const p = p0 as Float64Array;
      const grad = g0 as Float64Array;
      const m = slots.m[slot as number] as Float64Array;
      const v = slots.v[slot as number] as Float64Array;
      const stepLr = lr * (scale as number);
      for (let j = 0; j < p.length; j++) {
        const pj = p[j] as number;
        if (opt.kind === 'sgd') {
          const gj = (grad[j] as number) + wd * pj;
          const mu = opt.momentum ?? 0;
          v[j] = mu * (v[j] as number) + gj;
          p[j] = pj - stepLr * (v[j] as number);
        } else {
          const gj = (grad[j] as number) + (opt.decoupled ? 0 : wd * pj);
          const b1 = opt.beta1 ?? 0.9;
          const b2 = opt.beta2 ?? 0.999;
          m[j] = b1 * (m[j] as number) + (1 - b1) * gj;
          v[j] = b2 * (v[j] as number) + (1 - b2) * gj * gj;
          const dir =
            (m[j] as number) /
            (1 - b1 ** (t + 1)) /
            (Math.sqrt((v[j] as number) / (1 - b2 ** (t + 1))) + (opt.eps ?? 1e-8));
          p[j] = pj - stepLr * dir - (opt.decoupled ? stepLr * wd * pj : 0);
        }
      }
    });
  });
  return { W, b, losses };
}

async function engineSteps(opt: GraphOptimizer, lrs: number[], lrScaleW: number) {
  const g = new OnnxGraphBuilder('softmax-regression');
  g.input('x', ['N', D]);
  g.input('y', ['N'], LABEL_TYPE);
  g.input('W', [D, K]);
  g.input('b', [K]);
  const loss = softmaxCrossEntropy(g, g.op('Gemm', ['x', 'W', 'b']), 'y');
  const session = await TrainingSession.create({
    graph: g,
    loss,
    params: {
      W: { data: randomFloats(D * K, 5, 0.5), dims: [D, K] },
      b: { data: new Float32Array(K), dims: [K] },
    },
    trainable: [
      { name: 'W', lrScale: lrScaleW },
      { name: 'b', lrScale: 1 },
    ],
    optimizer: opt,
  });
  const losses: number[] = [];
  for (const lr of lrs)
    losses.push(
      (
        await session.step(
          { x: { data: x, dims: [N, D] }, y: { data: int64Labels(y), dims: [N] } },
          lr,
        )
      ).loss,
    );
  const p = session.params();
  const out = { W: p.W?.data as Float32Array, b: p.b?.data as Float32Array, losses };
  await session.dispose();
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0);

describe('TrainingSession: one compiled step = forward + autodiff + optimizer', () => {
  const lrs = [0.5, 0.3, 0.2, 0.1];
  const cases: [string, GraphOptimizer][] = [
    ['SGD', { kind: 'sgd' }],
    ['SGD momentum + weight decay', { kind: 'sgd', momentum: 0.9, weightDecay: 0.01 }],
    ['Adam + L2', { kind: 'adam', weightDecay: 0.01 }],
    ['AdamW', { kind: 'adam', weightDecay: 0.1, decoupled: true }],
  ];
  for (const [name, opt] of cases) {
    it(`${name}: weights and losses equal a float64 reference`, async () => {
      const ref = referenceSteps(opt, lrs, 0.5);
      const got = await engineSteps(opt, lrs, 0.5);
      expect(maxDiff(got.W, ref.W)).toBeLessThan(1e-5);
      expect(maxDiff(got.b, ref.b)).toBeLessThan(1e-5);
      expect(maxDiff(got.losses, ref.losses)).toBeLessThan(1e-5);
      // The weights moved: the test would notice a step that does nothing.
      expect(maxDiff(got.W, randomFloats(D * K, 5, 0.5))).toBeGreaterThan(1e-2);
    });
  }

  it('a frozen parameter (lrScale 0) is fed but never updated; a missing one is named', async () => {
    const got = await engineSteps({ kind: 'adam' }, lrs, 0);
    expect(maxDiff(got.W, randomFloats(D * K, 5, 0.5))).toBe(0);
    const g = new OnnxGraphBuilder('bad');
    g.input('W', [2]);
    await expect(
      TrainingSession.create({
        graph: g,
        loss: g.op('ReduceSum', ['W'], { keepdims: { type: 'int', value: 0 } }),
        params: { W: { data: new Float32Array(2), dims: [2] } },
        trainable: [{ name: 'V', lrScale: 1 }],
        optimizer: { kind: 'sgd' },
      }),
    ).rejects.toThrow(/trainable "V" is not a parameter \(have: W\)/);
  });
});
