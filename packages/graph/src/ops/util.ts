import type { OnnxAttr } from '../attr.js';
import { attr } from '../attr.js';
import type { GraphNode, OnnxDim, OnnxGraphBuilder, Shape, ValueInfo } from '../builder.js';
import { DT } from '../proto.js';

export function intAttr(node: GraphNode, name: string, fallback: number): number {
  const a = node.attrs[name];
  if (!a) return fallback;
  if (a.type !== 'int') throw new Error(`attribute "${name}" must be an int`);
  return a.value;
}

export function floatAttr(node: GraphNode, name: string, fallback: number): number {
  const a = node.attrs[name];
  if (!a) return fallback;
  if (a.type !== 'float' && a.type !== 'int')
    throw new Error(`attribute "${name}" must be a float`);
  return a.value;
}

export function intsAttr(node: GraphNode, name: string): readonly number[] | undefined {
  const a = node.attrs[name];
  if (!a) return undefined;
  if (a.type !== 'ints') throw new Error(`attribute "${name}" must be a list of ints`);
  return a.value;
}

export function stringAttr(node: GraphNode, name: string, fallback: string): string {
  const a = node.attrs[name];
  if (!a) return fallback;
  if (a.type !== 'string') throw new Error(`attribute "${name}" must be a string`);
  return a.value;
}

/** The dims of input `i`, or an error naming it. */
export function dimsOf(g: OnnxGraphBuilder, node: GraphNode, i: number): Shape {
  const name = node.inputs[i];
  if (name === undefined || name === '') throw new Error(`input ${i} is missing`);
  const d = g.dims(name);
  if (!d) throw new Error(`the shape of input "${name}" is unknown`);
  return d;
}

export function typeOf(g: OnnxGraphBuilder, node: GraphNode, i: number): number {
  return g.info(node.inputs[i] as string).elemType;
}

/** The values of a constant int64 input (axes, shapes, pads), or an error. */
export function constInput(g: OnnxGraphBuilder, node: GraphNode, i: number): readonly number[] {
  const name = node.inputs[i] ?? '';
  const v = g.constant(name);
  if (!v) throw new Error(`input "${name}" must be a constant (an int64 initializer or Constant)`);
  return v;
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Numpy broadcasting of two shapes; a symbolic dim meets 1 or itself. */
export function broadcastShapes(a: Shape, b: Shape): OnnxDim[] {
  const rank = Math.max(a.length, b.length);
  const out: OnnxDim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x === y || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else if (typeof x === 'string') out.push(y);
    else if (typeof y === 'string') out.push(x);
    else throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
  }
  return out;
}

export const same =
  (i = 0) =>
  (node: GraphNode, g: OnnxGraphBuilder): ValueInfo[] => {
    const info = g.info(node.inputs[i] as string);
    return node.outputs.map(() => ({ ...info }));
  };

export const broadcastInfer = (node: GraphNode, g: OnnxGraphBuilder): ValueInfo[] => {
  let dims: Shape = dimsOf(g, node, 0);
  for (let i = 1; i < node.inputs.length; i++) dims = broadcastShapes(dims, dimsOf(g, node, i));
  return [{ elemType: typeOf(g, node, 0), dims }];
};

export const boolOut =
  (dimsFrom: 'broadcast' | number = 'broadcast') =>
  (node: GraphNode, g: OnnxGraphBuilder): ValueInfo[] => {
    const dims =
      dimsFrom === 'broadcast' ? broadcastInfer(node, g)[0]?.dims : dimsOf(g, node, dimsFrom);
    return [{ elemType: DT.BOOL, ...(dims ? { dims } : {}) }];
  };

export function sameShape(a: Shape | undefined, b: Shape | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Small emit helpers on a builder. */
export const emit = {
  add: (g: OnnxGraphBuilder, a: string, b: string) => g.op('Add', [a, b]),
  sub: (g: OnnxGraphBuilder, a: string, b: string) => g.op('Sub', [a, b]),
  mul: (g: OnnxGraphBuilder, a: string, b: string) => g.op('Mul', [a, b]),
  div: (g: OnnxGraphBuilder, a: string, b: string) => g.op('Div', [a, b]),
  neg: (g: OnnxGraphBuilder, a: string) => g.op('Neg', [a]),
  /** A float mask (1 where true) from a boolean value. */
  mask: (g: OnnxGraphBuilder, bool: string) => g.op('Cast', [bool], { to: attr.int(DT.FLOAT) }),
  /** Reshape to the (runtime) shape of `like`. */
  reshapeLike: (g: OnnxGraphBuilder, x: string, like: string) => {
    const d = g.dims(like);
    if (d?.every((v) => typeof v === 'number')) {
      const cur = g.dims(x);
      if (sameShape(cur, d)) return x;
      return g.op('Reshape', [x, g.ints(d as number[], 'shape')]);
    }
    const out = g.op('Reshape', [x, g.op('Shape', [like])]);
    if (d) g.setDims(out, d);
    return out;
  },
  transpose: (g: OnnxGraphBuilder, x: string, perm: readonly number[]) =>
    g.op('Transpose', [x], { perm: attr.ints(perm) }),
  reduceSum: (g: OnnxGraphBuilder, x: string, axes: readonly number[], keepdims: boolean) =>
    g.op('ReduceSum', [x, g.ints(axes, 'axes')], { keepdims: attr.int(keepdims ? 1 : 0) }),
};

/**
 * The gradient of a broadcast operand: `grad` (shaped like the op's output)
 * summed over the axes that broadcasting stretched, reshaped like `input`.
 */
export function sumToShapeOf(g: OnnxGraphBuilder, grad: string, input: string): string {
  const gd = g.dims(grad);
  const xd = g.dims(input);
  if (!gd || !xd)
    throw new Error(`cannot reduce a broadcast gradient: unknown shape of "${grad}" or "${input}"`);
  if (sameShape(gd, xd)) return grad;
  const lead = gd.length - xd.length;
  const axes: number[] = [];
  for (let i = 0; i < gd.length; i++) {
    if (i < lead) axes.push(i);
    else if (xd[i - lead] === 1 && gd[i] !== 1) axes.push(i);
  }
  const summed = axes.length ? emit.reduceSum(g, grad, axes, true) : grad;
  return emit.reshapeLike(g, summed, input);
}

export type AttrMap = Record<string, OnnxAttr>;
