import * as tf from '@tensorflow/tfjs-core';
import {
  choleskyFactor,
  choleskySolveFactored,
  createRng,
  initBackend,
  type Params,
} from '@transferlab/core';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMethodRegistry } from '../registry.js';
import { batchFromTensors } from '../shared/batch.js';
import { measureTensorGrowthAsync } from '../shared/testing.js';
import type { Batch } from '../types.js';
import { fitAndPredict, type HeadFitOptions, regressionTargets } from './head-fit.js';
import { lossTerms, type MerlinState, merlin, prepareBatch } from './index.js';
import { stratifiedSplit } from './split.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const C = 3;
const backbone = createBackbone(mlpSpec([8], [16, 8]));

/** Class-dependent means: a learnable 3-class problem. */
function batch(seed: number, n = 24, classes = C): Batch {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, () => rng.int(classes));
  const x = Float32Array.from(
    { length: n * 8 },
    (_, i) => rng.normal() + (i % 8 === (y[Math.floor(i / 8)] as number) ? 2 : 0),
  );
  return batchFromTensors(tf.tensor2d(x, [n, 8]), tf.tensor1d(y, 'int32'));
}

const disposeBatch = (b: Batch | undefined) => {
  if (b) tf.dispose([b.x, b.y]);
};

async function start(options: Record<string, unknown> = {}, seed = 0) {
  const pretrained = backbone.init(createRng(100));
  const state = await merlin.init({
    config: merlin.validate(options),
    backbone,
    numClasses: C,
    pretrained,
    sourceNumClasses: 4,
    rng: createRng(seed),
    totalSteps: 50,
  });
  return { state, pretrained };
}

const values = (p: Params, name: string) => Array.from((p[name] as tf.Tensor).dataSync());

async function train(
  options: Record<string, unknown>,
  seed: number,
  steps: number,
  withSource = false,
) {
  let { state, pretrained } = await start(options, seed);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const target = batch(1000 + step);
    const source = withSource ? batch(2000 + step, 16, 4) : undefined;
    try {
      const out = await merlin.trainStep(state, { target, ...(source ? { source } : {}), step });
      state = out.state;
      losses.push(out.loss);
    } finally {
      disposeBatch(target);
      disposeBatch(source);
    }
  }
  const params = Object.fromEntries(
    Object.keys(state.trainer.params()).map((n) => [n, values(state.trainer.params(), n)]),
  );
  await merlin.dispose(state);
  for (const t of Object.values(pretrained)) t.dispose();
  return { losses, params };
}

/** The meta loss (val-half CE of the closed-form head) of `state`, averaged over five fixed held-out batches. */
function heldOutMetaLoss(state: MerlinState): number {
  let sum = 0;
  for (const seed of [995, 996, 997, 998, 999]) {
    const held = batch(seed, 60);
    const prepared = prepareBatch(state, held, 12345);
    try {
      sum += tf.tidy(
        () => lossTerms(state, state.trainer.params(), prepared).meta?.dataSync()[0] as number,
      );
    } finally {
      prepared.dispose();
      disposeBatch(held);
    }
  }
  return sum / 5;
}

describe('stratifiedSplit', () => {
  it('splits every class in proportion, covers each row once, and is deterministic', async () => {
    const labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 0, 1];
    const a = stratifiedSplit(labels, 0.5, createRng(3));
    expect(a.nTrain + a.nVal).toBe(labels.length);
    expect(a.nVal).toBe(10);
    expect([...a.order].sort((x, y) => x - y)).toEqual(labels.map((_, i) => i));
    for (const c of [0, 1, 2]) {
      const total = labels.filter((y) => y === c).length;
      const inVal = [...a.order.subarray(a.nTrain)].filter((i) => labels[i] === c).length;
      expect(Math.abs(inVal - total / 2)).toBeLessThanOrEqual(0.5);
    }
    expect(stratifiedSplit(labels, 0.5, createRng(3))).toEqual(a);
    expect(stratifiedSplit(labels, 0.5, createRng(4)).order).not.toEqual(a.order);
    const quarter = stratifiedSplit(labels, 0.25, createRng(3));
    expect(quarter.nVal).toBe(5);
    // Tiny batches still give two non-empty halves.
    expect(stratifiedSplit([1, 1], 0.9, createRng(0))).toMatchObject({ nTrain: 1, nVal: 1 });
    expect(() => stratifiedSplit([0], 0.5, createRng(0))).toThrow(/at least 2 examples/);
  });
});

describe('closed-form heads', () => {
  const rng = createRng(5);
  const n = 10;
  const m = 4;
  const d = 6;
  const ftr = Array.from(rng.normalArray(n * d));
  const fva = Array.from(rng.normalArray(m * d));
  const labels = Array.from({ length: n }, (_, i) => i % C);

  const predict = (opts: HeadFitOptions) =>
    tf.tidy(() =>
      Array.from(
        fitAndPredict(
          tf.tensor2d(ftr, [n, d]),
          tf.tensor2d(fva, [m, d]),
          regressionTargets(labels, C),
          opts,
        ).dataSync(),
      ),
    );

  it('the kernel head equals K_val,train (K_train,train + λI)⁻¹ Y on normalised features (float64 reference)', async () => {
    const norm = (rows: number[], k: number) =>
      Array.from({ length: k }, (_, i) => {
        const r = rows.slice(i * d, (i + 1) * d);
        const s = Math.hypot(...r);
        return r.map((v) => v / s);
      });
    const a = norm(ftr, n);
    const b = norm(fva, m);
    const dot = (u: number[], v: number[]) => u.reduce((s, x, i) => s + x * (v[i] as number), 0);
    const lambda = 0.05;
    const k = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        k[i * n + j] = dot(a[i] as number[], a[j] as number[]) + (i === j ? lambda : 0);
    const y = new Float64Array(n * C).fill(-1 / C);
    labels.forEach((l, i) => {
      y[i * C + l] = 1 - 1 / C;
    });
    const alpha = choleskySolveFactored(choleskyFactor(k, n), n, y, C);
    const expected: number[] = [];
    for (let v = 0; v < m; v++)
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let j = 0; j < n; j++)
          s += dot(b[v] as number[], a[j] as number[]) * (alpha[j * C + c] as number);
        expected.push(s);
      }
    for (const form of ['dual', 'primal'] as const) {
      const got = predict({ head: 'kernel', lambda, innerSteps: 0, innerLr: 1, form });
      got.forEach((g, i) => {
        expect(g).toBeCloseTo(expected[i] as number, 4);
      });
    }
  });

  it('ridge: the primal and dual forms agree, and many inner steps converge to the closed form', async () => {
    const base = { head: 'ridge', lambda: 0.3, innerLr: 1 } as const;
    const primal = predict({ ...base, innerSteps: 0, form: 'primal' });
    const dual = predict({ ...base, innerSteps: 0, form: 'dual' });
    const few = predict({ ...base, innerSteps: 2 });
    const many = predict({ ...base, innerSteps: 400 });
    const maxDiff = (p: number[], q: number[]) =>
      Math.max(...p.map((v, i) => Math.abs(v - (q[i] as number))));
    expect(maxDiff(primal, dual)).toBeLessThan(1e-4);
    expect(maxDiff(many, primal)).toBeLessThan(1e-3);
    // … and a few steps are a genuinely different (more regularised) head.
    expect(maxDiff(few, primal)).toBeGreaterThan(1e-2);
    const kernelMany = predict({ ...base, head: 'kernel', innerSteps: 400 });
    const kernelClosed = predict({ ...base, head: 'kernel', innerSteps: 0 });
    expect(maxDiff(kernelMany, kernelClosed)).toBeLessThan(1e-3);
  });
});

describe('merlin method', () => {
  it('is registered, with its paper and needs', async () => {
    const m = createMethodRegistry().get('merlin');
    expect(m).toBe(merlin);
    expect(m.reference?.arxiv).toBe('2011.01418');
    expect(m.needs).toEqual({ pretrainedBackbone: true, sourceBatches: true });
  });

  it('validate gives clear errors for bad options', async () => {
    const v = (o: Record<string, unknown>) => () => merlin.validate(o);
    expect(v({ lamda: 1 })).toThrow(/unknown option "lamda". Valid options: .*lambda/);
    expect(v({ lambda: 0 })).toThrow(/lambda must be > 0/);
    expect(v({ lambda: -1e-3 })).toThrow(/lambda must be > 0/);
    expect(v({ head: 'svm' })).toThrow(/head must be one of kernel, ridge, got "svm"/);
    expect(v({ valFraction: 0 })).toThrow(/valFraction must be in \(0, 1\)/);
    expect(v({ valFraction: 1 })).toThrow(/valFraction must be in \(0, 1\)/);
    expect(v({ batchSize: 1 })).toThrow(/leaves the train half empty \(0 train \/ 1 val/);
    expect(v({ batchSize: 10, valFraction: 0.01 })).toThrow(
      /leaves the val half empty \(10 train \/ 0 val/,
    );
    expect(v({ innerSteps: 1.5 })).toThrow(/innerSteps must be an integer ≥ 0/);
    expect(v({ innerLr: 2 })).toThrow(/innerLr must be in \(0, 2\)/);
    expect(v({ sourceWeight: -1 })).toThrow(/sourceWeight must be ≥ 0/);
    expect(v({ logitScale: 0 })).toThrow(/logitScale must be a positive number/);
    expect(v({ fromPretrained: 'yes' })).toThrow(/option "fromPretrained" must be a boolean/);
    expect(merlin.validate({ head: 'ridge', innerSteps: 3 })).toMatchObject({
      head: 'ridge',
      innerSteps: 3,
      lambda: 1e-4,
    });
  });

  it('init rejects batches whose halves cannot hold every class, and missing inputs', async () => {
    const ctx = (config: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      config: merlin.validate(config),
      backbone,
      numClasses: 10,
      rng: createRng(0),
      totalSteps: 1,
      ...extra,
    });
    await expect(async () => merlin.init(ctx({ batchSize: 16 }))).rejects.toThrow(
      /batchSize 16 with valFraction 0.5 splits a batch into 8 train \/ 8 val examples, fewer than the 10 classes.*use batchSize ≥ 20/,
    );
    await expect(async () => merlin.init(ctx({ batchSize: 40, valFraction: 0.2 }))).rejects.toThrow(
      /32 train \/ 8 val.*use batchSize ≥ 48/,
    );
    await expect(async () => merlin.init(ctx({}))).rejects.toThrow(
      /fromPretrained is true but no pretrained backbone/,
    );
    await expect(async () =>
      merlin.init(ctx({ fromPretrained: false, sourceWeight: 1 }, { sourceNumClasses: undefined })),
    ).rejects.toThrow(/needs the source task's number of classes/);
    const s = await merlin.init(ctx({ fromPretrained: false }));
    await merlin.dispose(s);
  });

  it('loss falls and no tensor leaks', async () => {
    let { state, pretrained } = await start({});
    const b = batch(1);
    let step = 0;
    const losses: number[] = [];
    const growth = await measureTensorGrowthAsync(
      async () => {
        const out = await merlin.trainStep(state, { target: b, step: step++ });
        state = out.state;
        losses.push(out.loss);
      },
      { warmup: 2, steps: 25 },
    );
    expect(growth.grew).toBe(false);
    expect(losses[losses.length - 1]).toBeLessThan((losses[0] as number) * 0.8);
    const logits = merlin.predict(state, await merlin.predictParams(state), b.x);
    expect(logits.shape).toEqual([24, C]);
    logits.dispose();
    const count = tf.memory().numTensors;
    await merlin.dispose(state);
    expect(tf.memory().numTensors).toBeLessThan(count);
    disposeBatch(b);
    for (const t of Object.values(pretrained)) t.dispose();
  });

  it('the meta loss of a closed-form head on held-out data falls as the backbone trains', async () => {
    // A fresh batch each step; on this toy problem (8-d features) λ = 1e-2
    // gives a steadier descent than the default 1e-4.
    let { state, pretrained } = await start({ backboneLrMultiplier: 1, lambda: 1e-2 });
    const before = heldOutMetaLoss(state);
    for (let step = 0; step < 40; step++) {
      const b = batch(500 + step);
      state = (await merlin.trainStep(state, { target: b, step })).state;
      disposeBatch(b);
    }
    expect(heldOutMetaLoss(state)).toBeLessThan(before - 0.05);
    await merlin.dispose(state);
    for (const t of Object.values(pretrained)) t.dispose();
  });

  it('only the meta loss moves the backbone: frozen backbone ⇒ held-out meta loss unchanged', async () => {
    let { state, pretrained } = await start({ backboneLrMultiplier: 0 });
    const before = heldOutMetaLoss(state);
    const fc1 = values(state.trainer.params(), 'fc1.weight');
    for (let step = 0; step < 5; step++) {
      const b = batch(10 + step);
      state = (await merlin.trainStep(state, { target: b, step })).state;
      disposeBatch(b);
    }
    expect(values(state.trainer.params(), 'fc1.weight')).toEqual(fc1);
    expect(heldOutMetaLoss(state)).toBeCloseTo(before, 6);
    await merlin.dispose(state);
    for (const t of Object.values(pretrained)) t.dispose();
  });

  it('starts from a copy of the pretrained backbone, or a random one with fromPretrained: false', async () => {
    const a = await start({});
    expect(values(a.state.trainer.params(), 'fc1.weight')).toEqual(
      values(a.pretrained, 'fc1.weight'),
    );
    expect(a.state.trainer.params()['fc1.weight']).not.toBe(a.pretrained['fc1.weight']);
    const b = await start({ fromPretrained: false });
    expect(values(b.state.trainer.params(), 'fc1.weight')).not.toEqual(
      values(b.pretrained, 'fc1.weight'),
    );
    for (const s of [a, b]) {
      await merlin.dispose(s.state);
      for (const t of Object.values(s.pretrained)) t.dispose();
    }
  });

  it('is deterministic per seed, for every head variant', async () => {
    for (const options of [{}, { head: 'ridge' }, { head: 'ridge', innerSteps: 3 }]) {
      const one = await train(options, 1, 3);
      expect(await train(options, 1, 3)).toEqual(one);
      expect((await train(options, 2, 3)).losses).not.toEqual(one.losses);
    }
  });

  it('ignores source batches when sourceWeight is 0 and uses them when it is > 0', async () => {
    const without = await train({}, 3, 3, false);
    const ignored = await train({}, 3, 3, true);
    expect(ignored).toEqual(without);
    expect(Object.keys(without.params)).not.toContain('source_head.weight');
    const withSource = await train({ sourceWeight: 1 }, 3, 3, true);
    expect(Object.keys(withSource.params)).toContain('source_head.weight');
    expect(withSource.params['fc1.weight']).not.toEqual(without.params['fc1.weight']);
    let { state, pretrained } = await start({ sourceWeight: 1 });
    const b = batch(4);
    await expect(async () => merlin.trainStep(state, { target: b, step: 0 })).rejects.toThrow(
      /sourceWeight 1 > 0 needs a source minibatch/,
    );
    // A ragged last batch of one example cannot be split: it still trains the heads.
    const single = batchFromTensors(tf.slice(b.x, [0, 0], [1, 8]), tf.slice(b.y, [0], [1]));
    const src = batch(5, 16, 4);
    const out = await merlin.trainStep(state, { target: single, source: src, step: 0 });
    state = out.state;
    expect(Number.isFinite(out.loss)).toBe(true);
    await merlin.dispose(state);
    for (const x of [b, single, src]) disposeBatch(x);
    for (const t of Object.values(pretrained)) t.dispose();
  });
});
