/** Ops that move values around: reshapes, transposes, slices, pads, constants, indices. */

import type { OnnxDim, ValueInfo } from '../builder.js';
import { DT } from '../proto.js';
import type { OpRule } from './types.js';
import {
  constInput,
  dimsOf,
  emit,
  intAttr,
  intsAttr,
  normAxis,
  stringAttr,
  sumToShapeOf,
  typeOf,
} from './util.js';

const product = (d: readonly OnnxDim[]): OnnxDim =>
  d.every((v) => typeof v === 'number')
    ? (d as number[]).reduce((a, b) => a * b, 1)
    : d.length === 1
      ? (d[0] as OnnxDim)
      : `prod(${d.join('*')})`;

/** Back through any op that only changes the shape: reshape the gradient like the input. */
const reshapeBack: OpRule['grad'] = ({ g, node, dOut }) => [
  emit.reshapeLike(g, dOut[0] as string, node.inputs[0] as string),
];

function sliceParams(
  g: Parameters<NonNullable<OpRule['grad']>>[0]['g'],
  node: Parameters<OpRule['infer']>[0],
) {
  const dims = dimsOf(g, node, 0);
  const starts = constInput(g, node, 1);
  const ends = constInput(g, node, 2);
  const axes = node.inputs[3] ? constInput(g, node, 3) : starts.map((_, i) => i);
  const steps = node.inputs[4] ? constInput(g, node, 4) : starts.map(() => 1);
  if (steps.some((s) => s !== 1)) throw new Error('Slice: only steps of 1 are supported');
  const ranges = dims.map((d) => ({ begin: 0, end: d, size: d as OnnxDim }));
  axes.forEach((ax, k) => {
    const a = normAxis(ax, dims.length);
    const d = dims[a];
    if (typeof d !== 'number')
      throw new Error(`Slice along a symbolic axis (${d}) is not supported`);
    const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
    const b = clamp(starts[k] as number);
    const e = clamp(ends[k] as number);
    ranges[a] = { begin: b, end: e, size: Math.max(0, e - b) };
  });
  return { dims, ranges };
}

export const shapeRules: Record<string, OpRule> = {
  Reshape: {
    infer: (node, g) => {
      const x = dimsOf(g, node, 0);
      const target = g.constant(node.inputs[1] as string);
      if (!target) return [{ elemType: typeOf(g, node, 0) }];
      const out: OnnxDim[] = target.map((v, i) => (v === 0 ? (x[i] as OnnxDim) : v));
      const minus = out.indexOf(-1);
      if (minus >= 0) {
        const known = out.filter((_, i) => i !== minus);
        const numeric = (d: readonly OnnxDim[]) =>
          d.filter((v): v is number => typeof v === 'number').reduce((a, b) => a * b, 1);
        const symbols = (d: readonly OnnxDim[]) => d.filter((v) => typeof v === 'string');
        const xs = symbols(x);
        const ks = symbols(known);
        const ratio = numeric(x) / numeric(known);
        if (xs.length === ks.length && xs.every((v, i) => v === ks[i])) out[minus] = ratio;
        else if (xs.length === 1 && ks.length === 0)
          out[minus] = ratio === 1 ? (xs[0] as string) : `${xs[0]}*${ratio}`;
        else out[minus] = `reshape(${x.join('*')})`;
      }
      return [{ elemType: typeOf(g, node, 0), dims: out }];
    },
    grad: reshapeBack,
  },
  Flatten: {
    infer: (node, g) => {
      const x = dimsOf(g, node, 0);
      const axis = normAxis(intAttr(node, 'axis', 1), x.length + 1);
      return [
        {
          elemType: typeOf(g, node, 0),
          dims: [product(x.slice(0, axis)), product(x.slice(axis))],
        },
      ];
    },
    grad: reshapeBack,
  },
  Squeeze: {
    infer: (node, g) => {
      const x = dimsOf(g, node, 0);
      const axes = (node.inputs[1] ? constInput(g, node, 1) : (intsAttr(node, 'axes') ?? [])).map(
        (a) => normAxis(a, x.length),
      );
      const dims = x.filter((d, i) => (axes.length ? !axes.includes(i) : d !== 1));
      return [{ elemType: typeOf(g, node, 0), dims }];
    },
    grad: reshapeBack,
  },
  Unsqueeze: {
    infer: (node, g) => {
      const x = dimsOf(g, node, 0);
      const raw = node.inputs[1] ? constInput(g, node, 1) : (intsAttr(node, 'axes') ?? []);
      const rank = x.length + raw.length;
      const axes = raw.map((a) => normAxis(a, rank));
      const dims: OnnxDim[] = [];
      let k = 0;
      for (let i = 0; i < rank; i++) dims.push(axes.includes(i) ? 1 : (x[k++] as OnnxDim));
      return [{ elemType: typeOf(g, node, 0), dims }];
    },
    grad: reshapeBack,
  },
  Transpose: {
    infer: (node, g) => {
      const x = dimsOf(g, node, 0);
      const perm = intsAttr(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      return [{ elemType: typeOf(g, node, 0), dims: perm.map((p) => x[p] as OnnxDim) }];
    },
    grad: ({ g, node, dOut }) => {
      const x = g.dims(node.inputs[0] as string) as readonly OnnxDim[];
      const perm = intsAttr(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      const inverse = perm.map((_, i) => perm.indexOf(i));
      return [emit.transpose(g, dOut[0] as string, inverse)];
    },
  },
  Concat: {
    infer: (node, g) => {
      const first = dimsOf(g, node, 0);
      const axis = normAxis(intAttr(node, 'axis', 0), first.length);
      const sizes = node.inputs.map((_, i) => dimsOf(g, node, i)[axis]);
      const total = sizes.every((s) => typeof s === 'number')
        ? (sizes as number[]).reduce((a, b) => a + b, 0)
        : `concat(${sizes.join('+')})`;
      const dims = [...first];
      dims[axis] = total;
      return [{ elemType: typeOf(g, node, 0), dims }];
    },
    grad: ({ g, node, dOut, needs }) => {
      const first = g.dims(node.inputs[0] as string) as readonly OnnxDim[];
      const axis = normAxis(intAttr(node, 'axis', 0), first.length);
      let offset = 0;
      return node.inputs.map((input, i) => {
        const size = (g.dims(input) as readonly OnnxDim[])[axis];
        if (typeof size !== 'number')
          throw new Error(`Concat gradient along a symbolic axis (${size}) is not supported`);
        const begin = offset;
        offset += size;
        if (!needs(i)) return undefined;
        return g.op('Slice', [
          dOut[0] as string,
          g.ints([begin], 'starts'),
          g.ints([begin + size], 'ends'),
          g.ints([axis], 'axes'),
        ]);
      });
    },
  },
  Slice: {
    infer: (node, g) => {
      const { ranges } = sliceParams(g, node);
      return [{ elemType: typeOf(g, node, 0), dims: ranges.map((r) => r.size) }];
    },
    // Back through a slice: pad the gradient with zeros to the input's extent.
    grad: ({ g, node, dOut }) => {
      const { dims, ranges } = sliceParams(g, node);
      const begins = ranges.map((r) => r.begin);
      const ends = ranges.map((r, i) =>
        typeof dims[i] === 'number' ? (dims[i] as number) - (r.end as number) : 0,
      );
      return [g.op('Pad', [dOut[0] as string, g.ints([...begins, ...ends], 'pads')])];
    },
  },
  Pad: {
    infer: (node, g) => {
      const x = dimsOf(g, node, 0);
      const pads = constInput(g, node, 1);
      if (node.inputs[3]) throw new Error('Pad: the axes input is not supported');
      const r = x.length;
      const dims = x.map((d, i) => {
        const add = (pads[i] as number) + (pads[i + r] as number);
        if (add === 0) return d;
        if (typeof d !== 'number')
          throw new Error(`Pad along a symbolic axis (${d}) is not supported`);
        return d + add;
      });
      return [{ elemType: typeOf(g, node, 0), dims }];
    },
    grad: ({ g, node, dOut }) => {
      if (stringAttr(node, 'mode', 'constant') !== 'constant')
        throw new Error('Pad: only constant padding has a gradient rule');
      const x = g.dims(node.inputs[0] as string) as readonly OnnxDim[];
      const pads = g.constant(node.inputs[1] as string) as readonly number[];
      const r = x.length;
      const axes: number[] = [];
      const starts: number[] = [];
      const ends: number[] = [];
      for (let i = 0; i < r; i++) {
        const b = pads[i] as number;
        const e = pads[i + r] as number;
        if (b === 0 && e === 0) continue;
        if (b < 0 || e < 0) throw new Error('Pad: negative pads have no gradient rule');
        axes.push(i);
        starts.push(b);
        ends.push(b + (x[i] as number));
      }
      if (axes.length === 0) return [dOut[0]];
      return [
        g.op('Slice', [
          dOut[0] as string,
          g.ints(starts, 'starts'),
          g.ints(ends, 'ends'),
          g.ints(axes, 'axes'),
        ]),
      ];
    },
  },
  Expand: {
    infer: (node, g) => {
      const x = dimsOf(g, node, 0);
      const shape = g.constant(node.inputs[1] as string);
      if (!shape) {
        const s = g.dims(node.inputs[1] as string);
        const rank = Math.max(x.length, (s?.[0] as number) ?? x.length);
        return [
          {
            elemType: typeOf(g, node, 0),
            dims: Array.from({ length: rank }, (_, i) => `expand${i}`),
          },
        ];
      }
      const rank = Math.max(x.length, shape.length);
      const dims: OnnxDim[] = [];
      for (let i = 0; i < rank; i++) {
        const a = x[x.length - rank + i] ?? 1;
        const b = shape[shape.length - rank + i] ?? 1;
        dims.push(a === 1 ? b : a);
      }
      return [{ elemType: typeOf(g, node, 0), dims }];
    },
    grad: ({ g, node, dOut }) => [sumToShapeOf(g, dOut[0] as string, node.inputs[0] as string)],
  },
  Shape: {
    infer: (node, g) => [{ elemType: DT.INT64, dims: [dimsOf(g, node, 0).length] }],
    nonDifferentiable: true,
  },
  Size: { infer: () => [{ elemType: DT.INT64, dims: [] }], nonDifferentiable: true },
  Constant: {
    infer: (node) => {
      const v = node.attrs.value;
      if (v?.type !== 'tensor')
        throw new Error('Constant: only the "value" tensor form is supported');
      return [{ elemType: v.value.dataType ?? DT.FLOAT, dims: (v.value.dims ?? []).map(Number) }];
    },
    nonDifferentiable: true,
  },
  ConstantOfShape: {
    infer: (node, g) => {
      const s = g.constant(node.inputs[0] as string);
      const v = node.attrs.value;
      const elemType = v?.type === 'tensor' ? (v.value.dataType ?? DT.FLOAT) : DT.FLOAT;
      return [{ elemType, ...(s ? { dims: s } : {}) }];
    },
    nonDifferentiable: true,
  },
  OneHot: {
    infer: (node, g): ValueInfo[] => {
      const idx = dimsOf(g, node, 0);
      const depth = g.constant(node.inputs[1] as string);
      const d: OnnxDim = depth ? (depth[0] as number) : 'depth';
      const axis = intAttr(node, 'axis', -1);
      const rank = idx.length + 1;
      const a = normAxis(axis, rank);
      const dims = [...idx];
      dims.splice(a, 0, d);
      return [{ elemType: typeOf(g, node, 2), dims }];
    },
    nonDifferentiable: true,
  },
  Gather: {
    infer: (node, g) => {
      const data = dimsOf(g, node, 0);
      const idx = dimsOf(g, node, 1);
      const axis = normAxis(intAttr(node, 'axis', 0), data.length);
      return [
        {
          elemType: typeOf(g, node, 0),
          dims: [...data.slice(0, axis), ...idx, ...data.slice(axis + 1)],
        },
      ];
    },
    // Gathers of shapes and indices only: a float Gather that needs a gradient is refused by the autodiff.
  },
};
