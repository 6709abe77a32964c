import * as tf from '@tensorflow/tfjs-core';
import {
  choleskyFactor,
  choleskySolveFactored,
  createRng,
  initBackend,
  type Params,
  valueAndGrads,
} from '@transferlab/core';
import { type BackboneSpec, createBackbone } from '@transferlab/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchFromTensors } from '../shared/batch.js';
import type { Batch } from '../types.js';
import { lossTerms, type MerlinState, merlin, prepareBatch } from './index.js';

/**
 * The key test: the meta-gradient — the gradient w.r.t. the backbone of the
 * val-half cross-entropy of a head fit on the train half — against central
 * finite differences, for every head variant. It goes through the real
 * method code (prepareBatch + lossTerms, as trainStep uses them): the
 * evaluation head's term is in the loss that is differentiated but is
 * detached from the backbone, so the backbone gradient must equal the finite
 * difference of meta + sourceWeight · source alone.
 */

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const worst: Record<string, number> = {};
afterAll(() => {
  console.log('MeRLin meta-gradient vs finite differences (max relative error):', worst);
});

const C = 3;
const IN = 24;

function spec(activation: 'linear' | 'relu', width: number): BackboneSpec {
  return {
    name: `fd-${activation}`,
    inputShape: [IN],
    layers: [
      { kind: 'flatten', name: 'flatten' },
      { kind: 'dense', name: 'fc1', units: 12, activation },
      { kind: 'dense', name: 'fc2', units: width, activation },
    ],
  };
}

function batch(seed: number, n: number, classes = C): Batch {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, (_, i) => i % classes);
  const x = Float32Array.from(
    { length: n * IN },
    (_, i) => rng.normal() + (i % IN === (y[Math.floor(i / IN)] as number) ? 1.5 : 0),
  );
  return batchFromTensors(tf.tensor2d(x, [n, IN]), tf.tensor1d(y, 'int32'));
}

interface Case {
  name: string;
  /** Max relative error allowed (float32 finite differences get noisier as λ shrinks). */
  tol: number;
  activation: 'linear' | 'relu';
  /** Feature width: 4 < the 12-example train half (primal form), 16 > it (dual form). */
  width: number;
  options: Record<string, unknown>;
}

const cases: Case[] = [
  {
    name: 'kernel, closed form, dual',
    tol: 3e-3,
    activation: 'linear',
    width: 16,
    options: { head: 'kernel' },
  },
  {
    name: 'kernel, closed form, primal',
    tol: 3e-3,
    activation: 'linear',
    width: 4,
    options: { head: 'kernel' },
  },
  {
    name: 'ridge, closed form, dual',
    tol: 3e-3,
    activation: 'linear',
    width: 16,
    options: { head: 'ridge' },
  },
  {
    name: 'ridge, closed form, primal',
    tol: 3e-3,
    activation: 'linear',
    width: 4,
    options: { head: 'ridge' },
  },
  {
    name: 'kernel, 4 inner steps, logitScale 3',
    tol: 3e-3,
    activation: 'linear',
    width: 16,
    options: { head: 'kernel', innerSteps: 4, logitScale: 3 },
  },
  {
    name: 'ridge, 6 inner steps',
    tol: 3e-3,
    activation: 'linear',
    width: 4,
    options: { head: 'ridge', innerSteps: 6, innerLr: 1.5 },
  },
  {
    name: 'kernel + source loss (ρ = 0.5), ReLU backbone',
    tol: 1e-2,
    activation: 'relu',
    width: 16,
    options: { head: 'kernel', sourceWeight: 0.5 },
  },
  {
    name: 'ridge, λ = 1e-4, ReLU backbone',
    tol: 2e-2,
    activation: 'relu',
    width: 16,
    options: { head: 'ridge', lambda: 1e-4 },
  },
];

describe('MeRLin meta-gradient', () => {
  for (const tc of cases) {
    it(`matches finite differences: ${tc.name}`, async () => {
      const backbone = createBackbone(spec(tc.activation, tc.width));
      const options = { batchSize: 24, lambda: 1e-2, ...tc.options };
      const config = merlin.validate(options);
      const pretrained = backbone.init(createRng(7));
      const state: MerlinState = await merlin.init({
        config,
        backbone,
        numClasses: C,
        pretrained,
        sourceNumClasses: 4,
        rng: createRng(1),
        totalSteps: 10,
      });
      const target = batch(11, 24);
      const source = config.sourceWeight > 0 ? batch(12, 16, 4) : undefined;
      const prepared = prepareBatch(state, target, 0);
      const rho = config.sourceWeight;
      const backboneNames = Object.keys(backbone.paramShapes);

      // What trainStep differentiates (all three terms) …
      const full = (p: Params) => {
        const t = lossTerms(state, p, prepared, source);
        let l: tf.Tensor = tf.add(t.evalHead, t.meta as tf.Scalar);
        if (t.source) l = tf.add(l, tf.mul(t.source, rho));
        return l as tf.Scalar;
      };
      // … and what the backbone is meant to descend (no evaluation-head term).
      const backboneObjective = (p: Params) =>
        tf.tidy(() => {
          const t = lossTerms(state, p, prepared, source);
          const l = t.source ? tf.add(t.meta as tf.Scalar, tf.mul(t.source, rho)) : t.meta;
          return (l as tf.Scalar).dataSync()[0] as number;
        });

      const params = state.trainer.params();
      const { value, grads } = valueAndGrads(full, params, backboneNames);
      // Larger steps cross ReLU kinks; smaller ones drown in float32 rounding.
      const h = tc.activation === 'relu' ? 3e-3 : 1e-2;
      let maxErr = 0;
      for (const name of backboneNames) {
        const base = params[name] as tf.Tensor;
        const g = (grads[name] as tf.Tensor).dataSync();
        const scale = Math.max(1e-3, ...Array.from(g, Math.abs));
        const at = (delta: Float32Array, sign: number) => {
          const moved = tf.tidy(() => tf.add(base, tf.mul(tf.tensor(delta, base.shape), sign)));
          try {
            return backboneObjective({ ...params, [name]: moved });
          } finally {
            moved.dispose();
          }
        };
        // Three single entries and one random direction per tensor.
        const rng = createRng(name.length * 31 + 5);
        const probes: Float32Array[] = [];
        for (let k = 0; k < 3; k++) {
          const e = new Float32Array(base.size);
          e[rng.int(base.size)] = 1;
          probes.push(e);
        }
        const dir = rng.normalArray(base.size);
        const norm = Math.hypot(...dir);
        probes.push(dir.map((v) => v / norm));
        for (const p of probes) {
          const delta = p.map((v) => v * h);
          const fd = (at(delta, 1) - at(delta, -1)) / (2 * h);
          let analytic = 0;
          for (let i = 0; i < p.length; i++) analytic += (p[i] as number) * (g[i] as number);
          maxErr = Math.max(maxErr, Math.abs(fd - analytic) / scale);
        }
      }
      worst[tc.name] = maxErr;
      expect(Number.isFinite(value.dataSync()[0] as number)).toBe(true);
      expect(maxErr).toBeLessThan(tc.tol);
      // The evaluation head still gets its own gradient from the same loss.
      const { grads: headGrads } = valueAndGrads(full, params, ['head.weight']);
      expect(
        tf.tidy(() => tf.max(tf.abs(headGrads['head.weight'] as tf.Tensor)).dataSync()[0]),
      ).toBeGreaterThan(0);
      tf.dispose([value, ...Object.values(grads), ...Object.values(headGrads)]);
      prepared.dispose();
      await merlin.dispose(state);
      tf.dispose([target.x, target.y, source?.x, source?.y].filter((t) => t !== undefined));
      for (const t of Object.values(pretrained)) t.dispose();
    });
  }

  it('at the defaults (kernel head, λ = 1e-4) matches a float64 re-implementation and its finite differences', async () => {
    // Float32 finite differences are too noisy at λ = 1e-4 (the system's
    // condition number is ~1e4), so the reference here is an independent
    // float64 implementation of the same loss, differenced with h = 1e-6.
    const backbone = createBackbone(spec('relu', 16));
    const config = merlin.validate({ batchSize: 24 });
    expect([config.head, config.lambda, config.innerSteps, config.logitScale]).toEqual([
      'kernel',
      1e-4,
      0,
      1,
    ]);
    const pretrained = backbone.init(createRng(8));
    const state: MerlinState = await merlin.init({
      config,
      backbone,
      numClasses: C,
      pretrained,
      rng: createRng(2),
      totalSteps: 10,
    });
    const target = batch(13, 24);
    const prepared = prepareBatch(state, target, 0);
    const split = prepared.split as NonNullable<typeof prepared.split>;
    const backboneNames = Object.keys(backbone.paramShapes);
    const params = state.trainer.params();
    const { grads } = valueAndGrads(
      (p) => {
        const t = lossTerms(state, p, prepared);
        return tf.add(t.evalHead, t.meta as tf.Scalar) as tf.Scalar;
      },
      params,
      backboneNames,
    );
    const metaF32 = tf.tidy(() => lossTerms(state, params, prepared).meta?.dataSync()[0] as number);

    const x = Float64Array.from(prepared.x.dataSync());
    const labels = Array.from(prepared.y.dataSync());
    const n = labels.length;
    const { nTrain } = split;
    const reference = (p: Record<string, Float64Array>): number => {
      const dense = (rows: number[][], name: string, dIn: number, dOut: number) =>
        rows.map((row) =>
          Array.from({ length: dOut }, (_, o) => {
            let s = p[`${name}.bias`]?.[o] as number;
            for (let i = 0; i < dIn; i++)
              s += (row[i] as number) * (p[`${name}.weight`]?.[i * dOut + o] as number);
            return Math.max(0, s);
          }),
        );
      const rows = Array.from({ length: n }, (_, r) =>
        Array.from(x.subarray(r * IN, (r + 1) * IN)),
      );
      const f = dense(dense(rows, 'fc1', IN, 12), 'fc2', 12, 16).map((row) => {
        const norm = Math.sqrt(row.reduce((a, v) => a + v * v, 0) + 1e-12);
        return row.map((v) => v / norm);
      });
      const dotRows = (a: number[], b: number[]) =>
        a.reduce((s, v, i) => s + v * (b[i] as number), 0);
      const k = new Float64Array(nTrain * nTrain);
      for (let i = 0; i < nTrain; i++)
        for (let j = 0; j < nTrain; j++)
          k[i * nTrain + j] = dotRows(f[i] as number[], f[j] as number[]) + (i === j ? 1e-4 : 0);
      const y = new Float64Array(nTrain * C).fill(-1 / C);
      for (let i = 0; i < nTrain; i++) y[i * C + (labels[i] as number)] = 1 - 1 / C;
      const alpha = choleskySolveFactored(choleskyFactor(k, nTrain), nTrain, y, C);
      let ce = 0;
      for (let v = nTrain; v < n; v++) {
        const logits = Array.from({ length: C }, (_, c) => {
          let s = 0;
          for (let j = 0; j < nTrain; j++)
            s += dotRows(f[v] as number[], f[j] as number[]) * (alpha[j * C + c] as number);
          return s;
        });
        const m = Math.max(...logits);
        const lse = m + Math.log(logits.reduce((a, l) => a + Math.exp(l - m), 0));
        ce += lse - (logits[labels[v] as number] as number);
      }
      return ce / (n - nTrain);
    };
    const p64 = Object.fromEntries(
      backboneNames.map((name) => [
        name,
        Float64Array.from((params[name] as tf.Tensor).dataSync()),
      ]),
    );
    // Same forward value: a wrong normalisation, ridge or target coding would show here.
    expect(Math.abs(reference(p64) - metaF32)).toBeLessThan(1e-4 * Math.max(1, metaF32));

    const h = 1e-6;
    let maxErr = 0;
    for (const name of backboneNames) {
      const base = p64[name] as Float64Array;
      const g = (grads[name] as tf.Tensor).dataSync();
      const scale = Math.max(1e-3, ...Array.from(g, Math.abs));
      const rng = createRng(name.length * 17 + 3);
      const probes: Float64Array[] = [];
      for (let k = 0; k < 4; k++) {
        const e = new Float64Array(base.length);
        e[rng.int(base.length)] = 1;
        probes.push(e);
      }
      const dir = Float64Array.from(rng.normalArray(base.length));
      const norm = Math.hypot(...dir);
      probes.push(dir.map((v) => v / norm));
      for (const probe of probes) {
        const at = (sign: number) =>
          reference({ ...p64, [name]: base.map((v, i) => v + sign * h * (probe[i] as number)) });
        const fd = (at(1) - at(-1)) / (2 * h);
        let analytic = 0;
        for (let i = 0; i < probe.length; i++) analytic += (probe[i] as number) * (g[i] as number);
        maxErr = Math.max(maxErr, Math.abs(fd - analytic) / scale);
      }
    }
    worst['defaults (kernel, λ = 1e-4), ReLU, float64 reference'] = maxErr;
    expect(maxErr).toBeLessThan(5e-3);
    tf.dispose(Object.values(grads));
    prepared.dispose();
    await merlin.dispose(state);
    tf.dispose([target.x, target.y]);
    for (const t of Object.values(pretrained)) t.dispose();
  });
});
