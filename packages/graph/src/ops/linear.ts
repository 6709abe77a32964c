/** Gemm and MatMul. */

import { attr, type OnnxAttr } from '../attr.js';
import type { OnnxDim } from '../builder.js';
import type { OpRule } from './types.js';
import { broadcastShapes, dimsOf, emit, floatAttr, intAttr, sumToShapeOf, typeOf } from './util.js';

function scaled(g: Parameters<typeof emit.mul>[0], x: string, alpha: number): string {
  return alpha === 1 ? x : emit.mul(g, x, g.scalar(alpha, 'alpha'));
}

export const linearRules: Record<string, OpRule> = {
  /**
   * Matrix inverse (onnxruntime's com.microsoft.Inverse, batched over leading
   * axes). d(A⁻¹) = −A⁻¹ dA A⁻¹, so ∂L/∂A = −A⁻ᵀ G A⁻ᵀ, written with the
   * output Y = A⁻¹ so the rule differentiates again.
   */
  Inverse: {
    infer: (node, g) => {
      const a = dimsOf(g, node, 0);
      if (a.length < 2) throw new Error('Inverse needs a matrix');
      return [{ elemType: typeOf(g, node, 0), dims: a }];
    },
    grad: ({ g, node, dOut }) => {
      const y = node.outputs[0] as string;
      const r = (g.dims(y) as readonly OnnxDim[]).length;
      const perm = Array.from({ length: r }, (_, i) => i);
      perm[r - 2] = r - 1;
      perm[r - 1] = r - 2;
      const yt = emit.transpose(g, y, perm);
      return [emit.neg(g, g.op('MatMul', [g.op('MatMul', [yt, dOut[0] as string]), yt]))];
    },
  },
  Gemm: {
    infer: (node, g) => {
      const a = dimsOf(g, node, 0);
      const b = dimsOf(g, node, 1);
      if (a.length !== 2 || b.length !== 2) throw new Error('Gemm needs 2-D A and B');
      const m = intAttr(node, 'transA', 0) ? a[1] : a[0];
      const n = intAttr(node, 'transB', 0) ? b[0] : b[1];
      return [{ elemType: typeOf(g, node, 0), dims: [m as OnnxDim, n as OnnxDim] }];
    },
    // Y = α·op(A)·op(B) + β·C
    grad: ({ g, node, dOut, needs }) => {
      const dy = dOut[0] as string;
      const [a, b, c] = node.inputs as [string, string, string?];
      const tA = intAttr(node, 'transA', 0);
      const tB = intAttr(node, 'transB', 0);
      const alpha = floatAttr(node, 'alpha', 1);
      const beta = floatAttr(node, 'beta', 1);
      const al: Record<string, OnnxAttr> = alpha === 1 ? {} : { alpha: attr.float(alpha) };
      let da: string | undefined;
      let db: string | undefined;
      if (needs(0))
        da = tA
          ? g.op('Gemm', [b, dy], { ...al, transA: attr.int(tB), transB: attr.int(1) })
          : g.op('Gemm', [dy, b], { ...al, transB: attr.int(1 - tB) });
      if (needs(1))
        db = tB
          ? g.op('Gemm', [dy, a], { ...al, transA: attr.int(1), transB: attr.int(tA) })
          : g.op('Gemm', [a, dy], { ...al, transA: attr.int(1 - tA) });
      const dc = c && needs(2) ? sumToShapeOf(g, scaled(g, dy, beta), c) : undefined;
      return [da, db, dc];
    },
  },
  MatMul: {
    infer: (node, g) => {
      const a = dimsOf(g, node, 0);
      const b = dimsOf(g, node, 1);
      if (a.length < 2 || b.length < 2) throw new Error('MatMul: 1-D operands are not supported');
      const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
      return [
        {
          elemType: typeOf(g, node, 0),
          dims: [...batch, a[a.length - 2] as OnnxDim, b[b.length - 1] as OnnxDim],
        },
      ];
    },
    grad: ({ g, node, dOut, needs }) => {
      const dy = dOut[0] as string;
      const [a, b] = node.inputs as [string, string];
      const swapLast = (x: string) => {
        const r = (g.dims(x) as readonly OnnxDim[]).length;
        const perm = Array.from({ length: r }, (_, i) => i);
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 2;
        return emit.transpose(g, x, perm);
      };
      return [
        needs(0) ? sumToShapeOf(g, g.op('MatMul', [dy, swapLast(b)]), a) : undefined,
        needs(1) ? sumToShapeOf(g, g.op('MatMul', [swapLast(a), dy]), b) : undefined,
      ];
    },
  },
};
