export {
  type ApplyOptions,
  type Backbone,
  type BackboneOutput,
  type BackboneSpec,
  cnnSpec,
  createBackbone,
  mlpSpec,
  requireSpec,
  resnetSpec,
  type SpecBackbone,
} from './backbone.js';
export { decodeParams, encodeParams, loadParams, saveParams } from './checkpoint.js';
export { type LinearHead, linearHead } from './head.js';
export {
  type Activation,
  applyLayer,
  type BatchNormOptions,
  hasParams,
  initialValue,
  isStatisticParam,
  type LayerOps,
  type LayerSpec,
  layerParamShapes,
  type NormContext,
  outputShape,
  residualProjects,
  tfjsLayerOps,
  weightInitGain,
} from './layers.js';
export {
  checkOnnxAgainstRuntime,
  type OnnxCheckOptions,
  type OnnxCheckResult,
  onnxOperatorCounts,
} from './onnx/check.js';
export {
  type EmitBackboneOptions,
  type EmittedBackbone,
  emitBackbone,
} from './onnx/emit.js';
export { type ExportOnnxOptions, exportBackboneToOnnx } from './onnx/export.js';
export {
  type ClassifierHeadCut,
  type ExportClassifierOptions,
  exportClassifierToOnnx,
  findClassifierHead,
  onnxGraphInput,
  readOnnxMetadata,
  setOnnxMetadata,
} from './onnx/export-classifier.js';
export {
  type ImportedOnnx,
  type ImportOnnxOptions,
  importOnnx,
  importOnnxFile,
  type OnnxBackbone,
} from './onnx/import.js';
export { SUPPORTED_OPS as SUPPORTED_ONNX_OPS } from './onnx/ops.js';
export {
  createOnnxRuntimeExtractor,
  type OnnxRuntimeExtractor,
  type OnnxRuntimeExtractorOptions,
} from './onnx/runtime.js';
export {
  type LoadNsfwOptions,
  loadNsfwMobileNetV2,
  loadNsfwModel,
  NSFW_CLASSES,
  NSFW_MODELS,
  type NsfwBackbone,
  type NsfwModelName,
  type NsfwPreprocessing,
  nsfwjsModelDir,
  nsfwPreprocessing,
  readNsfwjsModel,
} from './pretrained/nsfw.js';
export {
  type TfjsOnnxModel,
  type TfjsOnnxValue,
  type TfjsToOnnxOptions,
  tfjsToOnnx,
} from './pretrained/tfjs-to-onnx.js';
export {
  decodeTfjsWeights,
  readTfjsModel,
  type TfjsModelArtifacts,
  type TfjsModelJson,
  type TfjsWeight,
  type TfjsWeightSpec,
} from './pretrained/tfjs-weights.js';
export { type BackboneFactory, builtinBackbones, createBackboneRegistry } from './registry.js';
export { decodeSafetensors, encodeSafetensors } from './safetensors.js';
