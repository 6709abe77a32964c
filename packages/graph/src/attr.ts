import { floatTensorProto, type ITensorProto, int64TensorProto } from './proto.js';

/** An attribute value with its ONNX type made explicit (1 and 1.0 differ in ONNX). */
export type OnnxAttr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: ITensorProto };

export const attr = {
  int: (value: number): OnnxAttr => ({ type: 'int', value }),
  float: (value: number): OnnxAttr => ({ type: 'float', value }),
  ints: (value: readonly number[]): OnnxAttr => ({ type: 'ints', value }),
  floats: (value: readonly number[]): OnnxAttr => ({ type: 'floats', value }),
  string: (value: string): OnnxAttr => ({ type: 'string', value }),
  /** A float32 tensor attribute (e.g. Constant's `value`). */
  floatTensor: (data: readonly number[] | Float32Array, dims: readonly number[]): OnnxAttr => ({
    type: 'tensor',
    value: floatTensorProto('', data, dims),
  }),
  /** An int64 tensor attribute (e.g. a Constant shape). */
  int64Tensor: (data: readonly number[], dims: readonly number[]): OnnxAttr => ({
    type: 'tensor',
    value: int64TensorProto('', data, dims),
  }),
};
