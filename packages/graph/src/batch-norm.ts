/**
 * Batch normalisation in training mode as primitive ops, so that its
 * gradient (and the gradient of that) comes from the op table rather than a
 * hand-written backward. onnxruntime's BatchNormalization kernel is an
 * inference kernel; this is PyTorch's `model.train()` semantics instead:
 * normalise with the batch mean and biased variance over every axis but the
 * channel axis 1, and update the running statistics with PyTorch's momentum
 * m and the unbiased variance:
 *   running_mean' = (1 − m)·running_mean + m·mean
 *   running_var'  = (1 − m)·running_var + m·var·n/(n − 1)
 */
import { attr } from './attr.js';
import type { OnnxGraphBuilder } from './builder.js';
import { DT } from './proto.js';

export interface BatchNormTrainingOutputs {
  y: string;
  runningMean: string;
  runningVar: string;
}

export function batchNormTraining(
  g: OnnxGraphBuilder,
  x: string,
  p: { scale: string; bias: string; runningMean: string; runningVar: string },
  opts: { epsilon?: number; momentum?: number; name?: string } = {},
): BatchNormTrainingOutputs {
  const dims = g.dims(x);
  if (!dims || dims.length < 2)
    throw new Error(`batchNormTraining: "${x}" needs a known shape [N, C, …], got [${dims}]`);
  const c = dims[1];
  if (typeof c !== 'number')
    throw new Error(`batchNormTraining: the channel count of "${x}" is unknown`);
  const m = opts.momentum ?? 0.1;
  const eps = opts.epsilon ?? 1e-5;
  const axes = dims.map((_, i) => i).filter((i) => i !== 1);
  const perChannel = [1, c, ...dims.slice(2).map(() => 1)];
  const mean = g.op('ReduceMean', [x], { axes: attr.ints(axes), keepdims: attr.int(1) });
  const centered = g.op('Sub', [x, mean]);
  const variance = g.op('ReduceMean', [g.op('Mul', [centered, centered])], {
    axes: attr.ints(axes),
    keepdims: attr.int(1),
  });
  const inv = g.op('Reciprocal', [
    g.op('Sqrt', [g.op('Add', [variance, g.scalar(eps, 'bn_eps')])]),
  ]);
  const shape = g.ints(perChannel, 'bn_shape');
  const scale = g.op('Reshape', [p.scale, shape]);
  const bias = g.op('Reshape', [p.bias, shape]);
  // scale/√(var + ε) per channel first: one full-size product, not two.
  const y = g.op('Add', [g.op('Mul', [centered, g.op('Mul', [inv, scale])]), bias]);
  // Values per channel: known when every reduced axis is; else counted at run time.
  const reduced = axes.map((a) => dims[a]);
  const count = reduced.every((d) => typeof d === 'number')
    ? g.scalar(
        (reduced as number[]).reduce((a, b) => a * b, 1),
        'bn_count',
      )
    : g.op('Div', [
        g.op('Cast', [g.op('Size', [x])], { to: attr.int(DT.FLOAT) }),
        g.scalar(c, 'bn_channels'),
      ]);
  const flat = g.ints([c], 'bn_flat');
  const blend = (running: string, batch: string) =>
    g.op('Add', [
      g.op('Mul', [running, g.scalar(1 - m, 'bn_keep')]),
      g.op('Mul', [g.op('Reshape', [batch, flat]), g.scalar(m, 'bn_momentum')]),
    ]);
  const unbiased = g.op('Mul', [
    variance,
    g.op('Div', [count, g.op('Sub', [count, g.scalar(1, 'one')])]),
  ]);
  return {
    y,
    runningMean: blend(p.runningMean, mean),
    runningVar: blend(p.runningVar, unbiased),
  };
}
