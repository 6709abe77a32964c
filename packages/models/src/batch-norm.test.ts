import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, initBackend, type Params } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BackboneSpec, createBackbone } from './backbone.js';
import { createBackboneRegistry } from './registry.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const C = 3;
const spec: BackboneSpec = {
  name: 'bn-only',
  inputShape: [C],
  layers: [{ kind: 'batchNorm', name: 'bn', momentum: 0.25, epsilon: 1e-3 }],
};

function bnParams(rng: ReturnType<typeof createRng>): Params {
  return {
    'bn.gamma': tf.tensor1d([0.5, 2, -1]),
    'bn.beta': tf.tensor1d([0.1, -0.3, 1]),
    'bn.running_mean': tf.tensor1d(rng.normalArray(C)),
    'bn.running_var': tf.tensor1d([0.5, 1.5, 3]),
  };
}

describe('batchNorm layer', () => {
  const rng = createRng(3);
  const n = 7;
  const xs = Float64Array.from(rng.normalArray(n * C, 2)).map((v, i) => v + (i % C)); // per-channel offsets
  const column = (c: number) => Array.from({ length: n }, (_, i) => xs[i * C + c] as number);

  it('inference: γ(x − running mean)/√(running var + ε) + β, statistics untouched', () => {
    const backbone = createBackbone(spec);
    const p = bnParams(createRng(4));
    const mean = p['bn.running_mean']?.arraySync() as number[];
    const variance = p['bn.running_var']?.arraySync() as number[];
    const gamma = [0.5, 2, -1];
    const beta = [0.1, -0.3, 1];
    const out = backbone.apply(p, tf.tensor2d(Float32Array.from(xs), [n, C]));
    expect(out.statistics).toBeUndefined();
    const got = out.features.arraySync() as number[][];
    for (let i = 0; i < n; i++)
      for (let c = 0; c < C; c++) {
        const want =
          ((gamma[c] as number) * ((xs[i * C + c] as number) - (mean[c] as number))) /
            Math.sqrt((variance[c] as number) + 1e-3) +
          (beta[c] as number);
        expect(got[i]?.[c]).toBeCloseTo(want, 4);
      }
    tf.dispose(out.features);
    disposeParams(p);
  });

  it('training: batch mean and biased variance normalise; running averages with the unbiased variance (PyTorch)', () => {
    const backbone = createBackbone(spec);
    expect(backbone.nonTrainable).toEqual(['bn.running_mean', 'bn.running_var']);
    const p = bnParams(createRng(4));
    const oldMean = p['bn.running_mean']?.arraySync() as number[];
    const oldVar = p['bn.running_var']?.arraySync() as number[];
    const out = backbone.apply(p, tf.tensor2d(Float32Array.from(xs), [n, C]), { training: true });
    const got = out.features.arraySync() as number[][];
    const newMean = out.statistics?.['bn.running_mean']?.arraySync() as number[];
    const newVar = out.statistics?.['bn.running_var']?.arraySync() as number[];
    for (let c = 0; c < C; c++) {
      const col = column(c);
      const mu = col.reduce((a, b) => a + b, 0) / n;
      const biased = col.reduce((a, b) => a + (b - mu) ** 2, 0) / n;
      for (let i = 0; i < n; i++) {
        const want =
          ([0.5, 2, -1][c] as number) * (((col[i] as number) - mu) / Math.sqrt(biased + 1e-3)) +
          ([0.1, -0.3, 1][c] as number);
        expect(got[i]?.[c]).toBeCloseTo(want, 4);
      }
      expect(newMean[c]).toBeCloseTo(0.75 * (oldMean[c] as number) + 0.25 * mu, 5);
      expect(newVar[c]).toBeCloseTo(
        0.75 * (oldVar[c] as number) + (0.25 * biased * n) / (n - 1),
        4,
      );
    }
    // Nothing changed in place.
    expect(p['bn.running_mean']?.arraySync()).toEqual(oldMean);
    tf.dispose([out.features, ...Object.values(out.statistics ?? {})]);
    disposeParams(p);
  });

  it('bad layouts and options are refused when the backbone is built', () => {
    const build =
      (layer: Record<string, unknown>, inputShape = [3]) =>
      () =>
        createBackbone({
          name: 'bad',
          inputShape,
          layers: [{ kind: 'batchNorm', name: 'bn', ...layer } as never],
        });
    expect(build({}, [4, 3])).toThrow(
      'layer "bn": batchNorm needs features [C] or maps [H, W, C], got [4,3]',
    );
    expect(build({ momentum: 1.5 })).toThrow('batchNorm momentum must be in [0, 1], got 1.5');
    expect(build({ epsilon: -1e-5 })).toThrow('batchNorm epsilon must be > 0, got -0.00001');
  });

  it('a batch of one in training mode is refused with the reason', () => {
    const backbone = createBackbone(spec);
    const p = bnParams(createRng(4));
    expect(() => backbone.apply(p, tf.ones([1, C]), { training: true })).toThrow(
      /batch normalisation "bn" in training mode needs more than one value per channel/,
    );
    disposeParams(p);
  });

  it('training-mode gradients (through the batch statistics) match finite differences', () => {
    const convSpec: BackboneSpec = {
      name: 'conv-bn',
      inputShape: [5, 5, 2],
      layers: [
        { kind: 'conv2d', name: 'c', filters: 3, kernelSize: 3 },
        { kind: 'batchNorm', name: 'bn' },
        { kind: 'globalAvgPool', name: 'gap' },
      ],
    };
    const backbone = createBackbone(convSpec);
    const r = createRng(9);
    const params: Record<string, tf.Tensor> = { ...backbone.init(r) };
    params['bn.gamma']?.dispose();
    params['bn.gamma'] = tf.tensor1d([1.5, -0.7, 0.9]);
    const x = tf.tensor4d(r.normalArray(4 * 5 * 5 * 2), [4, 5, 5, 2]);
    // A loss that is not invariant to the normalisation: weighted squares of the normalised maps.
    const w = tf.tensor1d([0.3, -1.2, 0.8]);
    const loss = (p: Params) =>
      tf.tidy(() => {
        const maps = createBackbone({ ...convSpec, layers: convSpec.layers.slice(0, 2) }).apply(
          p,
          x,
          { training: true },
        ).features;
        return tf.sum(tf.mul(tf.square(tf.add(maps, 0.5)), w)) as tf.Scalar;
      });
    const names = ['c.weight', 'bn.gamma', 'bn.beta'];
    const grads = tf.grads((...ts: tf.Tensor[]) =>
      loss({ ...params, ...Object.fromEntries(names.map((n, i) => [n, ts[i] as tf.Tensor])) }),
    )(names.map((n) => params[n] as tf.Tensor));
    const dirs = names.map((n) =>
      tf.tensor(r.normalArray(params[n]?.size as number), params[n]?.shape),
    );
    let analytic = 0;
    grads.forEach((g, i) => {
      analytic += tf.sum(tf.mul(g, dirs[i] as tf.Tensor)).dataSync()[0] as number;
    });
    const h = 1e-2;
    const shifted = (sign: number) =>
      loss({
        ...params,
        ...Object.fromEntries(
          names.map((n, i) => [
            n,
            tf.add(params[n] as tf.Tensor, tf.mul(dirs[i] as tf.Tensor, sign * h)),
          ]),
        ),
      }).dataSync()[0] as number;
    const numeric = (shifted(1) - shifted(-1)) / (2 * h);
    expect(Math.abs(analytic)).toBeGreaterThan(1);
    expect(Math.abs(analytic - numeric) / Math.abs(analytic)).toBeLessThan(2e-3);
    disposeParams(params);
  });

  it('resnet-bn: BN after every convolution, statistics not trainable, γ = 1 and variance 1 at init', () => {
    const backbone = createBackboneRegistry().get('resnet-bn').create([16, 16, 1]);
    // stem + 2 per block + a projection BN in the two down-sampling blocks = 9 layers.
    expect(backbone.nonTrainable).toHaveLength(18);
    expect(backbone.nonTrainable).toContain('block2_1.proj_bn.running_var');
    expect(Object.keys(backbone.tapShapes)).toEqual(
      expect.arrayContaining(['stem', 'block1_1', 'block2_1', 'block3_1', 'pool']),
    );
    const p = backbone.init(createRng(0));
    // He initialisation for the stem convolution: a ReLU follows its normalisation.
    const w = Array.from(p['stem_conv.weight']?.dataSync() ?? []);
    const variance = w.reduce((a, v) => a + v * v, 0) / w.length;
    expect(Math.abs(variance / (2 / 9) - 1)).toBeLessThan(0.35);
    expect(Array.from(p['block1_1.bn2.gamma']?.dataSync() ?? [])).toEqual(new Array(16).fill(1));
    expect(Array.from(p['stem_bn.running_var']?.dataSync() ?? [])).toEqual(new Array(16).fill(1));
    expect(Array.from(p['stem_bn.running_mean']?.dataSync() ?? [])).toEqual(new Array(16).fill(0));
    // Training mode reports every statistic.
    const x = tf.tensor4d(createRng(1).normalArray(6 * 256, 3), [6, 16, 16, 1]);
    const out = backbone.apply(p, x, { training: true });
    expect(Object.keys(out.statistics ?? {}).sort()).toEqual(
      [...(backbone.nonTrainable ?? [])].sort(),
    );
    tf.dispose([x, out.features, ...Object.values(out.statistics ?? {})]);
    disposeParams(p);
  });
});
