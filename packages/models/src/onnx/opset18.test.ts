/**
 * A model at opset 18 / IR 9, written with the project's own builder and
 * protobuf layer: the opset 13–18 forms the importer must read (ReduceMean /
 * ReduceSum axes as an input, LayerNormalization, a GELU built from Erf),
 * checked against onnxruntime like any imported file.
 */

import { initBackend } from '@transferlab/core';
import { attr, DT, OnnxGraphBuilder, onnx } from '@transferlab/graph';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkOnnxAgainstRuntime } from './check.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

function buildModel(): Uint8Array {
  const g = new OnnxGraphBuilder('opset18');
  const x = g.input('x', ['N', 4, 6]);
  const w = g.initializer(
    'w',
    Float32Array.from({ length: 36 }, (_, i) => Math.sin(i) / 3),
    [6, 6],
  );
  const h = g.op('MatMul', [x, w]);
  // Layer norm by hand, opset-18 style: ReduceMean reads its axes from input 1.
  const last = g.ints([-1], 'last');
  const mean = g.op('ReduceMean', [h, last]);
  const c = g.op('Sub', [h, mean]);
  const variance = g.op('ReduceMean', [g.op('Mul', [c, c]), last]);
  const std = g.op('Sqrt', [g.op('Add', [variance, g.scalar(1e-5)])]);
  const normed = g.op('Div', [c, std]);
  // The same through the opset-17 LayerNormalization op, then GELU as exported by PyTorch.
  const scale = g.initializer(
    'ln_scale',
    Float32Array.from({ length: 6 }, (_, i) => 1 + i / 10),
    [6],
  );
  const bias = g.initializer(
    'ln_bias',
    Float32Array.from({ length: 6 }, (_, i) => i / 20 - 0.1),
    [6],
  );
  const ln = g.op('LayerNormalization', [g.op('Add', [normed, h]), scale, bias], {
    axis: attr.int(-1),
    epsilon: attr.float(1e-5),
  });
  const erf = g.op('Erf', [g.op('Div', [ln, g.scalar(Math.SQRT2)])]);
  const gelu = g.op('Mul', [g.op('Mul', [ln, g.op('Add', [erf, g.scalar(1)])]), g.scalar(0.5)]);
  // ReduceSum with axes as input (opset 13+), keepdims 0: [N, 4, 6] → [N, 6].
  const pooled = g.op('ReduceSum', [gelu, g.ints([1], 'seq')], { keepdims: attr.int(0) });
  g.output(g.op('Pow', [pooled, g.scalar(2)], {}, 'y'), ['N', 6]);
  return g.toBytes({ opset: 18, irVersion: 9 });
}

describe('an opset-18, IR-9 model from the project writer', () => {
  it('round-trips through the protobuf layer with its versions', () => {
    const model = onnx.ModelProto.decode(buildModel());
    expect(model.irVersion).toBe(9);
    expect(model.opsetImport?.[0]).toMatchObject({ domain: '', version: 18 });
    const reduce = model.graph?.node?.find((n) => n.opType === 'ReduceMean');
    expect(reduce?.input).toHaveLength(2);
    expect(model.graph?.input?.[0]?.type?.tensorType?.elemType).toBe(DT.FLOAT);
  });

  it('imports and matches onnxruntime', async () => {
    const r = await checkOnnxAgainstRuntime(buildModel(), {
      source: 'opset18.onnx',
      inputShape: [4, 6],
      n: 3,
    });
    expect(r.outputShape).toEqual([6]);
    expect(r.maxAbs).toBeGreaterThan(0.1);
    expect(r.relDiff).toBeLessThan(1e-4);
  });
});
