import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from '../types.js';
import { prepareStandardData, requireMember, type StandardSource } from './source.js';
import { drawValidation } from './splits.js';
import type { LoadStandardDatasetOptions, StandardArrayDataset } from './types.js';

// CIFAR-10 and CIFAR-100 from the official *binary* archives (no pickle):
// fixed-size records of label byte(s) then 3072 pixel bytes, channel-major —
// the 1024 red values of the 32×32 image row by row, then green, then blue.
//   CIFAR-10:  <label> <3072 pixels>, 10,000 per file; data_batch_1..5.bin, test_batch.bin
//   CIFAR-100: <coarse label> <fine label> <3072 pixels>; train.bin, test.bin
// Label names are the text files in the archive, one per line.
//
// Checksums: SHA-256 and sizes from TensorFlow Datasets'
// url_checksums/cifar10.txt and cifar100.txt (which download these binary
// archives); the MD5s on the authors' page (www.cs.toronto.edu/~kriz/cifar.html)
// are c32a1d4ab5d03f1284b67883e8d87530 (CIFAR-10 binary) and
// 03b5dce01913d631647c71ecec9e9cb8 (CIFAR-100 binary).

export const CIFAR10_SOURCE: StandardSource = {
  id: 'cifar10',
  title: 'CIFAR-10',
  files: [
    {
      name: 'cifar-10-binary.tar.gz',
      url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
      sha256: 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd',
      bytes: 170_052_171,
      kind: 'tar.gz',
    },
  ],
};

export const CIFAR100_SOURCE: StandardSource = {
  id: 'cifar100',
  title: 'CIFAR-100',
  files: [
    {
      name: 'cifar-100-binary.tar.gz',
      url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
      sha256: '58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec',
      bytes: 168_513_733,
      kind: 'tar.gz',
    },
  ],
};

const PIXELS = 32 * 32;
const IMAGE_BYTES = 3 * PIXELS;

interface CifarLayout {
  readonly source: StandardSource;
  readonly folder: string;
  readonly train: readonly string[];
  readonly test: readonly string[];
  /** Label bytes before the pixels. */
  readonly labelBytes: 1 | 2;
}

const CIFAR10_LAYOUT: CifarLayout = {
  source: CIFAR10_SOURCE,
  folder: 'cifar-10-batches-bin',
  train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
  test: ['test_batch.bin'],
  labelBytes: 1,
};

const CIFAR100_LAYOUT: CifarLayout = {
  source: CIFAR100_SOURCE,
  folder: 'cifar-100-binary',
  train: ['train.bin'],
  test: ['test.bin'],
  labelBytes: 2,
};

export interface LoadCifarOptions extends LoadStandardDatasetOptions {
  /** CIFAR-100 only: the 100 fine classes (default) or the 20 coarse superclasses. */
  readonly label?: 'fine' | 'coarse';
}

function namesFile(layout: CifarLayout, label: 'fine' | 'coarse'): string {
  if (layout.labelBytes === 1) return 'batches.meta.txt';
  return label === 'coarse' ? 'coarse_label_names.txt' : 'fine_label_names.txt';
}

async function readNames(path: string, title: string): Promise<string[]> {
  const names = (await readFile(path, 'utf8'))
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new Error(`${title}: label-name file ${path} is empty`);
  return names;
}

/** Every member present, every batch a whole number of records. */
async function checkCifar(dir: string, layout: CifarLayout): Promise<void> {
  const { source } = layout;
  const archive = source.files[0]?.name as string;
  const record = layout.labelBytes + IMAGE_BYTES;
  for (const f of [...layout.train, ...layout.test]) {
    const path = await requireMember(dir, `${layout.folder}/${f}`, source, archive);
    const { size } = await stat(path);
    if (size === 0 || size % record !== 0)
      throw new Error(
        `${source.title}: ${layout.folder}/${f} in ${archive} has ${size} bytes, not a whole number of ${record}-byte records (truncated?)`,
      );
  }
  const nameFiles =
    layout.labelBytes === 1
      ? ['batches.meta.txt']
      : ['fine_label_names.txt', 'coarse_label_names.txt'];
  for (const f of nameFiles)
    await readNames(
      await requireMember(dir, `${layout.folder}/${f}`, source, archive),
      source.title,
    );
}

interface Records {
  readonly bytes: Buffer;
  readonly labels: Int32Array;
}

async function readRecords(
  dir: string,
  layout: CifarLayout,
  files: readonly string[],
  label: 'fine' | 'coarse',
  numClasses: number,
): Promise<Records> {
  const record = layout.labelBytes + IMAGE_BYTES;
  // CIFAR-100 records: coarse label first, fine second.
  const labelAt = layout.labelBytes === 2 && label === 'fine' ? 1 : 0;
  const parts: Buffer[] = [];
  for (const f of files) {
    const path = join(dir, layout.folder, f);
    const buf = await readFile(path);
    if (buf.length % record !== 0)
      throw new Error(
        `${layout.source.title}: ${path} has ${buf.length} bytes, not a whole number of ${record}-byte records`,
      );
    for (let i = 0; i < buf.length / record; i++) {
      const y = buf[i * record + labelAt] as number;
      if (y >= numClasses)
        throw new Error(
          `${layout.source.title}: record ${i} of ${path} has ${label} label ${y}, but there are ${numClasses} class names`,
        );
    }
    parts.push(buf);
  }
  const bytes = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  const n = bytes.length / record;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = bytes[i * record + labelAt] as number;
  return { bytes, labels };
}

/** Records at `indices` as NHWC float32 in [0, 1]: the channel planes interleaved. */
function toDataset(
  recs: Records,
  indices: ArrayLike<number>,
  labelBytes: number,
  name: string,
  classes: readonly string[],
): Dataset {
  const record = labelBytes + IMAGE_BYTES;
  const n = indices.length;
  const x = new Float32Array(n * IMAGE_BYTES);
  const y = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const i = indices[j] as number;
    const base = i * record + labelBytes;
    const out = j * IMAGE_BYTES;
    for (let p = 0; p < PIXELS; p++) {
      x[out + 3 * p] = (recs.bytes[base + p] as number) / 255;
      x[out + 3 * p + 1] = (recs.bytes[base + PIXELS + p] as number) / 255;
      x[out + 3 * p + 2] = (recs.bytes[base + 2 * PIXELS + p] as number) / 255;
    }
    y[j] = recs.labels[i] as number;
  }
  return { name, x, y, shape: [32, 32, 3], numClasses: classes.length, classNames: classes };
}

async function loadCifar(
  layout: CifarLayout,
  opts: LoadCifarOptions,
): Promise<StandardArrayDataset> {
  const { source } = layout;
  if (opts.label !== undefined && opts.label !== 'fine' && opts.label !== 'coarse')
    throw new Error(`${source.title}: label must be 'fine' or 'coarse', got ${opts.label}`);
  if (layout.labelBytes === 1 && opts.label === 'coarse')
    throw new Error(`${source.title} has one label per image; label: 'coarse' is for CIFAR-100`);
  const label = opts.label ?? 'fine';
  const root = await prepareStandardData(source, opts, (dir) => checkCifar(dir, layout));
  const classes = await readNames(
    join(root, layout.folder, namesFile(layout, label)),
    source.title,
  );
  const id = source.id as 'cifar10' | 'cifar100';
  const name = label === 'coarse' ? `${id}-coarse` : id;
  const train = await readRecords(root, layout, layout.train, label, classes.length);
  const split = drawValidation(train.labels, classes, opts, `${source.title} train`);
  const trainSet = toDataset(train, split.train, layout.labelBytes, `${name}-train`, classes);
  const valSet = toDataset(train, split.val, layout.labelBytes, `${name}-val`, classes);
  const test = await readRecords(root, layout, layout.test, label, classes.length);
  const testSet = toDataset(
    test,
    Int32Array.from({ length: test.labels.length }, (_, i) => i),
    layout.labelBytes,
    `${name}-test`,
    classes,
  );
  return {
    kind: 'arrays',
    id,
    title: source.title,
    root,
    classes,
    splits: { train: trainSet, val: valSet, test: testSet },
    drawn: split.val.length > 0 ? ['val'] : [],
    warnings: split.warnings,
  };
}

/**
 * CIFAR-10 (60,000 32×32 colour images, 10 classes): the official 50,000
 * training images (data_batch_1..5, in file order) less a seeded stratified
 * val (default 10% of each class), and the 10,000 test images. x is NHWC
 * float32 in [0, 1] — the train split alone takes about 550 MB.
 */
export function loadCifar10(opts: LoadStandardDatasetOptions = {}): Promise<StandardArrayDataset> {
  return loadCifar(CIFAR10_LAYOUT, opts);
}

/** CIFAR-100 (100 fine classes, or the 20 coarse ones with `label: 'coarse'`), as `loadCifar10`. */
export function loadCifar100(opts: LoadCifarOptions = {}): Promise<StandardArrayDataset> {
  return loadCifar(CIFAR100_LAYOUT, opts);
}
