/**
 * The CLI's `fit` and `predict` commands in the shape of cli.ts's command
 * table, so cli.ts only lists them.
 */
import { requireEngine } from '@transferlab/methods';
import { type Command, intOption, list, str } from '../command.js';
import {
  DEFAULT_BUILTIN_SIZE,
  DEFAULT_MEMORY_CAP_MB,
  DEFAULT_SOURCE_EPOCHS,
  FIT_METHODS,
  fitCommand,
  SOURCE_METHODS,
} from './fit.js';
import { predictCommand } from './predict.js';
import { parseLayout } from './preprocess.js';

export type FitCliCommand = Command;

export const fit: FitCliCommand = {
  usage: `pnpm bench fit --data DIR --backbone <id | model.onnx> --out DIR [options]
  train on your own images, report test accuracy per class, write a deployable model.onnx
  --data DIR|ID        images in class folders: DIR/<class>/<img>, or DIR/train|val|test/<class>/<img>
                       (without split folders: 80/10/10 per class, drawn with --seed); or a standard
                       dataset (cifar10, cifar100, flowers102, pets, cub200), downloaded and checked once
  --mirror URL         standard datasets: fetch the files from this base URL instead
  --archive PATH       standard datasets: a local copy of the archive (or a folder of the files)
  --cache DIR          standard datasets: cache folder (default ~/.cache/transferlab)
  --backbone B         a built-in backbone (pnpm bench list), trained from its initialisation,
                       or a pretrained .onnx file (e.g. torch.onnx.export); its classifier layer is cut off
  --out DIR            writes model.onnx (backbone + head, preprocessing in its metadata),
                       metrics.json and params.safetensors
  --method M           ${FIT_METHODS.join(', ')} (default fine-tune);
                       with --source also ${SOURCE_METHODS.join(', ')}
  --set key=value      a method option, e.g. lr=0.001, backboneLrMultiplier=0.1 (repeatable)
  --epochs N           passes over the training images (default: the method's)
  --seed K             split, initialisation, batches and augmentation (default 0)
  --augment            random resized crops and horizontal flips of the training images, every epoch
  --memory-cap-mb M    decoded images held in memory at most (default ${DEFAULT_MEMORY_CAP_MB} MiB): image-folder
                       splits that do not fit (train first, then val, test) are streamed from disk each
                       time they are read — the same batches and results, more decoding
  --image-size N       input height = width (built-in: default ${DEFAULT_BUILTIN_SIZE}; .onnx: from its metadata)
  --normalize N        imagenet|none (built-in: default imagenet; .onnx: from its metadata)
  --layout L           NCHW|NHWC, for an .onnx file whose input shape does not tell
  --features NAME      the .onnx value to use as features (default: what its last linear layer reads)
  --source DIR|ID      a source task (folder or standard dataset): the backbone and a source head are
                       pre-trained on it first (a folder's images outside val/ and test/, a dataset's
                       train split); joint and MeRLin train on its batches too, LwF and Co-Tuning read its head
  --source-epochs N    source pre-training epochs (default ${DEFAULT_SOURCE_EPOCHS})
  --engine E           onnxruntime|tfjs (default: onnxruntime where it applies)
  --backend B          tfjs backend: wasm|cpu|tensorflow`,
  options: {
    data: { type: 'string' },
    mirror: { type: 'string' },
    archive: { type: 'string' },
    cache: { type: 'string' },
    backbone: { type: 'string' },
    out: { type: 'string' },
    method: { type: 'string' },
    set: { type: 'string', multiple: true },
    epochs: { type: 'string' },
    seed: { type: 'string' },
    augment: { type: 'boolean' },
    'memory-cap-mb': { type: 'string' },
    'image-size': { type: 'string' },
    normalize: { type: 'string' },
    layout: { type: 'string' },
    features: { type: 'string' },
    source: { type: 'string' },
    'source-epochs': { type: 'string' },
    engine: { type: 'string' },
    backend: { type: 'string' },
  },
  async run(values, positionals) {
    if (positionals.length > 0)
      throw new Error(
        `fit: unexpected argument(s) ${positionals.join(' ')}; give the data with --data DIR`,
      );
    const normalize = str(values.normalize);
    if (normalize !== undefined && normalize !== 'imagenet' && normalize !== 'none')
      throw new Error(`--normalize must be imagenet or none, got "${normalize}"`);
    const epochs = intOption('epochs', values.epochs, 1);
    const seed = intOption('seed', values.seed, 0);
    const imageSize = intOption('image-size', values['image-size'], 1);
    const sourceEpochs = intOption('source-epochs', values['source-epochs'], 1);
    const layout = str(values.layout);
    const capText = str(values['memory-cap-mb']);
    const memoryCapMb = capText === undefined ? undefined : Number(capText);
    if (memoryCapMb !== undefined && !(Number.isFinite(memoryCapMb) && memoryCapMb > 0))
      throw new Error(`--memory-cap-mb must be a positive number (MiB), got "${capText}"`);
    const mirror = str(values.mirror);
    const archive = str(values.archive);
    const cache = str(values.cache);
    await fitCommand({
      data: str(values.data) ?? '',
      backbone: str(values.backbone) ?? '',
      standard: {
        ...(mirror !== undefined ? { mirror } : {}),
        ...(archive !== undefined ? { localArchive: archive } : {}),
        ...(cache !== undefined ? { cacheDir: cache } : {}),
      },
      ...(str(values.out) ? { out: str(values.out) as string } : {}),
      ...(str(values.method) ? { method: str(values.method) as string } : {}),
      set: list(values.set),
      ...(epochs !== undefined ? { epochs } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(values.augment ? { augment: true } : {}),
      ...(memoryCapMb !== undefined ? { memoryCapMb } : {}),
      ...(imageSize !== undefined ? { imageSize } : {}),
      ...(normalize !== undefined ? { normalize } : {}),
      ...(layout !== undefined ? { layout: parseLayout(layout, '--layout') } : {}),
      ...(str(values.features) ? { features: str(values.features) as string } : {}),
      ...(str(values.source) ? { source: str(values.source) as string } : {}),
      ...(sourceEpochs !== undefined ? { sourceEpochs } : {}),
      ...(str(values.engine) ? { engine: requireEngine(str(values.engine) as string) } : {}),
      ...(str(values.backend) ? { backend: str(values.backend) as string } : {}),
    });
    return 0;
  },
};

export const predict: FitCliCommand = {
  usage: `pnpm bench predict <model.onnx> <image>… [--top K]
  the top-K classes (default 3) of each image by a model.onnx from \`pnpm bench fit\`;
  a file that is not a readable image gets an ERROR line (exit code 1), the others go on`,
  options: { top: { type: 'string' } },
  async run(values, [model, ...images]) {
    if (!model) throw new Error('predict: give a model.onnx (from pnpm bench fit) and image files');
    const topK = intOption('top', values.top, 1);
    const { failed } = await predictCommand({
      model,
      images,
      ...(topK !== undefined ? { topK } : {}),
    });
    return failed === 0 ? 0 : 1;
  },
};

export const fitCommands = { fit, predict };
