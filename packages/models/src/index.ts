export {
  type Backbone,
  type BackboneOutput,
  type BackboneSpec,
  cnnSpec,
  createBackbone,
  mlpSpec,
} from './backbone.js';
export { decodeParams, encodeParams, loadParams, saveParams } from './checkpoint.js';
export { type LinearHead, linearHead } from './head.js';
export {
  type Activation,
  applyLayer,
  type LayerSpec,
  layerParamShapes,
  outputShape,
} from './layers.js';
export { type BackboneFactory, builtinBackbones, createBackboneRegistry } from './registry.js';
