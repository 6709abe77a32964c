// @transferlab/core + @transferlab/methods with tfjs from the app: no
// onnxruntime-node, no data corpus, no weights.
import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, softmaxCrossEntropy } from '@transferlab/core';
import { fineTune, linearProbe, scratch } from '@transferlab/methods';

const info = await initBackend({ backend: 'cpu' });
const rng = createRng(0);
const logits = tf.tensor2d(rng.normalArray(8), [4, 2]);
const loss = softmaxCrossEntropy(logits, tf.tensor1d([0, 1, 0, 1], 'int32'));
const value = (await loss.data())[0];
if (!Number.isFinite(value)) throw new Error(`loss is ${value}`);
console.log(
  `methods ok: backend ${info.name}, methods ${[scratch, linearProbe, fineTune].map((m) => m.id)}, loss ${value.toFixed(3)}`,
);
