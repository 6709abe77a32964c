import { describe, expect, it } from 'vitest';
import { irVersionForOpset, OnnxGraphBuilder } from './builder.js';
import { onnx } from './proto.js';
import { runGraphOnce } from './runtime.js';

describe('irVersionForOpset', () => {
  it("follows ONNX's release table, and onnxruntime loads what it writes at opsets 13, 18, 19 and 21", async () => {
    expect([8, 10, 11, 13, 17, 18, 19, 20, 21].map(irVersionForOpset)).toEqual([
      3, 5, 6, 7, 8, 8, 9, 9, 10,
    ]);
    for (const opset of [13, 18, 19, 21]) {
      const g = new OnnxGraphBuilder('relu');
      g.output(g.op('Relu', [g.input('x', [2])], {}, 'y'));
      const bytes = g.toBytes({ opset });
      expect(onnx.ModelProto.decode(bytes).irVersion).toBe(irVersionForOpset(opset));
      const out = await runGraphOnce(bytes, { x: { data: Float32Array.of(-1, 2), dims: [2] } });
      expect(Array.from(out.y?.data as Float32Array)).toEqual([0, 2]);
    }
  });
});
