/**
 * The two-layer network of the CHMM transfer protocol:
 *
 *   f(x) = aᵀ σ(Wᵀx/√N)/√K,   W ∈ R^{N×K}, a ∈ R^K,
 *
 * a first layer with activation σ and a linear second layer, no biases (the
 * Gaussian covariate model of the readout has none either). Labels are ±1;
 * the loss is the square loss ½(y − f)² or the logistic loss log(1 + e^{−yf}),
 * averaged over the batch, with Adam and an L2 penalty on all weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { adam, disposeOptimizerState, type Params, type Rng, trainStep } from '@transferlab/core';

export const NET_ACTIVATIONS = ['erf', 'tanh', 'relu'] as const;
export type NetActivation = (typeof NET_ACTIVATIONS)[number];

export type ChmmLoss = 'square' | 'logistic';

export interface TwoLayerTraining {
  /** Adam steps. */
  steps: number;
  /** Minibatch size (full batch when ≥ the number of examples). */
  batchSize: number;
  lr: number;
  /** Coupled L2 penalty (added to the gradient), on W and a. */
  weightDecay: number;
  loss: ChmmLoss;
}

function activate(h: tf.Tensor, activation: NetActivation): tf.Tensor {
  switch (activation) {
    case 'erf':
      return tf.erf(h);
    case 'tanh':
      return tf.tanh(h);
    case 'relu':
      return tf.relu(h);
    default:
      throw new Error(
        `chmm network: unknown activation ${JSON.stringify(activation)}; valid: ${NET_ACTIVATIONS.join(', ')}`,
      );
  }
}

/** W with i.i.d. N(0, 1) entries (so every pre-activation Wᵢᵀx/√N has variance ≈ E x²), a ~ N(0, I_K). */
export function initTwoLayer(N: number, K: number, rng: Rng): Params {
  return {
    W: tf.tensor2d(rng.normalArray(N * K), [N, K]),
    a: tf.tensor2d(rng.normalArray(K), [K, 1]),
  };
}

/** σ(XW/√N): the hidden features, [n, K]. */
export function hidden(W: tf.Tensor, x: tf.Tensor, activation: NetActivation): tf.Tensor2D {
  return tf.tidy(() => {
    const n = W.shape[0] as number;
    return activate(
      tf.div(tf.matMul(x as tf.Tensor2D, W as tf.Tensor2D), Math.sqrt(n)),
      activation,
    ) as tf.Tensor2D;
  });
}

/** f(x) for every row of x, [n]. */
export function twoLayerOutput(
  params: Params,
  x: tf.Tensor,
  activation: NetActivation,
): tf.Tensor1D {
  return tf.tidy(() => {
    const W = params.W as tf.Tensor2D;
    const a = params.a as tf.Tensor2D;
    const k = W.shape[1] as number;
    return tf.reshape(
      tf.div(tf.matMul(hidden(W, x, activation), a), Math.sqrt(k)),
      [-1],
    ) as tf.Tensor1D;
  });
}

function lossOf(f: tf.Tensor, y: tf.Tensor, loss: ChmmLoss): tf.Scalar {
  if (loss === 'square') return tf.mul(tf.mean(tf.square(tf.sub(y, f))), 0.5) as tf.Scalar;
  // log(1 + e^{−yf}) = softplus(−yf)
  return tf.mean(tf.softplus(tf.neg(tf.mul(y, f)))) as tf.Scalar;
}

/** ±1 labels from class indices (class 1 ↔ +1). */
export function signs(y: Int32Array): Float32Array {
  return Float32Array.from(y, (v) => (v === 1 ? 1 : -1));
}

/**
 * Train both layers from `params` (taken over: the caller uses the returned
 * params and disposes them). Minibatches are successive slices of a fresh
 * permutation per pass over the data.
 */
export function trainTwoLayer(args: {
  params: Params;
  x: Float32Array;
  y: Int32Array;
  N: number;
  config: TwoLayerTraining;
  activation: NetActivation;
  rng: Rng;
}): { params: Params; finalLoss: number } {
  const { config, N, activation } = args;
  const n = args.y.length;
  if (n === 0) throw new Error('chmm network: no training examples');
  if (args.x.length !== n * N)
    throw new Error(`chmm network: x has ${args.x.length} values, expected ${n} × ${N}`);
  if (!(Number.isInteger(config.steps) && config.steps >= 0))
    throw new Error(`chmm network: steps must be a non-negative integer, got ${config.steps}`);
  if (!(Number.isInteger(config.batchSize) && config.batchSize >= 1))
    throw new Error(`chmm network: batchSize must be a positive integer, got ${config.batchSize}`);
  const optimizer = adam({ lr: config.lr, weightDecay: config.weightDecay });
  const X = tf.tensor2d(args.x, [n, N]);
  const Y = tf.tensor1d(signs(args.y));
  let params = args.params;
  let state = optimizer.init(params);
  const batch = Math.min(config.batchSize, n);
  let order = args.rng.permutation(n);
  let cursor = 0;
  let finalLoss = Number.NaN;
  try {
    for (let step = 0; step < config.steps; step++) {
      let idx: tf.Tensor1D | undefined;
      if (batch < n) {
        if (cursor + batch > n) {
          order = args.rng.permutation(n);
          cursor = 0;
        }
        idx = tf.tensor1d(order.subarray(cursor, cursor + batch), 'int32');
        cursor += batch;
      }
      const xb = idx ? tf.gather(X, idx) : X;
      const yb = idx ? tf.gather(Y, idx) : Y;
      try {
        const out = trainStep({
          params,
          state,
          optimizer,
          loss: (p) => lossOf(twoLayerOutput(p, xb, activation), yb, config.loss),
        });
        params = out.params;
        state = out.state;
        finalLoss = out.loss;
      } finally {
        if (idx) {
          idx.dispose();
          xb.dispose();
          yb.dispose();
        }
      }
    }
  } finally {
    X.dispose();
    Y.dispose();
    disposeOptimizerState(state);
  }
  return { params, finalLoss };
}

/** Hidden features σ(XW/√N) of row-major inputs as a Float32Array [n, K], in chunks. */
export function featuresOf(
  W: tf.Tensor,
  x: Float32Array,
  N: number,
  activation: NetActivation,
  chunk = 4096,
): Float32Array {
  const n = x.length / N;
  const K = W.shape[1] as number;
  const out = new Float32Array(n * K);
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const part = tf.tidy(() =>
      hidden(W, tf.tensor2d(x.subarray(start * N, (start + m) * N), [m, N]), activation),
    );
    out.set(part.dataSync() as Float32Array, start * K);
    part.dispose();
  }
  return out;
}

/** Classification error of the network on a dataset: P(sign f(x) ≠ y). */
export function twoLayerError(
  params: Params,
  x: Float32Array,
  y: Int32Array,
  N: number,
  activation: NetActivation,
  chunk = 4096,
): number {
  const n = y.length;
  let wrong = 0;
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const f = tf.tidy(() =>
      twoLayerOutput(
        params,
        tf.tensor2d(x.subarray(start * N, (start + m) * N), [m, N]),
        activation,
      ),
    );
    const v = f.dataSync();
    f.dispose();
    for (let i = 0; i < m; i++) if (((v[i] as number) >= 0 ? 1 : 0) !== y[start + i]) wrong++;
  }
  return wrong / n;
}
