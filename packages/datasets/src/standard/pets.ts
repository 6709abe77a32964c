import { join } from 'node:path';
import type { ImageEntry } from '../images/image-folder.js';
import { intField, readTable } from './lists.js';
import {
  prepareStandardData,
  requireMember,
  requireMembers,
  type StandardSource,
} from './source.js';
import { drawValidation } from './splits.js';
import type { LoadStandardDatasetOptions, StandardImageDataset } from './types.js';

// Oxford-IIIT Pets (Parkhi et al. 2012): images.tar.gz holds images/<name>.jpg;
// annotations.tar.gz holds annotations/trainval.txt and test.txt, the official
// split, one image a line: "<name> <class 1..37> <species 1 cat, 2 dog> <breed id>".
// The breed's name is <name> less its trailing _<number>.
//
// Checksums: SHA-256 and sizes from TensorFlow Datasets'
// url_checksums/oxford_iiit_pet.txt. torchvision's OxfordIIITPet records the
// MD5s 5c4f3ee8e5d25df40f4fd59a7f44e54c (images.tar.gz) and
// 95a8c909bbe2e81eed6a22bccdf3f68f (annotations.tar.gz).

const BASE = 'https://www.robots.ox.ac.uk/~vgg/data/pets/data';

export const PETS_SOURCE: StandardSource = {
  id: 'pets',
  title: 'Oxford-IIIT Pets',
  files: [
    {
      name: 'images.tar.gz',
      url: `${BASE}/images.tar.gz`,
      sha256: '67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d',
      bytes: 791_918_971,
      kind: 'tar.gz',
    },
    {
      name: 'annotations.tar.gz',
      url: `${BASE}/annotations.tar.gz`,
      sha256: '52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91',
      bytes: 19_173_078,
      kind: 'tar.gz',
    },
  ],
};

/** 'american_pit_bull_terrier' → 'American Pit Bull Terrier' (torchvision's class names). */
function breedName(raw: string): string {
  return raw
    .split('_')
    .map((w) => (w.length > 0 ? (w[0] as string).toUpperCase() + w.slice(1).toLowerCase() : w))
    .join(' ');
}

interface PetsLists {
  readonly classes: string[];
  readonly trainval: { path: string; label: number }[];
  readonly test: { path: string; label: number }[];
}

async function readLists(dir: string): Promise<PetsLists> {
  const title = PETS_SOURCE.title;
  const names = new Map<number, string>();
  const read = async (member: string) => {
    const path = await requireMember(dir, member, PETS_SOURCE, 'annotations.tar.gz');
    const rows = await readTable(path, 2, title);
    return rows.map(({ line, fields }) => {
      const image = fields[0] as string;
      if (image.includes('/') || image.includes('\\') || image.startsWith('.'))
        throw new Error(`${title}: line ${line} of ${path}: "${image}" is not an image name`);
      const id = intField(fields[1] as string, path, line, 'the class id', title);
      if (id < 1) throw new Error(`${title}: line ${line} of ${path}: class id must be ≥ 1`);
      const cut = image.lastIndexOf('_');
      const breed = breedName(cut > 0 ? image.slice(0, cut) : image);
      const known = names.get(id);
      if (known !== undefined && known !== breed)
        throw new Error(
          `${title}: line ${line} of ${path}: class ${id} is "${breed}" here but "${known}" before`,
        );
      names.set(id, breed);
      return { path: `images/${image}.jpg`, label: id - 1 };
    });
  };
  const trainval = await read('annotations/trainval.txt');
  const test = await read('annotations/test.txt');
  const count = Math.max(...names.keys());
  const classes: string[] = [];
  for (let id = 1; id <= count; id++) {
    const n = names.get(id);
    if (n === undefined)
      throw new Error(
        `${title}: class ${id} of 1..${count} has no image in annotations/trainval.txt or test.txt`,
      );
    classes.push(n);
  }
  return { classes, trainval, test };
}

async function checkPets(dir: string): Promise<void> {
  const lists = await readLists(dir);
  const all = [...lists.trainval, ...lists.test].map((e) => e.path);
  await requireMembers(dir, all, PETS_SOURCE, 'images.tar.gz');
}

/**
 * Oxford-IIIT Pets, 37 breeds: the official trainval list (3,680 images)
 * less a seeded stratified val (default 10% of each breed), and the
 * official test list (3,669).
 */
export async function loadOxfordPets(
  opts: LoadStandardDatasetOptions = {},
): Promise<StandardImageDataset> {
  const root = await prepareStandardData(PETS_SOURCE, opts, checkPets);
  const { classes, trainval, test } = await readLists(root);
  const entries = (list: readonly { path: string; label: number }[]): ImageEntry[] =>
    list.map((e) => ({ path: join(root, e.path), label: e.label }));
  const pool = entries(trainval);
  const split = drawValidation(
    Int32Array.from(pool, (e) => e.label),
    classes,
    opts,
    `${PETS_SOURCE.title} trainval`,
  );
  return {
    kind: 'images',
    layout: 'splits',
    skipped: [],
    id: 'pets',
    title: PETS_SOURCE.title,
    root,
    classes,
    splits: {
      train: Array.from(split.train, (i) => pool[i] as ImageEntry),
      val: Array.from(split.val, (i) => pool[i] as ImageEntry),
      test: entries(test),
    },
    drawn: split.val.length > 0 ? ['val'] : [],
    warnings: split.warnings,
  };
}
