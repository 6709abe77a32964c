import * as tf from '@tensorflow/tfjs-core';
import { softmaxCrossEntropy } from '@transferlab/core';
import { type TensorOps, tfjsTensorOps } from '../shared/loss-ops.js';

/**
 * The inner problem of MeRLin: fit a head on the train half's features and
 * predict the val half, differentiably in the features.
 *
 * Both heads are kernel ridge regressions on regression targets
 * Y = one-hot − 1/C (as in the reference code), without an intercept:
 *
 * - `ridge`: the linear kernel on the raw features. Closed form in the
 *   primal, W = (ΦᵀΦ + λ' I_d)⁻¹ΦᵀY, P = Φ_val W, or — identical, cheaper
 *   when n_train ≤ d — the dual, P = Φ_val Φᵀ (ΦΦᵀ + λ' I_n)⁻¹Y.
 * - `kernel`: the cosine kernel of L2-normalised features,
 *   P = K_val,train (K_train,train + λ' I)⁻¹ Y (the reference code's head).
 *
 * λ is scale-free: λ' = λ · tr(K)/n, λ times the mean squared feature norm of
 * the train half. For the cosine kernel tr(K)/n = 1, so λ' = λ exactly as in
 * the reference code; for raw features it keeps the amount of
 * regularisation independent of the features' scale (which training moves).
 *
 * `innerSteps` = k > 0 replaces the closed form by k steps of gradient
 * descent from W = 0 on the same ridge objective, (1/2n)‖ΦW − Y‖² + (μ/2)‖W‖²
 * with μ = λ'/n (so the fixed point is the closed form). The iterates stay
 * in the span of the train features, W = Φᵀa, so the steps run in the dual:
 * a ← a − η((K a − Y)/n + μ a). The step is normalised,
 * η = innerLr / (tr(K)/n + μ) ≥ innerLr / λ_max(Hessian), so any innerLr in
 * (0, 2) is stable whatever the features' scale. The inner gradient is
 * written out in closed form, never taken with `tf.grad`: the meta-gradient
 * is first order from tfjs' point of view, so the second-order trap (wrong
 * gradients of gradients through softmax/exp) cannot arise.
 */
export type MerlinHead = 'ridge' | 'kernel';

export interface HeadFitOptions {
  head: MerlinHead;
  /** λ > 0, relative to the mean squared feature norm (see above). */
  lambda: number;
  /** 0: closed form; k > 0: k differentiable gradient steps from zero. */
  innerSteps: number;
  /** Normalised inner step size in (0, 2) (used when innerSteps > 0). */
  innerLr: number;
  /** Closed form only: force the primal (d×d) or dual (n×n) system; they agree, 'auto' picks the smaller. */
  form?: 'auto' | 'primal' | 'dual';
}

/** One-hot rows minus 1/C: the regression targets of the closed-form heads. */
export function regressionTargets(labels: ArrayLike<number>, numClasses: number): tf.Tensor2D {
  const n = labels.length;
  const out = new Float32Array(n * numClasses).fill(-1 / numClasses);
  for (let i = 0; i < n; i++) {
    const y = labels[i] as number;
    if (!(Number.isInteger(y) && y >= 0 && y < numClasses)) {
      throw new Error(`regressionTargets: label ${y} at row ${i} is not in 0..${numClasses - 1}`);
    }
    out[i * numClasses + y] = 1 - 1 / numClasses;
  }
  return tf.tensor2d(out, [n, numClasses]);
}

/** Which closed form a fit on `n` train rows of `d` features uses. */
export function closedForm(
  n: number,
  d: number,
  form: HeadFitOptions['form'] = 'auto',
): 'primal' | 'dual' {
  return form === 'dual' || (form === 'auto' && n <= d) ? 'dual' : 'primal';
}

/**
 * The sizes a fit needs besides the features: the number of train rows as a
 * scalar value (so a graph compiled once serves every batch size), the
 * identity of the solved system's size, and which form to solve.
 */
export interface FitShape<T> {
  /** n, the number of train rows, as a scalar. */
  n: T;
  /** The identity matrix of the system: n × n (dual) or d × d (primal). */
  eye: T;
  form: 'primal' | 'dual';
}

/**
 * Predictions [nVal, C] on the val features of a head fit on
 * (trainFeatures, targets), written once against `TensorOps` so both
 * engines run it. Differentiable in both feature matrices.
 */
export function fitAndPredictWith<T>(
  ops: TensorOps<T>,
  trainFeatures: T,
  valFeatures: T,
  targets: T,
  opts: HeadFitOptions,
  shape: FitShape<T>,
): T {
  const kernel = opts.head === 'kernel';
  // The epsilon keeps an all-zero feature row (dead ReLUs) at zero instead of NaN.
  const l2Normalise = (f: T) =>
    ops.div(f, ops.sqrt(ops.add(ops.sum(ops.square(f), 1), ops.constant(1e-12))));
  const ftr = kernel ? l2Normalise(trainFeatures) : trainFeatures;
  const fva = kernel ? l2Normalise(valFeatures) : valFeatures;
  // tr(K)/n: the mean squared norm of a train feature row (1 after normalising).
  const meanSq = kernel ? ops.constant(1) : ops.div(ops.sum(ops.square(ftr)), shape.n);
  const lam = ops.scale(meanSq, opts.lambda);

  if (opts.innerSteps > 0) {
    const k = ops.matMul(ftr, ftr, false, true);
    const mu = ops.div(lam, shape.n);
    const eta = ops.div(ops.constant(opts.innerLr), ops.add(meanSq, mu));
    // a₁ = η Y / n (the first step from a₀ = 0), then the remaining k − 1 steps.
    let a = ops.mul(targets, ops.div(eta, shape.n));
    for (let t = 1; t < opts.innerSteps; t++) {
      const grad = ops.add(ops.div(ops.sub(ops.matMul(k, a), targets), shape.n), ops.mul(a, mu));
      a = ops.sub(a, ops.mul(grad, eta));
    }
    return ops.matMul(ops.matMul(fva, ftr, false, true), a);
  }
  // The cosine kernel is the linear kernel of the normalised features, so
  // both heads have both forms.
  const ridge = ops.mul(shape.eye, lam);
  if (shape.form === 'dual') {
    const alpha = ops.solveSpd(ops.add(ops.matMul(ftr, ftr, false, true), ridge), targets);
    return ops.matMul(ops.matMul(fva, ftr, false, true), alpha);
  }
  const w = ops.solveSpd(
    ops.add(ops.matMul(ftr, ftr, true, false), ridge),
    ops.matMul(ftr, targets, true, false),
  );
  return ops.matMul(fva, w);
}

/** `fitAndPredictWith` on tfjs tensors, the sizes read off the features. */
export function fitAndPredict(
  trainFeatures: tf.Tensor2D,
  valFeatures: tf.Tensor2D,
  targets: tf.Tensor2D,
  opts: HeadFitOptions,
): tf.Tensor2D {
  const [n, d] = trainFeatures.shape;
  if (targets.shape[0] !== n) {
    throw new Error(`fitAndPredict: ${n} train feature rows but ${targets.shape[0]} target rows`);
  }
  const form = closedForm(n, d, opts.form);
  return tf.tidy(() =>
    fitAndPredictWith(tfjsTensorOps, trainFeatures, valFeatures, targets, opts, {
      n: tf.scalar(n),
      eye: tf.eye(form === 'dual' ? n : d),
      form,
    }),
  ) as tf.Tensor2D;
}

/**
 * The MeRLin outer loss on one split batch: cross-entropy of the val half's
 * predictions (times `logitScale`) from a head fit on the train half.
 * `feats` holds the train half's rows first, then the val half's.
 *
 * The predictions are regression outputs in the scale of Y (a correct,
 * confident prediction is ≈ 1 − 1/C against −1/C), so the softmax over them
 * is soft and the loss cannot approach 0; `logitScale` (a temperature⁻¹)
 * sharpens it. The reference code uses the raw predictions (scale 1).
 */
export function merlinOuterLoss(args: {
  feats: tf.Tensor2D;
  nTrain: number;
  trainTargets: tf.Tensor2D;
  valLabels: tf.Tensor;
  logitScale: number;
  fit: HeadFitOptions;
}): tf.Scalar {
  const [n, d] = args.feats.shape;
  const nVal = n - args.nTrain;
  if (args.nTrain < 1 || nVal < 1) {
    throw new Error(`merlinOuterLoss: both halves need examples, got ${args.nTrain} / ${nVal}`);
  }
  const ftr = tf.slice(args.feats, [0, 0], [args.nTrain, d]);
  const fva = tf.slice(args.feats, [args.nTrain, 0], [nVal, d]);
  const pred = fitAndPredict(ftr, fva, args.trainTargets, args.fit);
  const logits = args.logitScale === 1 ? pred : tf.mul(pred, args.logitScale);
  return softmaxCrossEntropy(logits, args.valLabels);
}
