import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageEntry } from '../images/image-folder.js';
import { type MatArray, matVariable, parseMat } from './mat.js';
import {
  prepareStandardData,
  requireMember,
  requireMembers,
  type StandardSource,
} from './source.js';
import type { LoadStandardDatasetOptions, StandardImageDataset } from './types.js';

// Oxford Flowers-102 (Nilsback & Zisserman 2008): 102flowers.tgz holds
// jpg/image_00001.jpg … image_08189.jpg; imagelabels.mat holds `labels`
// (1 × 8189, class 1..102 of image i); setid.mat holds the official split as
// image numbers: `trnid` (1,020), `valid` (1,020), `tstid` (6,149). Both .mat
// files are MATLAB Level 5 files with zlib-compressed variables (read by
// ./mat.ts).
//
// Checksums: SHA-256 and sizes from TensorFlow Datasets'
// url_checksums/oxford_flowers102.txt. torchvision's Flowers102 records the
// MD5s 52808999861908f626f3c1f4e79d11fa (102flowers.tgz),
// e0620be6f572b9609742df49c70aed4d (imagelabels.mat),
// a5357ecc9cb78c4bef273ce3793fc85c (setid.mat).

const BASE = 'https://www.robots.ox.ac.uk/~vgg/data/flowers/102';

export const FLOWERS102_SOURCE: StandardSource = {
  id: 'flowers102',
  title: 'Oxford Flowers-102',
  files: [
    {
      name: '102flowers.tgz',
      url: `${BASE}/102flowers.tgz`,
      sha256: '2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246',
      bytes: 344_862_509,
      kind: 'tar.gz',
    },
    {
      name: 'imagelabels.mat',
      url: `${BASE}/imagelabels.mat`,
      sha256: '4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d',
      bytes: 502,
      kind: 'file',
    },
    {
      name: 'setid.mat',
      url: `${BASE}/setid.mat`,
      sha256: '46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd',
      bytes: 14_989,
      kind: 'file',
    },
  ],
};

/**
 * Class names, index = label − 1. The dataset ships none; this is the list
 * the community uses (from the caffe-oxford102 project, as in TLlib), with
 * the stray '?' of 'pink-yellow dahlia?' dropped.
 */
export const FLOWERS102_CLASS_NAMES: readonly string[] = [
  'pink primrose',
  'hard-leaved pocket orchid',
  'canterbury bells',
  'sweet pea',
  'english marigold',
  'tiger lily',
  'moon orchid',
  'bird of paradise',
  'monkshood',
  'globe thistle',
  'snapdragon',
  "colt's foot",
  'king protea',
  'spear thistle',
  'yellow iris',
  'globe-flower',
  'purple coneflower',
  'peruvian lily',
  'balloon flower',
  'giant white arum lily',
  'fire lily',
  'pincushion flower',
  'fritillary',
  'red ginger',
  'grape hyacinth',
  'corn poppy',
  'prince of wales feathers',
  'stemless gentian',
  'artichoke',
  'sweet william',
  'carnation',
  'garden phlox',
  'love in the mist',
  'mexican aster',
  'alpine sea holly',
  'ruby-lipped cattleya',
  'cape flower',
  'great masterwort',
  'siam tulip',
  'lenten rose',
  'barbeton daisy',
  'daffodil',
  'sword lily',
  'poinsettia',
  'bolero deep blue',
  'wallflower',
  'marigold',
  'buttercup',
  'oxeye daisy',
  'common dandelion',
  'petunia',
  'wild pansy',
  'primula',
  'sunflower',
  'pelargonium',
  'bishop of llandaff',
  'gaura',
  'geranium',
  'orange dahlia',
  'pink-yellow dahlia',
  'cautleya spicata',
  'japanese anemone',
  'black-eyed susan',
  'silverbush',
  'californian poppy',
  'osteospermum',
  'spring crocus',
  'bearded iris',
  'windflower',
  'tree poppy',
  'gazania',
  'azalea',
  'water lily',
  'rose',
  'thorn apple',
  'morning glory',
  'passion flower',
  'lotus',
  'toad lily',
  'anthurium',
  'frangipani',
  'clematis',
  'hibiscus',
  'columbine',
  'desert-rose',
  'tree mallow',
  'magnolia',
  'cyclamen',
  'watercress',
  'canna lily',
  'hippeastrum',
  'bee balm',
  'ball moss',
  'foxglove',
  'bougainvillea',
  'camellia',
  'mallow',
  'mexican petunia',
  'bromelia',
  'blanket flower',
  'trumpet creeper',
  'blackberry lily',
];

const SPLIT_VARS = { train: 'trnid', val: 'valid', test: 'tstid' } as const;

function imagePath(id: number): string {
  return `jpg/image_${String(id).padStart(5, '0')}.jpg`;
}

function integers(v: MatArray, file: string, lo: number, hi: number): number[] {
  const out = Array.from(v.data);
  const bad = out.findIndex((x) => !Number.isInteger(x) || x < lo || x > hi);
  if (bad !== -1)
    throw new Error(
      `Oxford Flowers-102: ${file} variable "${v.name}" has value ${out[bad]} at position ${bad + 1}, outside ${lo}..${hi}`,
    );
  return out;
}

interface FlowersLists {
  readonly splits: Record<'train' | 'val' | 'test', { path: string; label: number }[]>;
}

async function readLists(dir: string): Promise<FlowersLists> {
  const source = FLOWERS102_SOURCE;
  const labelsPath = await requireMember(dir, 'imagelabels.mat', source, 'the download');
  const setidPath = await requireMember(dir, 'setid.mat', source, 'the download');
  const labelFile = parseMat(await readFile(labelsPath), labelsPath);
  const labels = integers(
    matVariable(labelFile, 'labels', labelsPath),
    'imagelabels.mat',
    1,
    FLOWERS102_CLASS_NAMES.length,
  );
  const setFile = parseMat(await readFile(setidPath), setidPath);
  const splits = { train: [], val: [], test: [] } as FlowersLists['splits'];
  for (const split of ['train', 'val', 'test'] as const) {
    const ids = integers(
      matVariable(setFile, SPLIT_VARS[split], setidPath),
      'setid.mat',
      1,
      labels.length,
    );
    splits[split] = ids.map((id) => ({
      path: imagePath(id),
      label: (labels[id - 1] as number) - 1,
    }));
  }
  return { splits };
}

async function checkFlowers(dir: string): Promise<void> {
  const { splits } = await readLists(dir);
  const all = [...splits.train, ...splits.val, ...splits.test].map((e) => e.path);
  await requireMembers(dir, all, FLOWERS102_SOURCE, '102flowers.tgz');
}

/**
 * Oxford Flowers-102 with its official train (1,020), val (1,020) and test
 * (6,149) lists, in setid.mat's order. `seed` and `valFraction` are unused:
 * the validation split is the published one.
 */
export async function loadFlowers102(
  opts: LoadStandardDatasetOptions = {},
): Promise<StandardImageDataset> {
  const root = await prepareStandardData(FLOWERS102_SOURCE, opts, checkFlowers);
  const { splits } = await readLists(root);
  const entries = (list: { path: string; label: number }[]): ImageEntry[] =>
    list.map((e) => ({ path: join(root, e.path), label: e.label }));
  return {
    kind: 'images',
    layout: 'splits',
    skipped: [],
    id: 'flowers102',
    title: FLOWERS102_SOURCE.title,
    root,
    classes: FLOWERS102_CLASS_NAMES,
    splits: { train: entries(splits.train), val: entries(splits.val), test: entries(splits.test) },
    drawn: [],
    warnings: [],
  };
}
