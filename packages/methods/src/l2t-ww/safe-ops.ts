import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import {
  applyLayer,
  type BackboneSpec,
  hasParams,
  type LayerOps,
  type NormContext,
} from '@transferlab/models';
import { matMulFast } from '../shared/mat-mul.js';

/**
 * Second-order-safe building blocks for L2T-ww's look-ahead steps.
 *
 * The meta-gradient differentiates the target network's *gradient* (the
 * look-ahead updates) once more, so every op on the path from the target
 * weights to the look-ahead loss needs a gradient whose own gradient tfjs
 * computes correctly. In tfjs 4.22 three things break that:
 *
 * - `Conv2DBackpropFilter` (the filter gradient of every conv) and
 *   `MaxPoolGrad` (the input gradient of max-pooling) have no registered
 *   gradient: differentiating them throws "gradient function not found".
 *   (`Conv2DBackpropInput` does have one.)
 * - Ops whose gradient reuses their own saved *output* (exp, softmax,
 *   log-softmax, tanh, sigmoid, max-pool): the engine records the saved copy
 *   of the output on the tape *before* the op itself, so the backward pass
 *   drops the path through it and the second-order gradient is silently
 *   wrong (tensorflow/tfjs#3252). Saved *inputs* are fine.
 *
 * Hence: a conv whose gradient is composed of differentiable ops (the
 * transposed conv for the input, a conv of the input with the output
 * gradient for the filter), a max-pool whose gradient is a mask (a constant)
 * times the spread output gradient, and a softmax cross-entropy whose
 * gradient (softmax − one-hot)/N is itself a custom op with a closed-form
 * gradient (the softmax Jacobian), so nothing relies on a saved output.
 * ReLU (gradient dy·step(x), from the saved input), dense layers, reshapes,
 * means and squares are already safe.
 */

/** The identity whose gradient is zero (tfjs 4.22 has no stopGradient). */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }),
);

type Pad = 'same' | 'valid';

/**
 * The filter gradient of conv2d(x, w, stride, pad) for output gradient dy
 * (tfjs' `Conv2DBackpropFilter` kernel), as an op with a gradient. It is
 * bilinear: ⟨A, F(x, dy)⟩ = ⟨conv2d(x, A), dy⟩, so for an adjoint A its
 * gradient is conv2d(x, A) in dy and the transposed conv of dy with A in x
 * — two small convs with the filter's own 3×3 (say) size. (Composing F of
 * differentiable ops instead, a conv with the output-sized dy as its
 * filter, works too but its gradient is ~20× slower on wasm.)
 */
function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  stride: number,
  pad: Pad,
): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    const dyi = args[1] as tf.Tensor4D;
    (args[2] as tf.GradSaveFunc)([xi, dyi]);
    return {
      value: tf
        .engine()
        .runKernel(
          tf.Conv2DBackpropFilter,
          { x: xi, dy: dyi },
          { strides: stride, pad, dataFormat: 'NHWC', filterShape },
        ) as tf.Tensor4D,
      gradFunc: (a: tf.Tensor, saved: tf.Tensor[]) => {
        const xs = saved[0] as tf.Tensor4D;
        const dys = saved[1] as tf.Tensor4D;
        const adj = a as tf.Tensor4D;
        return [
          tf.conv2dTranspose(dys, adj, xs.shape, stride, pad),
          tf.conv2d(xs, adj, stride, pad),
        ];
      },
    };
  });
  return op(x, dy) as tf.Tensor4D;
}

/**
 * tf.conv2d (NHWC, dilation 1) whose gradient is built from differentiable
 * ops, so that gradients of its gradients are right: the input gradient is a
 * transposed conv (`Conv2DBackpropInput`, whose gradient tfjs registers), the
 * filter gradient `conv2dFilterGrad`.
 */
export function safeConv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  pad: Pad,
  opts: { inputGrad?: boolean } = {},
): tf.Tensor4D {
  const inputGrad = opts.inputGrad ?? true;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    const wi = args[1] as tf.Tensor4D;
    (args[2] as tf.GradSaveFunc)([xi, wi]);
    return {
      value: tf.conv2d(xi, wi, stride, pad),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        // Saved *inputs* are clones the engine links to the originals on the tape.
        const xs = saved[0] as tf.Tensor4D;
        const ws = saved[1] as tf.Tensor4D;
        const dy4 = dy as tf.Tensor4D;
        return [
          // The input of a network's first layer is data: skip its gradient.
          inputGrad ? tf.conv2dTranspose(dy4, ws, xs.shape, stride, pad) : tf.zerosLike(xs),
          conv2dFilterGrad(xs, dy4, ws.shape, stride, pad),
        ];
      },
    };
  });
  return op(x, w) as tf.Tensor4D;
}

/**
 * mask ⊙ (each value of dy [b, oh, ow, c] copied over its k × k window):
 * [b, oh·k, ow·k, c]. `mask` is a constant. Its gradient is the window sum
 * of mask ⊙ adjoint (k² × average pooling), which wasm runs far faster than
 * tfjs' reduction over broadcast axes (and tf.tile is slower still).
 */
function maskedSpread(dy: tf.Tensor4D, mask: tf.Tensor4D, k: number): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const d = args[0] as tf.Tensor4D;
    const m = args[1] as tf.Tensor4D;
    // The mask reaches the gradient through `save` (kept until the tape
    // ends), never through a closure: this gradient may run in an outer
    // backward pass, after the tidy that made the mask is gone.
    (args[2] as tf.GradSaveFunc)([m]);
    const [b, oh, ow, c] = d.shape;
    return {
      value: tf.reshape(
        tf.mul(tf.reshape(d, [b, oh, 1, ow, 1, c]), tf.reshape(m, [b, oh, k, ow, k, c])),
        [b, oh * k, ow * k, c],
      ),
      gradFunc: (a: tf.Tensor, saved: tf.Tensor[]) => {
        const ms = saved[0] as tf.Tensor4D;
        return [
          tf.mul(tf.avgPool(tf.mul(a, ms) as tf.Tensor4D, k, k, 'valid'), k * k),
          tf.zerosLike(ms),
        ];
      },
    };
  });
  return op(dy, mask) as tf.Tensor4D;
}

/**
 * 1 at the first maximum (row-major within the window, as tfjs' cpu
 * MaxPoolGrad picks it) of each non-overlapping k × k window of x, 0
 * elsewhere (including rows/columns no window covers). Not wasm's
 * MaxPoolGrad: in tfjs-backend-wasm 4.22 it drops the gradient of every
 * window whose maximum is negative (see safe-ops.test.ts) — harmless after
 * a ReLU, wrong otherwise.
 */
function firstMaxMask(x: tf.Tensor4D, k: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const oh = Math.floor(h / k);
    const ow = Math.floor(w / k);
    const crop =
      oh * k === h && ow * k === w ? x : tf.slice(x, [0, 0, 0, 0], [b, oh * k, ow * k, c]);
    const windows = tf.reshape(
      tf.transpose(tf.reshape(crop, [b, oh, k, ow, k, c]), [0, 1, 3, 5, 2, 4]),
      [b, oh, ow, c, k * k],
    );
    const first = tf.oneHot(tf.argMax(windows, 4), k * k);
    const mask = tf.reshape(
      tf.transpose(tf.reshape(first, [b, oh, ow, c, k, k]), [0, 1, 4, 2, 5, 3]),
      [b, oh * k, ow * k, c],
    );
    const full =
      oh * k === h && ow * k === w
        ? mask
        : tf.pad(mask, [
            [0, 0],
            [0, h - oh * k],
            [0, w - ow * k],
            [0, 0],
          ]);
    return tf.cast(full, 'float32') as tf.Tensor4D;
  });
}

/**
 * 'valid' max-pool with stride = size (non-overlapping windows, as in the
 * project's CNNs) whose gradient, mask ⊙ (dy spread over each window), is
 * differentiable in dy. The mask (computed in the forward pass, a constant
 * for autodiff) picks the first maximum of each window as tfjs' MaxPoolGrad
 * does, so first-order gradients equal tf.maxPool's (on cpu; on wasm,
 * whose MaxPoolGrad has a bug, see firstMaxMask).
 */
export function safeMaxPool(x: tf.Tensor4D, size: number, stride: number = size): tf.Tensor4D {
  if (stride !== size) {
    throw new Error(
      `safeMaxPool: only non-overlapping windows (stride = size) have a second-order-safe gradient here, got size ${size}, stride ${stride}`,
    );
  }
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    const y = tf.maxPool(xi, size, size, 'valid');
    const mask = firstMaxMask(xi, size);
    // Saved: a copy of the mask, which is not on the tape (made while it is off): a constant.
    (args[1] as tf.GradSaveFunc)([mask]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const m = saved[0] as tf.Tensor4D; // [b, h, w, c], zeros outside the windows
        const [b, h, w, c] = m.shape;
        const [, oh, ow] = dy.shape as [number, number, number, number];
        const cropped =
          oh * size === h && ow * size === w
            ? m
            : tf.slice(m, [0, 0, 0, 0], [b, oh * size, ow * size, c]);
        const spread = maskedSpread(dy as tf.Tensor4D, cropped, size);
        const dx =
          oh * size === h && ow * size === w
            ? spread
            : tf.pad(spread, [
                [0, 0],
                [0, h - oh * size],
                [0, w - ow * size],
                [0, 0],
              ]);
        return [dx];
      },
    };
  });
  return op(x) as tf.Tensor4D;
}

/** (softmax(z) − onehot) / N, with the softmax Jacobian as its gradient (closed form). */
const softmaxCrossEntropyGrad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const z = args[0] as tf.Tensor2D;
  const onehot = args[1] as tf.Tensor2D;
  (args[2] as tf.GradSaveFunc)([z, onehot]);
  const n = z.shape[0];
  return {
    value: tf.div(tf.sub(tf.softmax(z), onehot), n),
    gradFunc: (u: tf.Tensor, saved: tf.Tensor[]) => {
      // J = (diag(p) − p pᵀ)/N per row, symmetric: Jᵀu = (p ⊙ u − p (p·u)) / N.
      const zs = saved[0] as tf.Tensor2D;
      const p = tf.softmax(zs);
      const pu = tf.mul(p, u);
      return [
        tf.div(tf.sub(pu, tf.mul(p, tf.sum(pu, 1, true))), n),
        tf.zerosLike(saved[1] as tf.Tensor),
      ];
    },
  };
});

/**
 * Mean softmax cross-entropy of logits [N, C] against integer labels [N]
 * whose gradient, (softmax − one-hot)/N, is a custom op with an exact
 * closed-form gradient: safe to differentiate twice (core's
 * `softmaxCrossEntropy` goes through log-softmax, whose second-order
 * gradient tfjs gets wrong).
 */
export function safeSoftmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const numClasses = logits.shape[1] as number;
  const onehot = tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, numClasses) as tf.Tensor2D;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const z = args[0] as tf.Tensor2D;
    const oh = args[1] as tf.Tensor2D;
    (args[2] as tf.GradSaveFunc)([z, oh]);
    return {
      value: tf.neg(tf.mean(tf.sum(tf.mul(oh, tf.logSoftmax(z)), 1))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.mul(dy, softmaxCrossEntropyGrad(saved[0] as tf.Tensor, saved[1] as tf.Tensor)),
        tf.zerosLike(saved[1] as tf.Tensor),
      ],
    };
  });
  return op(logits as tf.Tensor2D, onehot) as tf.Scalar;
}

/** The layer ops of `@transferlab/models` with second-order-safe conv, max-pool and matmul. */
export const safeLayerOps: LayerOps = {
  conv2d: (x, filter, stride, padding, dataInput) =>
    safeConv2d(x, filter, stride, padding, { inputGrad: !dataInput }),
  matMul: matMulFast,
  maxPool: safeMaxPool,
};

/**
 * The backbone described by `spec`, run with second-order-safe ops: same
 * values and same first-order gradients as `createBackbone(spec).apply`, and
 * gradients of gradients that tfjs gets right. `stopAfter` ends the forward
 * pass at that layer (the look-ahead's matching steps need nothing deeper
 * than the deepest tap). `x` is data: no gradient is computed for it.
 */
export function safeBackboneApply(
  spec: BackboneSpec,
  params: Params,
  x: tf.Tensor,
  opts: { taps?: readonly string[]; stopAfter?: string; training?: boolean } = {},
): { features: tf.Tensor; taps: Record<string, tf.Tensor> } {
  // Batch normalisation in training mode normalises with batch moments (mean,
  // square, rsqrt: ops whose gradients read their inputs, so second order is
  // safe); running statistics are not needed here and not computed.
  const norm: NormContext | undefined = opts.training ? { training: true } : undefined;
  const wanted = new Set(opts.taps ?? []);
  let h =
    x.shape.length === spec.inputShape.length + 1
      ? x
      : tf.reshape(x, [x.shape[0] as number, ...spec.inputShape]);
  const taps: Record<string, tf.Tensor> = {};
  // Layers before the first parametrised one only reshape the data.
  let dataInput = true;
  for (const layer of spec.layers) {
    h = applyLayer(layer, params, h, safeLayerOps, dataInput, norm);
    if (hasParams(layer)) dataInput = false;
    if (wanted.has(layer.name)) taps[layer.name] = h;
    if (layer.name === opts.stopAfter) break;
  }
  for (const t of wanted) {
    if (!(t in taps)) throw new Error(`backbone "${spec.name}": tap "${t}" was not reached`);
  }
  return { features: h, taps };
}
