import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ImageEntry, ImageFolderScan } from '../images/image-folder.js';
import { loadImageFolderDataset } from '../images/stream.js';
import { makeTempDir, removeDir } from '../images/test-fixtures.js';
import { CIFAR10_SOURCE, loadCifar10, loadCifar100 } from './cifar.js';
import { loadCub200 } from './cub200.js';
import { sha256Hex } from './download.js';
import { FLOWERS102_CLASS_NAMES, loadFlowers102 } from './flowers102.js';
import { loadOxfordPets } from './pets.js';
import { loadStandardDataset, STANDARD_DATASETS, standardDatasetInfo } from './registry.js';
import {
  CIFAR10_NAMES,
  CLASS_COLOURS,
  cifar10Archive,
  cifar100Archive,
  cifarPixel,
  cubArchive,
  type FileServer,
  flowersFiles,
  PETS_BREEDS,
  petsFiles,
  startFileServer,
} from './test-fixtures.js';
import { STANDARD_DATASET_IDS } from './types.js';

// Every dataset is fetched from a local HTTP server serving small archives
// in the real formats; each test passes the fixtures' SHA-256 as the
// expected checksums (the override a mirror of re-packed files needs too).

let server: FileServer;
let cifar10: ReturnType<typeof cifar10Archive>;
let cifar100: Buffer;
let flowers: Map<string, Buffer>;
let pets: Map<string, Buffer>;
let cub: Buffer;

function shas(files: ReadonlyMap<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...files].map(([name, bytes]) => [name, sha256Hex(bytes)]));
}

beforeAll(async () => {
  cifar10 = cifar10Archive();
  cifar100 = cifar100Archive();
  flowers = await flowersFiles();
  pets = await petsFiles();
  cub = await cubArchive();
  const closed = await startFileServer(new Map());
  OFFLINE = `${closed.base}/files`;
  await closed.close();
  server = await startFileServer(
    new Map<string, Uint8Array>([
      ['cifar-10-binary.tar.gz', cifar10.archive],
      ['cifar-100-binary.tar.gz', cifar100],
      ...flowers,
      ...pets,
      ['CUB_200_2011.tgz', cub],
    ]),
  );
});
afterAll(async () => {
  await server.close();
});

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir('transferlab-standard-');
  server.requests.length = 0;
});
afterEach(async () => {
  await removeDir(dir);
});

const mirror = () => `${server.base}/files`;
const cacheDir = () => join(dir, 'cache');
/** No server listens here (a port freed in beforeAll): any download attempt fails. */
let OFFLINE: string;

async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p.slice(root.length + 1));
    }
  };
  await walk(root);
  return out.sort();
}

function labelCounts(entries: readonly { label: number }[], n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const e of entries) c[e.label] = (c[e.label] as number) + 1;
  return c;
}

describe('CIFAR-10 (binary)', () => {
  const sha = () => ({ 'cifar-10-binary.tar.gz': sha256Hex(cifar10.archive) });

  it('loads the official split, labels, names and NHWC pixels; the cache is reused', async () => {
    const progress: number[] = [];
    const opts = {
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: sha(),
      valFraction: 0.2,
      onProgress: (p: { bytes: number; total?: number }) => {
        progress.push(p.bytes);
        expect(p.total).toBe(cifar10.archive.length);
      },
    };
    const ds = await loadCifar10(opts);
    expect(server.requests).toEqual(['/files/cifar-10-binary.tar.gz']);
    expect(progress.at(-1)).toBe(cifar10.archive.length);
    expect(ds.kind).toBe('arrays');
    expect(ds.classes).toEqual(CIFAR10_NAMES);
    const { train, val, test } = ds.splits;
    // 15 training records (5 per class of 0..2): 20% of each class to val.
    expect([train.y.length, val.y.length, test.y.length]).toEqual([12, 3, 4]);
    expect(
      labelCounts(
        Array.from(val.y, (label) => ({ label })),
        10,
      ).slice(0, 3),
    ).toEqual([1, 1, 1]);
    expect(ds.drawn).toEqual(['val']);
    expect(train.shape).toEqual([32, 32, 3]);
    expect(train.numClasses).toBe(10);
    expect(test.classNames).toEqual(CIFAR10_NAMES);
    expect(Array.from(test.y)).toEqual(cifar10.testLabels);

    // Channel-major record → NHWC: test image 1, row 2, column 5 (pixel p = 69).
    const p = 2 * 32 + 5;
    const at = (c: number) => test.x[1 * 3072 + p * 3 + c] as number;
    expect([at(0), at(1), at(2)]).toEqual([
      Math.fround(cifarPixel(101, 0, p) / 255),
      Math.fround(cifarPixel(101, 1, p) / 255),
      Math.fround(cifarPixel(101, 2, p) / 255),
    ]);
    // …and every value of every test image.
    let mismatches = 0;
    for (let j = 0; j < 4; j++)
      for (let q = 0; q < 1024; q++)
        for (let c = 0; c < 3; c++)
          if (test.x[j * 3072 + q * 3 + c] !== Math.fround(cifarPixel(100 + j, c, q) / 255))
            mismatches++;
    expect(mismatches).toBe(0);
    // Train and val together are the 15 records, each once, with its own pixels.
    const seen = [...Array.from({ length: 12 }, (_, j) => train.x[j * 3072] as number)];
    seen.push(...Array.from({ length: 3 }, (_, j) => val.x[j * 3072] as number));
    expect(seen.map((v) => Math.round(v * 255)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 15 }, (_, k) => cifarPixel(k, 0, 0)).sort((a, b) => a - b),
    );

    const again = await loadCifar10(opts);
    expect(server.requests).toHaveLength(1); // from the cache, no request
    expect(Array.from(again.splits.val.y)).toEqual(Array.from(val.y));
    // The seed decides val.
    const other = await loadCifar10({ ...opts, seed: 5 });
    expect(server.requests).toHaveLength(1);
    expect(other.splits.val.y.length).toBe(3);
  });

  it('refuses a checksum mismatch and leaves no file in the cache', async () => {
    const wrong = 'ab'.repeat(32);
    const err = (await loadCifar10({
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: { 'cifar-10-binary.tar.gz': wrong },
    }).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(`${server.base}/files/cifar-10-binary.tar.gz`);
    expect(err.message).toContain(`expected SHA-256 ${wrong}, got ${sha256Hex(cifar10.archive)}`);
    expect(err.message).toContain('the file was removed');
    expect(await filesUnder(cacheDir())).toEqual([]);
  });

  it('refuses the fixture against the recorded (official) checksum', async () => {
    await expect(loadCifar10({ mirror: mirror(), cacheDir: cacheDir() })).rejects.toThrow(
      `expected SHA-256 ${CIFAR10_SOURCE.files[0]?.sha256}`,
    );
    expect(await filesUnder(cacheDir())).toEqual([]);
  });

  it('loads a localArchive with no server', async () => {
    const local = join(dir, 'cifar-10-binary.tar.gz');
    await writeFile(local, cifar10.archive);
    const ds = await loadCifar10({
      localArchive: local,
      mirror: OFFLINE,
      cacheDir: cacheDir(),
      sha256: sha(),
      valFraction: 0,
    });
    expect(server.requests).toEqual([]);
    expect([ds.splits.train.y.length, ds.splits.val.y.length]).toEqual([15, 0]);
    expect(ds.drawn).toEqual([]);
    expect(await stat(local).then((s) => s.size)).toBe(cifar10.archive.length); // untouched
    // A wrong local file is refused by checksum, naming it.
    const bad = join(dir, 'other.tar.gz');
    await writeFile(bad, cifar100);
    await expect(
      loadCifar10({ localArchive: bad, cacheDir: join(dir, 'c2'), sha256: sha() }),
    ).rejects.toThrow(`Checksum mismatch for CIFAR-10 file cifar-10-binary.tar.gz at ${bad}`);
  });

  it('names the URL on a 404, a truncated body, and when offline, with the fix', async () => {
    const opts = { cacheDir: cacheDir(), sha256: sha() };
    const missing = `${server.base}/nothing-here`;
    await expect(loadCifar10({ ...opts, mirror: missing })).rejects.toThrow(
      `from ${missing}/cifar-10-binary.tar.gz failed: HTTP 404 Not Found`,
    );
    const cut = `${server.base}/truncated`;
    const err = (await loadCifar10({ ...opts, mirror: cut }).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(`from ${cut}/cifar-10-binary.tar.gz failed`);
    expect(err.message).toMatch(/incomplete|truncated/);
    const offline = (await loadCifar10({ ...opts, mirror: OFFLINE }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(offline.message).toContain(`from ${OFFLINE}/cifar-10-binary.tar.gz failed`);
    expect(offline.message).toContain('ECONNREFUSED');
    expect(offline.message).toContain("{localArchive: '/path/to/cifar-10-binary.tar.gz'}");
    expect(offline.message).toContain('{mirror:');
    const stall = `${server.base}/stall`;
    await expect(loadCifar10({ ...opts, mirror: stall, timeoutMs: 300 })).rejects.toThrow(
      `from ${stall}/cifar-10-binary.tar.gz failed after 100 of ${cifar10.archive.length} bytes: no data for 300 ms`,
    );
    expect(await filesUnder(cacheDir())).toEqual([]);
  });

  it('names the file when a local archive is truncated, and caches nothing', async () => {
    const cut = cifar10.archive.subarray(0, Math.floor(cifar10.archive.length * 0.6));
    const local = join(dir, 'cifar-10-binary.tar.gz');
    await writeFile(local, cut);
    await expect(
      loadCifar10({
        localArchive: local,
        cacheDir: cacheDir(),
        sha256: { 'cifar-10-binary.tar.gz': sha256Hex(cut) },
      }),
    ).rejects.toThrow(`archive ${local} is truncated`);
    expect(await filesUnder(cacheDir())).toEqual([]);
  });
});

describe('CIFAR-100 (binary)', () => {
  it('reads fine and coarse labels with their names', async () => {
    const opts = {
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: { 'cifar-100-binary.tar.gz': sha256Hex(cifar100) },
      valFraction: 0.5,
    };
    const fine = await loadCifar100(opts);
    expect(fine.classes).toHaveLength(100);
    expect(fine.classes[2]).toBe('fine_2');
    expect([fine.splits.train.y.length, fine.splits.val.y.length]).toEqual([3, 3]);
    expect(Array.from(fine.splits.train.y)).toEqual([0, 1, 2]);
    expect(Array.from(fine.splits.test.y)).toEqual([2, 0]);
    // The pixels follow the label bytes (two of them here).
    expect(fine.splits.test.x[3] as number).toBe(Math.fround(cifarPixel(100, 0, 1) / 255));
    const coarse = await loadStandardDataset('cifar100', {
      ...opts,
      label: 'coarse',
      valFraction: 0,
    });
    expect(server.requests).toHaveLength(1);
    expect(coarse.classes).toHaveLength(20);
    expect((coarse.splits.train as { name: string }).name).toBe('cifar100-coarse-train');
    expect(Array.from((coarse.splits.train as { y: Int32Array }).y)).toEqual([0, 0, 0, 0, 1, 1]);
    expect(Array.from((coarse.splits.test as { y: Int32Array }).y)).toEqual([1, 0]);
  });
});

describe('Oxford Flowers-102', () => {
  it('uses setid.mat and imagelabels.mat for the official splits; images decode', async () => {
    const ds = await loadFlowers102({
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: shas(flowers),
    });
    expect(server.requests.sort()).toEqual(
      ['/files/102flowers.tgz', '/files/imagelabels.mat', '/files/setid.mat'].sort(),
    );
    expect(ds.kind).toBe('images');
    expect(ds.classes).toBe(FLOWERS102_CLASS_NAMES);
    expect(ds.classes).toHaveLength(102);
    expect(ds.drawn).toEqual([]);
    const rel = (es: readonly ImageEntry[]) =>
      es.map((e) => [e.path.slice(ds.root.length + 1), e.label]);
    expect(rel(ds.splits.train)).toEqual([
      ['jpg/image_00001.jpg', 0],
      ['jpg/image_00002.jpg', 1],
      ['jpg/image_00003.jpg', 2],
    ]);
    expect(rel(ds.splits.val).map((e) => e[1])).toEqual([0, 1, 2]);
    expect(rel(ds.splits.test)).toEqual([
      ['jpg/image_00009.jpg', 2],
      ['jpg/image_00008.jpg', 1],
      ['jpg/image_00007.jpg', 0],
    ]);
    // The image-folder machinery takes the entries as they are.
    const loaded = await loadImageFolderDataset(ds.splits.test, {
      classes: ds.classes,
      decode: { size: [8, 8] },
    });
    expect(loaded.shape).toEqual([8, 8, 3]);
    expect(Array.from(loaded.y)).toEqual([2, 1, 0]);
    const first = Array.from(loaded.x.subarray(0, 3), (v) => Math.round(v * 255));
    for (let c = 0; c < 3; c++)
      expect(Math.abs((first[c] as number) - (CLASS_COLOURS[2]?.[c] as number))).toBeLessThan(6);

    await loadStandardDataset('flowers102', {
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: shas(flowers),
    });
    expect(server.requests).toHaveLength(3);
  });

  it('takes a local folder; a missing setid.mat is named', async () => {
    const local = join(dir, 'flowers');
    await mkdir(local);
    for (const [name, bytes] of flowers) await writeFile(join(local, name), bytes);
    const ds = await loadFlowers102({
      localArchive: local,
      mirror: OFFLINE,
      cacheDir: cacheDir(),
      sha256: shas(flowers),
    });
    expect(ds.splits.test).toHaveLength(3);
    expect(server.requests).toEqual([]);

    const partial = join(dir, 'partial');
    await mkdir(partial);
    await writeFile(join(partial, '102flowers.tgz'), flowers.get('102flowers.tgz') as Buffer);
    await writeFile(join(partial, 'imagelabels.mat'), flowers.get('imagelabels.mat') as Buffer);
    await expect(
      loadFlowers102({ localArchive: partial, cacheDir: join(dir, 'c2'), sha256: shas(flowers) }),
    ).rejects.toThrow(`localArchive folder ${partial} has no setid.mat`);
    // One path for a dataset of three files is refused with the way out.
    await expect(
      loadFlowers102({ localArchive: join(partial, '102flowers.tgz'), cacheDir: join(dir, 'c2') }),
    ).rejects.toThrow('pass localArchive as a folder holding them');
  });

  it('a setid.mat without tstid is named, and nothing is cached', async () => {
    const { matFile } = await import('./test-fixtures.js');
    const setid = matFile({ trnid: [1, 2, 3], valid: [4, 5, 6] });
    const files = new Map(flowers);
    files.set('setid.mat', setid);
    const local = join(dir, 'flowers');
    await mkdir(local);
    for (const [name, bytes] of files) await writeFile(join(local, name), bytes);
    await expect(
      loadFlowers102({ localArchive: local, cacheDir: cacheDir(), sha256: shas(files) }),
    ).rejects.toThrow(/setid\.mat has no numeric variable "tstid" \(it holds: trnid, valid\)/);
    expect(await filesUnder(cacheDir())).toEqual([]);
  });
});

describe('Oxford-IIIT Pets', () => {
  it('reads trainval.txt / test.txt, names breeds, draws a seeded val', async () => {
    const opts = { mirror: mirror(), cacheDir: cacheDir(), sha256: shas(pets), valFraction: 0.25 };
    const ds = await loadOxfordPets(opts);
    expect(ds.classes).toEqual(['Abyssinian', 'American Bulldog', 'Bengal']);
    const scan: ImageFolderScan = ds; // what code written for image folders takes
    expect([scan.layout, scan.skipped, scan.drawn]).toEqual(['splits', [], ['val']]);
    expect([ds.splits.train.length, ds.splits.val.length, ds.splits.test.length]).toEqual([
      9, 3, 6,
    ]);
    expect(labelCounts(ds.splits.val, 3)).toEqual([1, 1, 1]);
    expect(labelCounts(ds.splits.test, 3)).toEqual([2, 2, 2]);
    expect(ds.splits.test[0]?.path).toBe(join(ds.root, 'images', `${PETS_BREEDS[0]}_50.jpg`));
    const trainval = new Set([...ds.splits.train, ...ds.splits.val].map((e) => e.path));
    expect(trainval.size).toBe(12);
    const loaded = await loadImageFolderDataset(ds.splits.val, {
      classes: ds.classes,
      decode: { size: [8, 8] },
    });
    expect(Array.from(loaded.y)).toEqual(ds.splits.val.map((e) => e.label));

    const again = await loadOxfordPets(opts);
    expect(again.splits.val).toEqual(ds.splits.val);
    expect(server.requests).toHaveLength(2);
  });

  it('names a missing member of an archive', async () => {
    const broken = await petsFiles('annotations/trainval.txt');
    const local = join(dir, 'pets');
    await mkdir(local);
    for (const [name, bytes] of broken) await writeFile(join(local, name), bytes);
    await expect(
      loadOxfordPets({ localArchive: local, cacheDir: cacheDir(), sha256: shas(broken) }),
    ).rejects.toThrow(
      'Oxford-IIIT Pets: annotations/trainval.txt is missing from annotations.tar.gz',
    );
    const noImage = await petsFiles('images/Bengal_22.jpg');
    await expect(
      loadOxfordPets({
        localArchive: Object.fromEntries(
          await Promise.all(
            [...noImage].map(async ([name, bytes]) => {
              const p = join(dir, `x-${name}`);
              await writeFile(p, bytes);
              return [name, p] as const;
            }),
          ),
        ),
        cacheDir: cacheDir(),
        sha256: shas(noImage),
        valFraction: 0.25,
      }),
    ).rejects.toThrow('images/Bengal_22.jpg is listed but missing from images.tar.gz');
    expect(await filesUnder(cacheDir())).toEqual([]);
  });
});

describe('CUB-200-2011', () => {
  it('reads images.txt, image_class_labels.txt, train_test_split.txt and classes.txt', async () => {
    const ds = await loadCub200({
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: { 'CUB_200_2011.tgz': sha256Hex(cub) },
      valFraction: 0.34,
    });
    expect(ds.classes).toEqual(['Black footed Albatross', 'Laysan Albatross', 'Sooty Albatross']);
    expect([ds.splits.train.length, ds.splits.val.length, ds.splits.test.length]).toEqual([
      6, 3, 3,
    ]);
    expect(ds.splits.test.map((e) => e.label)).toEqual([0, 1, 2]);
    expect(ds.splits.test[0]?.path).toBe(
      join(
        ds.root,
        'CUB_200_2011/images/001.Black_footed_Albatross/Black_footed_Albatross_004_4.jpg',
      ),
    );
    // The long (ustar-prefixed) member arrived whole and decodes.
    const long = [...ds.splits.train, ...ds.splits.val].find((e) =>
      e.path.includes('photographed'),
    );
    expect(long?.label).toBe(2);
    const loaded = await loadImageFolderDataset([long as ImageEntry], {
      classes: ds.classes,
      decode: { size: [8, 8] },
    });
    expect(Math.round((loaded.x[2] as number) * 255)).toBeGreaterThan(200);
  });

  it('keepArchives: false drops the download but keeps the unpacked data', async () => {
    const opts = {
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: { 'CUB_200_2011.tgz': sha256Hex(cub) },
      valFraction: 0,
      keepArchives: false,
    };
    await loadCub200(opts);
    const files = await filesUnder(cacheDir());
    expect(files.some((f) => f.startsWith('cub200/downloads/'))).toBe(false);
    expect(files).toContain('cub200/data/.transferlab-complete.json');
    await loadCub200(opts);
    expect(server.requests).toHaveLength(1);
  });
});

describe('the registry', () => {
  it('lists the five ids with recorded checksums of the official files', () => {
    expect(STANDARD_DATASET_IDS).toEqual(['cifar10', 'cifar100', 'flowers102', 'pets', 'cub200']);
    for (const id of STANDARD_DATASET_IDS) {
      const info = standardDatasetInfo(id);
      expect(info.id).toBe(id);
      for (const f of info.files) {
        expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(f.url.startsWith('https://')).toBe(true);
        expect(f.bytes).toBeGreaterThan(0);
      }
    }
    expect(STANDARD_DATASETS.flowers102.sizes).toEqual({ train: 1020, val: 1020, test: 6149 });
  });

  it('refuses an unknown id, listing the valid ones', async () => {
    const msg =
      'Unknown standard dataset "cifar-10"; the standard datasets are cifar10, cifar100, flowers102, pets, cub200';
    expect(() => standardDatasetInfo('cifar-10')).toThrow(msg);
    await expect(loadStandardDataset('cifar-10')).rejects.toThrow(msg);
    await expect(loadStandardDataset('pets', { label: 'coarse' })).rejects.toThrow('for cifar100');
    await expect(
      loadOxfordPets({ mirror: mirror(), cacheDir: cacheDir(), sha256: shas(pets) }),
    ).rejects.toThrow('cannot draw a val split with valFraction 0.1');
    await expect(loadStandardDataset('cifar10', { label: 'coarse' })).rejects.toThrow(
      "label: 'coarse' is for CIFAR-100",
    );
  });

  it('loads by id, from the same cache', async () => {
    const ds = await loadStandardDataset('cub200', {
      mirror: mirror(),
      cacheDir: cacheDir(),
      sha256: { 'CUB_200_2011.tgz': sha256Hex(cub) },
      valFraction: 0,
    });
    expect(ds.kind).toBe('images');
    expect(ds.splits.train).toHaveLength(9);
  });
});
