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
import { safeMemberPath } from './tar.js';
import type { LoadStandardDatasetOptions, StandardImageDataset } from './types.js';

// Caltech-UCSD Birds-200-2011 (Wah et al. 2011): CUB_200_2011.tgz holds
// CUB_200_2011/images/<NNN.Class_Name>/<file>.jpg and, one image a line by
// image id: images.txt "<id> <path under images/>", image_class_labels.txt
// "<id> <class 1..200>", train_test_split.txt "<id> <1 train | 0 test>";
// classes.txt "<class id> <NNN.Class_Name>". The official split is
// 5,994 train / 5,794 test images.
//
// Checksum: SHA-256 and size from TensorFlow Datasets'
// url_checksums/caltech_birds2011.txt (the same file, then on Google Drive;
// torchvision's prototype CUB200 records the same SHA-256); its MD5,
// 97eceeb196236b17998738112f37df78, is quoted with it in several loaders.
// The archive now lives in Caltech's data repository.

export const CUB200_SOURCE: StandardSource = {
  id: 'cub200',
  title: 'CUB-200-2011',
  files: [
    {
      name: 'CUB_200_2011.tgz',
      url: 'https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1',
      sha256: '0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081',
      bytes: 1_150_585_339,
      kind: 'tar.gz',
    },
  ],
};

const DIR = 'CUB_200_2011';
const ARCHIVE = 'CUB_200_2011.tgz';

/** '001.Black_footed_Albatross' → 'Black footed Albatross'. */
function className(raw: string): string {
  return raw.replace(/^\d+\./, '').replace(/_/g, ' ');
}

interface CubLists {
  readonly classes: string[];
  readonly train: { path: string; label: number }[];
  readonly test: { path: string; label: number }[];
}

async function readLists(dir: string): Promise<CubLists> {
  const title = CUB200_SOURCE.title;
  const member = (f: string) => requireMember(dir, `${DIR}/${f}`, CUB200_SOURCE, ARCHIVE);
  const classesPath = await member('classes.txt');
  const imagesPath = await member('images.txt');
  const labelsPath = await member('image_class_labels.txt');
  const splitPath = await member('train_test_split.txt');

  const classRows = await readTable(classesPath, 2, title);
  const classes: string[] = [];
  for (const { line, fields } of classRows) {
    const id = intField(fields[0] as string, classesPath, line, 'the class id', title);
    if (id !== classes.length + 1)
      throw new Error(
        `${title}: line ${line} of ${classesPath}: class ids must run 1, 2, 3, …; got ${id} after ${classes.length}`,
      );
    classes.push(className(fields.slice(1).join(' ')));
  }

  // image id → value, for the three per-image files.
  const byId = async (path: string, what: string) => {
    const m = new Map<number, { line: number; value: string }>();
    for (const { line, fields } of await readTable(path, 2, title)) {
      const id = intField(fields[0] as string, path, line, 'the image id', title);
      if (m.has(id)) throw new Error(`${title}: line ${line} of ${path}: image ${id} listed twice`);
      m.set(id, { line, value: fields.slice(1).join(' ') });
    }
    if (m.size === 0) throw new Error(`${title}: ${path} lists no ${what}`);
    return m;
  };
  const images = await byId(imagesPath, 'images');
  const labels = await byId(labelsPath, 'labels');
  const isTrain = await byId(splitPath, 'split flags');

  const train: CubLists['train'] = [];
  const test: CubLists['test'] = [];
  const ids = [...images.keys()].sort((a, b) => a - b);
  for (const id of ids) {
    const image = images.get(id) as { line: number; value: string };
    const lab = labels.get(id);
    if (!lab)
      throw new Error(`${title}: image ${id} of ${imagesPath} has no line in ${labelsPath}`);
    const flag = isTrain.get(id);
    if (!flag)
      throw new Error(`${title}: image ${id} of ${imagesPath} has no line in ${splitPath}`);
    const c = intField(lab.value, labelsPath, lab.line, 'the class id', title);
    if (c < 1 || c > classes.length)
      throw new Error(
        `${title}: line ${lab.line} of ${labelsPath}: class ${c} is outside 1..${classes.length}`,
      );
    if (flag.value !== '0' && flag.value !== '1')
      throw new Error(
        `${title}: line ${flag.line} of ${splitPath}: the flag must be 1 (train) or 0 (test), got "${flag.value}"`,
      );
    if (!safeMemberPath(image.value))
      throw new Error(
        `${title}: line ${image.line} of ${imagesPath}: image path "${image.value}" leaves the images folder`,
      );
    const entry = { path: `${DIR}/images/${image.value}`, label: c - 1 };
    (flag.value === '1' ? train : test).push(entry);
  }
  return { classes, train, test };
}

async function checkCub(dir: string): Promise<void> {
  const lists = await readLists(dir);
  const all = [...lists.train, ...lists.test].map((e) => e.path);
  await requireMembers(dir, all, CUB200_SOURCE, ARCHIVE);
}

/**
 * CUB-200-2011, 200 bird species: the official train images (5,994) less a
 * seeded stratified val (default 10% of each species), and the official
 * test images (5,794), in image-id order. Class names drop the "NNN."
 * prefix and underscores ('Black footed Albatross').
 */
export async function loadCub200(
  opts: LoadStandardDatasetOptions = {},
): Promise<StandardImageDataset> {
  const root = await prepareStandardData(CUB200_SOURCE, opts, checkCub);
  const { classes, train, test } = await readLists(root);
  const entries = (list: readonly { path: string; label: number }[]): ImageEntry[] =>
    list.map((e) => ({ path: join(root, e.path), label: e.label }));
  const pool = entries(train);
  const split = drawValidation(
    Int32Array.from(pool, (e) => e.label),
    classes,
    opts,
    `${CUB200_SOURCE.title} train`,
  );
  return {
    kind: 'images',
    layout: 'splits',
    skipped: [],
    id: 'cub200',
    title: CUB200_SOURCE.title,
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
