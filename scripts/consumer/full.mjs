// Every package, with onnxruntime-node: an ONNX graph written by
// @transferlab/graph, run by onnxruntime, and the bench CLI's entry.
import { DT, OnnxGraphBuilder, runGraphOnce } from '@transferlab/graph';
import { SUPPORTED_ONNX_OPS } from '@transferlab/models';

const g = new OnnxGraphBuilder('consumer');
const x = g.input('x', [2, 3]);
g.output(g.op('Relu', [x], {}, 'y'), [2, 3]);
const out = await runGraphOnce(g.toBytes({ opset: 18 }), {
  x: { data: Float32Array.from([-1, 2, -3, 4, -5, 6]), dims: [2, 3] },
});
const y = Array.from(out.y.data);
if (y.join() !== '0,2,0,4,0,6') throw new Error(`Relu gave ${y}`);
console.log(
  `full ok: onnxruntime ran a graph (${DT.FLOAT}), ${SUPPORTED_ONNX_OPS.length} importable ops`,
);
