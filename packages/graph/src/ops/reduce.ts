/** Reductions and the softmax family. */

import { attr } from '../attr.js';
import type { GraphNode, OnnxDim, OnnxGraphBuilder } from '../builder.js';
import { DT } from '../proto.js';
import type { OpRule } from './types.js';
import { constInput, dimsOf, emit, intAttr, intsAttr, normAxis, typeOf } from './util.js';

/** The reduced axes of a Reduce* node (attribute before opset 18 / ReduceSum 13, input after). */
function reduceAxes(node: GraphNode, g: OnnxGraphBuilder): number[] {
  const x = dimsOf(g, node, 0);
  const raw = node.inputs[1] ? constInput(g, node, 1) : intsAttr(node, 'axes');
  if (!raw || raw.length === 0) {
    if (intAttr(node, 'noop_with_empty_axes', 0)) return [];
    return x.map((_, i) => i);
  }
  return raw.map((a) => normAxis(a, x.length));
}

function reduceInfer(node: GraphNode, g: OnnxGraphBuilder) {
  const x = dimsOf(g, node, 0);
  const axes = reduceAxes(node, g);
  const keep = intAttr(node, 'keepdims', 1) === 1;
  const dims: OnnxDim[] = [];
  x.forEach((d, i) => {
    if (!axes.includes(i)) dims.push(d);
    else if (keep) dims.push(1);
  });
  return [{ elemType: typeOf(g, node, 0), dims }];
}

/** Back through a sum: the gradient, with the reduced axes restored as 1s, broadcast over the input. */
function expandBack(g: OnnxGraphBuilder, node: GraphNode, dy: string): string {
  const x = node.inputs[0] as string;
  const xd = g.dims(x) as readonly OnnxDim[];
  const axes = reduceAxes(node, g);
  let kept = dy;
  if (intAttr(node, 'keepdims', 1) !== 1 && axes.length > 0)
    kept = g.op('Unsqueeze', [dy, g.ints(axes, 'axes')]);
  // Broadcasting by a multiply with ones of the input's shape is faster in onnxruntime than Expand.
  const expanded = g.op('Expand', [kept, g.op('Shape', [x])]);
  g.setDims(expanded, xd);
  return expanded;
}

export const reduceRules: Record<string, OpRule> = {
  ReduceSum: {
    infer: reduceInfer,
    grad: ({ g, node, dOut }) => [expandBack(g, node, dOut[0] as string)],
  },
  ReduceMean: {
    infer: reduceInfer,
    grad: ({ g, node, dOut }) => {
      const x = node.inputs[0] as string;
      const xd = g.dims(x) as readonly OnnxDim[];
      const axes = reduceAxes(node, g);
      const counted = axes.map((a) => xd[a]);
      // The divisor: a constant when the reduced dims are known, else sizes at run time.
      const count = counted.every((d) => typeof d === 'number')
        ? g.scalar(
            (counted as number[]).reduce((a, b) => a * b, 1),
            'count',
          )
        : emit.div(
            g,
            g.op('Cast', [g.op('Size', [x])], { to: attr.int(DT.FLOAT) }),
            g.op('Cast', [g.op('Size', [node.outputs[0] as string])], { to: attr.int(DT.FLOAT) }),
          );
      return [expandBack(g, node, emit.div(g, dOut[0] as string, count))];
    },
  },
  LogSoftmax: {
    infer: (node, g) => [{ elemType: typeOf(g, node, 0), dims: dimsOf(g, node, 0) }],
    // dx = dy − softmax(x)·Σ dy
    grad: ({ g, node, dOut }) => {
      const dy = dOut[0] as string;
      const axis = normAxis(intAttr(node, 'axis', -1), dimsOf(g, node, 0).length);
      const sum = emit.reduceSum(g, dy, [axis], true);
      return [emit.sub(g, dy, emit.mul(g, g.op('Exp', [node.outputs[0] as string]), sum))];
    },
  },
  Softmax: {
    infer: (node, g) => [{ elemType: typeOf(g, node, 0), dims: dimsOf(g, node, 0) }],
    // dx = y·(dy − Σ dy·y)
    grad: ({ g, node, dOut }) => {
      const dy = dOut[0] as string;
      const y = node.outputs[0] as string;
      const axis = normAxis(intAttr(node, 'axis', -1), dimsOf(g, node, 0).length);
      const sum = emit.reduceSum(g, emit.mul(g, dy, y), [axis], true);
      return [emit.mul(g, y, emit.sub(g, dy, sum))];
    },
  },
};
