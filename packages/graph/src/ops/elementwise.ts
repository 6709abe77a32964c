/** Elementwise ops: arithmetic with broadcasting, activations, casts, comparisons. */
import { DT } from '../proto.js';
import type { OpRule } from './types.js';
import { boolOut, broadcastInfer, emit, same, sameShape, sumToShapeOf, typeOf } from './util.js';

const nonDiffBool: OpRule = { infer: boolOut(), nonDifferentiable: true };

export const elementwiseRules: Record<string, OpRule> = {
  Identity: { infer: same(), grad: ({ dOut }) => [dOut[0]] },
  Add: {
    infer: broadcastInfer,
    grad: ({ g, node, dOut, needs }) => {
      const dy = dOut[0] as string;
      return [
        needs(0) ? sumToShapeOf(g, dy, node.inputs[0] as string) : undefined,
        needs(1) ? sumToShapeOf(g, dy, node.inputs[1] as string) : undefined,
      ];
    },
  },
  Sum: {
    infer: broadcastInfer,
    grad: ({ g, node, dOut, needs }) =>
      node.inputs.map((inp, i) => (needs(i) ? sumToShapeOf(g, dOut[0] as string, inp) : undefined)),
  },
  Sub: {
    infer: broadcastInfer,
    grad: ({ g, node, dOut, needs }) => {
      const dy = dOut[0] as string;
      return [
        needs(0) ? sumToShapeOf(g, dy, node.inputs[0] as string) : undefined,
        // Negate after the broadcast sum: on the (smaller) summed gradient.
        needs(1) ? emit.neg(g, sumToShapeOf(g, dy, node.inputs[1] as string)) : undefined,
      ];
    },
  },
  Mul: {
    infer: broadcastInfer,
    grad: ({ g, node, dOut, needs, compact }) => {
      const dy = dOut[0] as string;
      const [a, b] = node.inputs as [string, string];
      // A broadcast gradient (an Expand) times an operand of the output's shape: broadcast it instead.
      const outDims = g.dims(node.outputs[0] as string);
      const dyTimes = (other: string) => {
        const c = compact?.(dy);
        return c && sameShape(g.dims(other), outDims) ? c : dy;
      };
      if (a === b) {
        // x·x: one gradient 2·x·dy instead of two summed.
        if (!needs(0)) return [undefined, undefined];
        const d = dyTimes(a);
        const two = g.scalar(2, 'two');
        const twice =
          d === dy ? emit.mul(g, emit.mul(g, dy, a), two) : emit.mul(g, emit.mul(g, d, two), a);
        return [sumToShapeOf(g, twice, a), undefined];
      }
      return [
        needs(0) ? sumToShapeOf(g, emit.mul(g, dyTimes(b), b), a) : undefined,
        needs(1) ? sumToShapeOf(g, emit.mul(g, dyTimes(a), a), b) : undefined,
      ];
    },
  },
  Div: {
    infer: broadcastInfer,
    grad: ({ g, node, dOut, needs }) => {
      const dy = dOut[0] as string;
      const [a, b] = node.inputs as [string, string];
      const y = node.outputs[0] as string;
      return [
        needs(0) ? sumToShapeOf(g, emit.div(g, dy, b), a) : undefined,
        // d(a/b)/db = −(a/b)/b
        needs(1) ? sumToShapeOf(g, emit.neg(g, emit.div(g, emit.mul(g, dy, y), b)), b) : undefined,
      ];
    },
  },
  Neg: { infer: same(), grad: ({ g, dOut }) => [emit.neg(g, dOut[0] as string)] },
  Relu: {
    infer: same(),
    // PyTorch's and tfjs's convention: no gradient at 0. The mask reads the
    // OUTPUT (y > 0 ⇔ x > 0): the input stays private to the forward node,
    // so onnxruntime can fuse it into a Conv (FusedConv) instead of writing it out.
    grad: ({ g, node, dOut }) => [
      emit.mul(
        g,
        dOut[0] as string,
        emit.mask(g, g.op('Greater', [node.outputs[0] as string, g.scalar(0, 'zero')])),
      ),
    ],
  },
  Sigmoid: {
    infer: same(),
    grad: ({ g, node, dOut }) => {
      const y = node.outputs[0] as string;
      return [emit.mul(g, dOut[0] as string, emit.mul(g, y, emit.sub(g, g.scalar(1, 'one'), y)))];
    },
  },
  Tanh: {
    infer: same(),
    grad: ({ g, node, dOut }) => {
      const y = node.outputs[0] as string;
      return [emit.mul(g, dOut[0] as string, emit.sub(g, g.scalar(1, 'one'), emit.mul(g, y, y)))];
    },
  },
  Exp: {
    infer: same(),
    grad: ({ g, node, dOut }) => [emit.mul(g, dOut[0] as string, node.outputs[0] as string)],
  },
  Log: {
    infer: same(),
    grad: ({ g, node, dOut }) => [emit.div(g, dOut[0] as string, node.inputs[0] as string)],
  },
  Sqrt: {
    infer: same(),
    grad: ({ g, node, dOut }) => [
      emit.div(g, dOut[0] as string, emit.mul(g, node.outputs[0] as string, g.scalar(2, 'two'))),
    ],
  },
  Reciprocal: {
    infer: same(),
    grad: ({ g, node, dOut }) => {
      const y = node.outputs[0] as string;
      return [emit.neg(g, emit.mul(g, dOut[0] as string, emit.mul(g, y, y)))];
    },
  },
  Pow: {
    infer: (node, g) => [
      { elemType: typeOf(g, node, 0), dims: broadcastInfer(node, g)[0]?.dims ?? [] },
    ],
    grad: ({ g, node, dOut, needs }) => {
      const dy = dOut[0] as string;
      const [x, p] = node.inputs as [string, string];
      // d(x^p)/dx = p·x^(p−1); d(x^p)/dp = x^p·ln x
      const dx = needs(0)
        ? sumToShapeOf(
            g,
            emit.mul(g, dy, emit.mul(g, p, g.op('Pow', [x, emit.sub(g, p, g.scalar(1, 'one'))]))),
            x,
          )
        : undefined;
      const dp = needs(1)
        ? sumToShapeOf(
            g,
            emit.mul(g, dy, emit.mul(g, node.outputs[0] as string, g.op('Log', [x]))),
            p,
          )
        : undefined;
      return [dx, dp];
    },
  },
  Clip: {
    infer: same(),
    // Gradient where min < x < max (PyTorch's hardtanh/ReLU6 convention); none to the bounds.
    // Read from the output (min < y < max ⇔ min < x < max), as Relu: the
    // input can then fuse into the Conv that produces it.
    grad: ({ g, node, dOut }) => {
      const [, lo, hi] = node.inputs as [string, string?, string?];
      const y = node.outputs[0] as string;
      let mask: string | undefined;
      const and = (m: string) => (mask ? emit.mul(g, mask, m) : m);
      if (lo) mask = and(emit.mask(g, g.op('Greater', [y, lo])));
      if (hi) mask = and(emit.mask(g, g.op('Less', [y, hi])));
      return [mask ? emit.mul(g, dOut[0] as string, mask) : dOut[0]];
    },
  },
  Cast: {
    infer: (node, g) => {
      const to = node.attrs.to;
      if (to?.type !== 'int') throw new Error('Cast needs an int attribute "to"');
      const dims = g.dims(node.inputs[0] as string);
      return [{ elemType: to.value, ...(dims ? { dims } : {}) }];
    },
    // Float to float passes the gradient; anything else carries none (see the autodiff).
    grad: ({ dOut }) => [dOut[0]],
  },
  Where: {
    infer: (node, g) => {
      const b = broadcastInfer(node, g)[0];
      return [{ elemType: typeOf(g, node, 1), ...(b?.dims ? { dims: b.dims } : {}) }];
    },
    grad: ({ g, node, dOut, needs }) => {
      const dy = dOut[0] as string;
      const [c, a, b] = node.inputs as [string, string, string];
      const m = emit.mask(g, c);
      return [
        undefined,
        needs(1) ? sumToShapeOf(g, emit.mul(g, dy, m), a) : undefined,
        needs(2)
          ? sumToShapeOf(g, emit.mul(g, dy, emit.sub(g, g.scalar(1, 'one'), m)), b)
          : undefined,
      ];
    },
  },
  Greater: nonDiffBool,
  Less: nonDiffBool,
  GreaterOrEqual: nonDiffBool,
  LessOrEqual: nonDiffBool,
  Equal: nonDiffBool,
  And: nonDiffBool,
  Or: nonDiffBool,
  Not: {
    infer: (node, g) => [{ elemType: DT.BOOL, dims: g.dims(node.inputs[0] as string) ?? [] }],
    nonDifferentiable: true,
  },
};
