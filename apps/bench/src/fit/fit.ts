/**
 * `pnpm bench fit`: a method trained on the user's own image folder, from a
 * built-in backbone or a pretrained ONNX backbone, selected on validation,
 * evaluated per class on the test split, and written out as one ONNX
 * classifier (preprocessing in its metadata) with its metrics and weights.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createRng, disposeParams, initBackend, type Params } from '@transferlab/core';
import {
  type LoadStandardDatasetOptions,
  type NormalizeStep,
  type SkippedFile,
  type TransformStep,
  transformedSize,
} from '@transferlab/datasets';
import type { AnyTransferMethod, Engine } from '@transferlab/methods';
import {
  type Backbone,
  exportClassifierToOnnx,
  findClassifierHead,
  importOnnx,
  linearHead,
  onnxGraphInput,
  readOnnxMetadata,
  saveParams,
} from '@transferlab/models';
import { parse as parseYaml } from 'yaml';
import { createProgress, type Progress } from '../progress.js';
import { defaultRegistries } from '../run-suite.js';
import { defaultPretrainConfig, pretrainSource } from '../runner.js';
import {
  augmentedEpoch,
  decodedBytes,
  type FitSplit,
  isFileSplit,
  loadFitSplit,
  resolveFitData,
  splitBatches,
  splitSize,
} from './data.js';
import { openOnnxClassifier } from './onnx-run.js';
import {
  CLASSES_KEY,
  evalTransforms,
  inputShapeOf,
  type Layout,
  type NormalizeOption,
  normalizeOf,
  PREPROCESS_KEY,
  type Preprocess,
  type PreprocessHints,
  parseNormalize,
  parsePreprocessHints,
  preprocessRecord,
  trainTransforms,
} from './preprocess.js';
import {
  argmaxRows,
  confusionMatrix,
  formatConfusion,
  formatPerClass,
  perClassAccuracy,
} from './report.js';
import { evaluateSplit, trainWithSelection } from './train.js';

const SPLITS = ['train', 'val', 'test'] as const;

/**
 * Methods fit runs without a source: they learn from the target data alone
 * and predict with the backbone + the linear head `head` (what model.onnx
 * holds). With --source, their backbone is first pre-trained on the source.
 */
export const FIT_METHODS: readonly string[] = [
  'fine-tune',
  'linear-probe',
  'scratch',
  'l2-sp',
  'delta',
  'bss',
];

/**
 * Methods that need a source task (--source): source batches (joint, MeRLin)
 * or the source head (LwF, Co-Tuning); they predict with the same backbone +
 * `head`. L2T-ww and its baselines train another network than the
 * backbone, which model.onnx does not describe: not supported.
 */
export const SOURCE_METHODS: readonly string[] = ['joint', 'merlin', 'lwf', 'co-tuning'];

/** Source pre-training epochs when --source-epochs is not given. */
export const DEFAULT_SOURCE_EPOCHS = 5;

/** Input size of a built-in backbone when --image-size is not given. */
export const DEFAULT_BUILTIN_SIZE = 32;

/** Decoded images held in memory at most, when --memory-cap-mb is not given (MiB). */
export const DEFAULT_MEMORY_CAP_MB = 1024;

/**
 * Methods that compute from the whole training set before training
 * (MethodContext.targetTrain: DELTA's attention, Co-Tuning's category
 * relationship): they need the training split in memory.
 */
const WHOLE_TRAIN_METHODS: readonly string[] = ['delta', 'co-tuning'];

export interface FitOptions {
  /** An image folder (ImageFolder layout), or a standard dataset id (cifar10, cifar100, flowers102, pets, cub200). */
  data: string;
  /** For a standard dataset: cache folder, mirror, local archive, checksum overrides, val fraction. */
  standard?: LoadStandardDatasetOptions;
  /** A built-in backbone id (`pnpm bench list`), or a path to a .onnx file. */
  backbone: string;
  /** Default 'fine-tune'. */
  method?: string;
  /** Method options as key=value, values read as YAML scalars. */
  set?: readonly string[];
  epochs?: number;
  /** Output folder (required). */
  out?: string;
  /** Seeds the split drawn from the folder, the initialisation, the batches and the augmentation. Default 0. */
  seed?: number;
  /**
   * A source task (an image folder or a standard dataset id): the backbone is
   * pre-trained on it first — every image of a folder outside val/ and test/
   * folders, a standard dataset's official train split — with a source head, and
   * joint / MeRLin train on its batches, LwF / Co-Tuning read its head.
   */
  source?: string;
  /** Source pre-training epochs (default 5). */
  sourceEpochs?: number;
  /** Input height = width. Built-in backbones: default 32; ONNX files: from the metadata. */
  imageSize?: number;
  normalize?: NormalizeOption;
  /** Input layout of an ONNX backbone when its input shape does not tell. */
  layout?: Layout;
  /** The ONNX value to use as features (default: the input of the file's classifier layer, else its output). */
  features?: string;
  /** Random resized crops and horizontal flips of the training images, re-drawn every epoch. */
  augment?: boolean;
  /**
   * Decoded images (float32, model input size) held in memory at most, in MiB
   * (default 1024). Image-file splits are kept in memory in the order train,
   * val, test while they fit under it; the others are streamed from disk
   * every time they are read (same batches and results, more decoding).
   * Datasets held as arrays (standard datasets) and a source are always in
   * memory; a source larger than the cap is refused.
   */
  memoryCapMb?: number;
  engine?: Engine;
  /** tfjs backend (evaluation and the tfjs engine). */
  backend?: string;
  progress?: Progress;
  /** Where the report goes (default stdout). */
  write?: (text: string) => void;
}

export interface FitMetrics {
  target_test_acc: number;
  target_val_acc: number;
  target_test_loss: number;
  target_val_loss: number;
  best_epoch: number;
  classes: string[];
  /** Accuracy per class on the test split; null for a class with no test image. */
  per_class_acc: Record<string, number | null>;
  /** confusion[true][predicted], test split. */
  confusion: number[][];
  skipped_files: SkippedFile[];
  method: string;
  method_options: Record<string, unknown>;
  /** With --source: the source, its training images, and the pre-trained network's accuracy on them. */
  source?: string;
  source_train_size?: number;
  source_train_acc?: number;
  backbone: string;
  epochs: number;
  seed: number;
  engine: Engine;
  augment: boolean;
  sizes: { train: number; val: number; test: number };
  /** The cap, which splits were streamed from disk, and what each split takes decoded (MiB). */
  memory: {
    cap_mb: number;
    streamed: string[];
    decoded_mb: { train: number; val: number; test: number };
  };
  preprocess: Record<string, unknown>;
  /** Largest |logit difference| between model.onnx in onnxruntime and the in-process model on the test split. */
  onnx_max_abs_diff: number;
  curve: { epoch: number; train_loss: number; val_acc: number; val_loss: number }[];
  warnings: string[];
  duration_s: number;
}

export interface FitResult {
  metrics: FitMetrics;
  files: { model: string; metrics: string; params: string };
  /**
   * The final evaluation on the test split, row by row: the image files
   * (none for a dataset held as arrays), their labels, and the logits
   * (n × classes) the accuracy and confusion matrix were computed from.
   */
  test: { paths: string[]; labels: Int32Array; logits: Float32Array };
}

/** `--set key=value` pairs as method options; values are YAML scalars (0.001, true, adam). */
export function parseSetOptions(set: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of set) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new Error(`--set expects key=value (a method option), got "${a}"`);
    out[a.slice(0, eq).trim()] = parseYaml(a.slice(eq + 1)) as unknown;
  }
  return out;
}

export function requireFitMethod(id: string, hasSource: boolean): AnyTransferMethod {
  const reg = defaultRegistries().methods;
  const supported = `fit supports: ${FIT_METHODS.join(', ')}; with --source also ${SOURCE_METHODS.join(', ')}`;
  if (SOURCE_METHODS.includes(id) && !hasSource)
    throw new Error(
      `fit: method "${id}" needs a source task: give --source DIR (a folder of source images in class sub-folders, or a standard dataset id). ${supported}`,
    );
  if (!FIT_METHODS.includes(id) && !SOURCE_METHODS.includes(id)) {
    const why = !reg.has(id)
      ? `unknown method "${id}"`
      : `method "${id}" trains a target network other than the backbone, which model.onnx cannot hold`;
    throw new Error(`fit: ${why}. ${supported}`);
  }
  return reg.get(id);
}

interface ResolvedBackbone {
  backbone: Backbone;
  /** Owned here: disposed after training. */
  pretrained?: Params;
  preprocess: Preprocess;
  inputName: string;
  notes: string[];
}

function isOnnxPath(ref: string): boolean {
  return ref.toLowerCase().endsWith('.onnx') || ref.includes('/') || ref.includes('\\');
}

/** Which axis of a 3-D example shape holds channels, when the shape says so. */
function inferLayout(dims: readonly (number | string | undefined)[]): Layout | undefined {
  const isChannels = (d: unknown) => d === 1 || d === 3;
  if (isChannels(dims[0]) && !isChannels(dims[2])) return 'NCHW';
  if (isChannels(dims[2]) && !isChannels(dims[0])) return 'NHWC';
  return undefined;
}

async function resolveOnnxBackbone(path: string, opts: FitOptions): Promise<ResolvedBackbone> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`fit: cannot read backbone file ${path}: ${(err as Error).message}`);
  }
  const meta = readOnnxMetadata(bytes, path);
  const stored = meta[PREPROCESS_KEY];
  const hints: PreprocessHints = stored !== undefined ? parsePreprocessHints(stored, path) : {};
  const input = onnxGraphInput(bytes, path);
  const dims = input.dims?.slice(1);
  if (dims && dims.length !== 3)
    throw new Error(
      `fit: ${path} takes input "${input.name}" of shape [${input.dims?.map((d) => d ?? '?')}]; an image backbone takes [N, C, H, W] or [N, H, W, C]`,
    );
  const layout = opts.layout ?? hints.layout ?? (dims ? inferLayout(dims) : undefined);
  if (!layout)
    throw new Error(
      `fit: cannot tell the layout of ${path}'s input "${input.name}" [${input.dims?.map((d) => d ?? '?')}]: give --layout NCHW|NHWC (or "layout" in its "${PREPROCESS_KEY}" metadata)`,
    );
  const channelDim = dims?.[layout === 'NCHW' ? 0 : 2];
  const channels = (typeof channelDim === 'number' ? channelDim : (hints.channels ?? 3)) as 1 | 3;
  if (channels !== 1 && channels !== 3)
    throw new Error(`fit: ${path} takes ${channels} input channels; images have 1 or 3`);

  // Size and normalisation: options first, then the file's metadata; nothing is guessed.
  const hintSize = hints.size ?? (hints.transforms ? transformedSize(hints.transforms) : undefined);
  const size: [number, number] | undefined =
    opts.imageSize !== undefined ? [opts.imageSize, opts.imageSize] : hintSize;
  let normalize: NormalizeStep | null | undefined;
  if (opts.normalize !== undefined) normalize = parseNormalize(opts.normalize, '--normalize');
  else if (hints.transforms) normalize = normalizeOf(hints.transforms);
  else if (hints.normalize !== undefined) normalize = hints.normalize;
  const missing = [
    ...(size ? [] : ['--image-size N']),
    ...(normalize === undefined ? ['--normalize imagenet|none'] : []),
  ];
  if (!size || normalize === undefined)
    throw new Error(
      `fit: ${path} ${stored === undefined ? `has no preprocessing metadata ("${PREPROCESS_KEY}")` : `metadata "${PREPROCESS_KEY}" does not give the ${size ? 'normalisation' : 'input size'}`}: give ${missing.join(' and ')}, or store them in the file (metadata_props "${PREPROCESS_KEY}" = {"size": 224, "normalize": "imagenet"})`,
    );
  const spatial = layout === 'NCHW' ? dims?.slice(1, 3) : dims?.slice(0, 2);
  if (
    spatial?.every((d) => typeof d === 'number') &&
    (spatial[0] !== size[0] || spatial[1] !== size[1])
  )
    throw new Error(
      `fit: ${path} takes ${spatial[0]}×${spatial[1]} images, but the input size asked for is ${size[0]}×${size[1]}`,
    );
  const transforms =
    hints.transforms && opts.imageSize === undefined && opts.normalize === undefined
      ? hints.transforms
      : evalTransforms(size[0], size[1], normalize);
  const preprocess: Preprocess = { layout, height: size[0], width: size[1], channels, transforms };

  const notes: string[] = [];
  let features = opts.features ?? hints.features;
  if (features === undefined) {
    const cut = findClassifierHead(bytes, path);
    if (cut) {
      features = cut.features;
      notes.push(`classifier layer ${cut.head} cut off: features are "${cut.features}"`);
    }
  }
  const imported = importOnnx(bytes, {
    source: path,
    inputShape: inputShapeOf(preprocess),
    ...(features !== undefined ? { features } : {}),
  });
  notes.push(
    `ONNX backbone ${path}: input "${imported.backbone.inputName}" [${imported.backbone.inputShape}] ${layout}, features "${imported.backbone.featuresName}" (${imported.backbone.featureDim})`,
  );
  return {
    backbone: imported.backbone,
    pretrained: imported.params,
    preprocess,
    inputName: imported.backbone.inputName,
    notes,
  };
}

async function resolveBackbone(
  opts: FitOptions,
  method: AnyTransferMethod,
  seed: number,
): Promise<ResolvedBackbone> {
  const ref = opts.backbone;
  const reg = defaultRegistries().backbones;
  if (!reg.has(ref) || isOnnxPath(ref)) {
    if (isOnnxPath(ref)) return resolveOnnxBackbone(ref, opts);
    throw new Error(
      `fit: unknown backbone "${ref}": give a built-in id (${reg.ids.join(', ')}) or a path to a .onnx file`,
    );
  }
  if (opts.layout === 'NCHW')
    throw new Error(`fit: built-in backbones take NHWC input; --layout NCHW is for ONNX files`);
  if (opts.features !== undefined)
    throw new Error('fit: --features names a value of an ONNX backbone file');
  const size = opts.imageSize ?? DEFAULT_BUILTIN_SIZE;
  const normalize = parseNormalize(opts.normalize ?? 'imagenet', '--normalize');
  const preprocess: Preprocess = {
    layout: 'NHWC',
    height: size,
    width: size,
    channels: 3,
    transforms: evalTransforms(size, size, normalize),
  };
  const backbone = reg.get(ref).create(inputShapeOf(preprocess));
  const notes = [
    `built-in backbone ${ref} (${backbone.name}) at ${size}×${size}×3, ${opts.source ? 'pre-trained on the source' : 'trained from its initialisation'}`,
  ];
  if (method.id === 'linear-probe' && !opts.source)
    notes.push(
      'linear-probe on a built-in backbone: its weights are random (not pretrained), only the head learns',
    );
  // Methods that start from "pretrained" weights start here from the initialisation.
  const pretrained = method.needs.pretrainedBackbone
    ? backbone.init(createRng(seed).derive('backbone-init'))
    : undefined;
  return { backbone, ...(pretrained ? { pretrained } : {}), preprocess, inputName: 'input', notes };
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

export async function fitCommand(opts: FitOptions): Promise<FitResult> {
  const started = Date.now();
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  // Everything that can be refused is refused before any decoding or training.
  if (!opts.out)
    throw new Error(
      'fit: --out DIR is required (where model.onnx, metrics.json and params.safetensors go)',
    );
  if (!opts.data)
    throw new Error('fit: --data DIR is required (a folder of images in class sub-folders)');
  if (!opts.backbone)
    throw new Error('fit: --backbone is required (a built-in id, or a path to a .onnx file)');
  const seed = opts.seed ?? 0;
  const methodId = opts.method ?? 'fine-tune';
  const method = requireFitMethod(methodId, opts.source !== undefined);
  if (
    opts.sourceEpochs !== undefined &&
    !(Number.isInteger(opts.sourceEpochs) && opts.sourceEpochs >= 1)
  )
    throw new Error(`fit: --source-epochs must be a positive integer, got ${opts.sourceEpochs}`);
  if (opts.imageSize !== undefined && !(Number.isInteger(opts.imageSize) && opts.imageSize >= 1))
    throw new Error(`fit: --image-size must be a positive integer, got ${opts.imageSize}`);
  if (opts.epochs !== undefined && !(Number.isInteger(opts.epochs) && opts.epochs >= 1))
    throw new Error(`fit: --epochs must be a positive integer, got ${opts.epochs}`);
  const capMb = opts.memoryCapMb ?? DEFAULT_MEMORY_CAP_MB;
  if (!(Number.isFinite(capMb) && capMb > 0))
    throw new Error(`fit: --memory-cap-mb must be a positive number, got ${opts.memoryCapMb}`);
  const capBytes = capMb * 2 ** 20;
  const config = method.validate({
    ...parseSetOptions(opts.set ?? []),
    ...(opts.epochs !== undefined ? { epochs: opts.epochs } : {}),
  });
  // An unusable --out fails now, not after training.
  const outDir = resolve(opts.out);
  await mkdir(outDir, { recursive: true }).catch((err: Error) => {
    throw new Error(`fit: cannot create --out ${outDir}: ${err.message}`);
  });
  const progress = opts.progress ?? createProgress();
  await initBackend(opts.backend ? { backend: opts.backend } : {});
  const data = await resolveFitData(opts.data, seed, opts.standard ?? {}, (p) =>
    progress.epoch(`download ${p.file}`, p.bytes, p.total ?? p.bytes),
  );
  const source = opts.source
    ? await resolveFitData(opts.source, seed, sourceStandard(opts.standard), undefined, true)
    : undefined;
  const resolved = await resolveBackbone(opts, method, seed);
  const { backbone, preprocess } = resolved;
  const warnings = [...data.warnings, ...(source?.warnings ?? []).map((w) => `source: ${w}`)];
  let sourceHead: Params | undefined;
  try {
    const classes = [...data.classes];
    progress.done(
      `preprocessing ${SPLITS.map((s) => splitSize(data.splits[s])).reduce((a, b) => a + b, 0)} images of ${classes.length} classes from ${data.root} at ${preprocess.height}×${preprocess.width}`,
    );
    // Image-file splits in memory while they fit under the cap, train first (read most often).
    const mib = (b: number) => b / 2 ** 20;
    const bytes = {
      train: decodedBytes(data, 'train', preprocess),
      val: decodedBytes(data, 'val', preprocess),
      test: decodedBytes(data, 'test', preprocess),
    };
    const streamed = new Set<(typeof SPLITS)[number]>();
    let left = capBytes;
    for (const split of SPLITS) {
      if (!isFileSplit(data, split)) continue;
      if (bytes[split] > left) streamed.add(split);
      else left -= bytes[split];
    }
    if (streamed.has('train') && WHOLE_TRAIN_METHODS.includes(method.id))
      throw new Error(
        `fit: ${method.id} computes from the whole training split before training, which needs it in memory: ${mib(bytes.train).toFixed(1)} MiB decoded, more than --memory-cap-mb ${capMb}; raise the cap or use another method`,
      );
    if (
      source &&
      isFileSplit(source, 'train') &&
      decodedBytes(source, 'train', preprocess) > capBytes
    )
      throw new Error(
        `fit: the source's training images need ${mib(decodedBytes(source, 'train', preprocess)).toFixed(1)} MiB decoded, more than --memory-cap-mb ${capMb}; source pre-training holds them in memory: raise the cap or use a smaller source`,
      );
    const load = (split: (typeof SPLITS)[number]) =>
      loadFitSplit(data, split, preprocess, seed, {
        stream: streamed.has(split),
        maxBytes: Math.max(capBytes, bytes[split]),
      });
    const train = await load('train');
    const val = await load('val');
    const test = await load('test');
    const sourceTrain = source
      ? await loadFitSplit(source, 'train', preprocess, seed, { maxBytes: capBytes })
      : undefined;
    const skipped: SkippedFile[] = [
      ...data.skipped,
      ...train.skipped,
      ...val.skipped,
      ...test.skipped,
      ...(source?.skipped ?? []),
      ...(sourceTrain?.skipped ?? []),
    ];
    for (const [split, ds] of [
      ['train', train],
      ['test', test],
    ] as const) {
      const present = new Set(ds.y);
      const absent = classes.filter((_, c) => !present.has(c));
      if (absent.length > 0)
        warnings.push(`the ${split} split has no (decodable) image of ${absent.join(', ')}`);
    }

    write(
      [
        `data: ${data.root} (${data.layout}): ${classes.length} classes, train ${train.y.length} / val ${val.y.length} / test ${test.y.length} images, ${skipped.length} file(s) skipped`,
        ...resolved.notes.map((n) => `backbone: ${n}`),
        memoryLine(capMb, streamed, bytes, isFileSplit(data, 'train')),
        `method: ${method.id} (${Object.entries(config)
          .map(([k, v]) => `${k} ${v}`)
          .join(
            ', ',
          )})${opts.augment ? ', training images augmented (random resized crop, flip)' : ''}`,
        ...warnings.map((w) => `warning: ${w}`),
        '',
      ].join('\n'),
    );

    // With a source: the backbone (from its initialisation, or the file's weights) and a
    // source head are trained on the source first, as the bench's suites pre-train.
    let sourceTrainAcc: number | undefined;
    if (source && sourceTrain && !method.needs.pretrainedBackbone)
      warnings.push(`${method.id} starts from a random initialisation: the source is not used`);
    if (source && sourceTrain && method.needs.pretrainedBackbone) {
      if (sourceTrain.numClasses < 2)
        throw new Error(
          `fit: the source ${source.root} has one class; pre-training needs two or more`,
        );
      const pre = await pretrainSource({
        backbone,
        source: sourceTrain,
        seed,
        config: { ...defaultPretrainConfig, epochs: opts.sourceEpochs ?? DEFAULT_SOURCE_EPOCHS },
        ...(opts.engine ? { engine: opts.engine } : {}),
        onEpoch: (e) =>
          progress.done(
            `source pre-training: epoch ${e.epoch}/${e.epochs} (${sourceTrain.y.length} images)`,
          ),
      });
      disposeParams(resolved.pretrained);
      resolved.pretrained = pre.params;
      sourceHead = pre.sourceHead;
      sourceTrainAcc = pre.sourceTrainAcc;
      write(
        `source: ${source.root} (${source.classes.length} classes, ${sourceTrain.y.length} training images): pre-trained ${opts.sourceEpochs ?? DEFAULT_SOURCE_EPOCHS} epochs, source train accuracy ${pct(pre.sourceTrainAcc)}\n`,
      );
    }

    const augmentSteps: TransformStep[] | undefined = opts.augment
      ? trainTransforms(preprocess.height, preprocess.width, normalizeOf(preprocess.transforms))
      : undefined;
    const trained = await trainWithSelection({
      method,
      config,
      backbone,
      ...(resolved.pretrained ? { pretrained: resolved.pretrained } : {}),
      ...(sourceHead ? { sourceHead } : {}),
      ...(sourceTrain ? { source: sourceTrain } : {}),
      train,
      val,
      seed,
      ...(opts.engine ? { engine: opts.engine } : {}),
      ...(augmentSteps
        ? {
            epochBatches: (epoch: number) =>
              augmentedEpoch({
                data,
                train,
                steps: augmentSteps,
                p: preprocess,
                batchSize: config.batchSize,
                seed,
                epoch,
              }),
          }
        : {}),
      onEpoch: (e) =>
        progress.done(
          `epoch ${String(e.epoch).padStart(String(e.epochs).length)}/${e.epochs}  train loss ${e.trainLoss.toFixed(4)}  val acc ${pct(e.valAcc)}  val loss ${e.valLoss.toFixed(4)}${e.best ? '  (best so far)' : ''}`,
        ),
    });
    try {
      const final = await evaluateSplit(trained.predict, test);
      const k = classes.length;
      const logitValues = final.logits;
      const testLoss = final.loss;
      const confusion = confusionMatrix(test.y, argmaxRows(logitValues, k), k);
      const correct = confusion.reduce((s, row, c) => s + (row[c] as number), 0);
      const testAcc = correct / test.y.length;
      const perClass = perClassAccuracy(confusion);

      const head = linearHead(backbone.featureDim, k, 'head');
      const record = preprocessRecord(preprocess, resolved.inputName);
      const modelBytes = exportClassifierToOnnx(backbone, trained.selected, {
        head,
        inputName: resolved.inputName,
        metadata: {
          [PREPROCESS_KEY]: JSON.stringify(record),
          [CLASSES_KEY]: JSON.stringify(classes),
          'transferlab.fit': JSON.stringify({
            method: method.id,
            backbone: opts.backbone,
            seed,
            target_test_acc: testAcc,
          }),
        },
        docString: `transferlab fit: ${method.id} on ${data.root}, backbone ${opts.backbone}; outputs logits and probabilities over ${k} classes`,
      });
      // The file must be the model just evaluated: run it as a user would and compare.
      const onnxDiff = await compareWithOnnx(modelBytes, test, logitValues, resolved.inputName);
      if (onnxDiff > 1e-3)
        warnings.push(
          `model.onnx differs from the trained model by up to ${onnxDiff.toExponential(2)} in the logits`,
        );

      const files = {
        model: join(outDir, 'model.onnx'),
        metrics: join(outDir, 'metrics.json'),
        params: join(outDir, 'params.safetensors'),
      };
      const metrics: FitMetrics = {
        target_test_acc: testAcc,
        target_val_acc: trained.valAcc,
        target_test_loss: testLoss,
        target_val_loss: trained.valLoss,
        best_epoch: trained.bestEpoch,
        classes,
        per_class_acc: Object.fromEntries(classes.map((c, i) => [c, perClass[i] ?? null])),
        confusion,
        skipped_files: skipped.map((s) => ({ path: s.path, reason: s.reason })),
        method: method.id,
        method_options: { ...config },
        ...(source && sourceTrain
          ? {
              source: opts.source as string,
              source_train_size: sourceTrain.y.length,
              source_train_acc: sourceTrainAcc as number,
            }
          : {}),
        backbone: opts.backbone,
        epochs: config.epochs,
        seed,
        engine: trained.engine,
        augment: Boolean(opts.augment),
        sizes: { train: train.y.length, val: val.y.length, test: test.y.length },
        memory: {
          cap_mb: capMb,
          streamed: SPLITS.filter((sp) => streamed.has(sp)),
          decoded_mb: { train: mib(bytes.train), val: mib(bytes.val), test: mib(bytes.test) },
        },
        preprocess: record,
        onnx_max_abs_diff: onnxDiff,
        curve: trained.curve.map((e) => ({
          epoch: e.epoch,
          train_loss: e.trainLoss,
          val_acc: e.valAcc,
          val_loss: e.valLoss,
        })),
        warnings,
        duration_s: (Date.now() - started) / 1000,
      };
      await writeFile(files.model, modelBytes);
      await writeFile(files.metrics, `${JSON.stringify(metrics, null, 2)}\n`);
      await saveParams(files.params, trained.selected, {
        method: method.id,
        backbone: opts.backbone,
        classes,
        [PREPROCESS_KEY]: record,
      });
      progress.close();
      write(
        [
          '',
          `test accuracy ${pct(testAcc)} (${correct}/${test.y.length}); val accuracy ${pct(trained.valAcc)} at epoch ${trained.bestEpoch} of ${config.epochs}; engine ${trained.engine}`,
          '',
          'per-class accuracy (test split)',
          formatPerClass(classes, confusion),
          '',
          'confusion matrix (test split; rows: true class, columns: predicted)',
          formatConfusion(classes, confusion),
          '',
          ...(skipped.length
            ? [
                `skipped files (${skipped.length})`,
                ...skipped.map((s) => `  ${s.path}: ${s.reason}`),
                '',
              ]
            : []),
          ...warnings.map((w) => `warning: ${w}`),
          `wrote ${files.model} (onnxruntime vs trained model: max |Δ logit| ${onnxDiff.toExponential(2)}), ${files.metrics}, ${files.params}`,
          '',
        ].join('\n'),
      );
      return {
        metrics,
        files,
        test: { paths: [...test.paths], labels: test.y, logits: logitValues },
      };
    } finally {
      await trained.dispose();
    }
  } finally {
    disposeParams(resolved.pretrained);
    disposeParams(sourceHead);
  }
}

/** A source standard dataset shares the target's cache and mirror, not its local archive or checksums. */
function sourceStandard(o: LoadStandardDatasetOptions = {}): LoadStandardDatasetOptions {
  return {
    ...(o.cacheDir !== undefined ? { cacheDir: o.cacheDir } : {}),
    ...(o.mirror !== undefined ? { mirror: o.mirror } : {}),
  };
}

/** Which splits are held in memory and which are streamed, for the report. */
function memoryLine(
  capMb: number,
  streamed: ReadonlySet<string>,
  bytes: Record<(typeof SPLITS)[number], number>,
  files: boolean,
): string {
  if (!files) return 'memory: a dataset held as arrays: every split in memory';
  const part = (split: (typeof SPLITS)[number]) =>
    `${split} ${(bytes[split] / 2 ** 20).toFixed(bytes[split] < 2 ** 20 ? 2 : bytes[split] < 100 * 2 ** 20 ? 1 : 0)} MiB`;
  const held = SPLITS.filter((sp) => !streamed.has(sp));
  const off = SPLITS.filter((sp) => streamed.has(sp));
  return `memory: cap ${capMb} MiB of decoded images; in memory: ${held.map(part).join(', ') || 'none'}${off.length ? `; streamed from disk at every read: ${off.map(part).join(', ')}` : ''}`;
}

/** Largest |logit difference| between the exported model in onnxruntime and `expected`. */
async function compareWithOnnx(
  bytes: Uint8Array,
  ds: FitSplit,
  expected: Float32Array,
  inputName: string,
): Promise<number> {
  const model = await openOnnxClassifier(bytes, 'model.onnx', inputName);
  try {
    let diff = 0;
    let start = 0;
    for await (const b of splitBatches(ds, undefined, 64)) {
      const n = b.y.length;
      const { logits, k } = await model.run(b.x, n, ds.shape);
      for (let i = 0; i < logits.length; i++)
        diff = Math.max(
          diff,
          Math.abs((logits[i] as number) - (expected[start * k + i] as number)),
        );
      start += n;
    }
    return diff;
  } finally {
    await model.release();
  }
}
