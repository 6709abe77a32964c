import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  clearFashionMnistMemo,
  DEFAULT_FASHION_MNIST_DIR,
  ensureFashionMnistFile,
  FASHION_MNIST_CLASS_NAMES,
  FASHION_MNIST_DIR_ENV,
  FASHION_MNIST_FILES,
  FASHION_MNIST_SHA256,
  loadFashionMnist,
  resolveFashionMnistDir,
} from './fashion-mnist.js';
import { classCounts } from './transforms.js';

function idxBytes(dims: number[], data: number[]): Buffer {
  const header = [0, 0, 0x08, dims.length];
  for (const d of dims)
    header.push((d >>> 24) & 0xff, (d >>> 16) & 0xff, (d >>> 8) & 0xff, d & 0xff);
  return Buffer.from([...header, ...data]);
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

// Train: three 2×2 images; test: two 2×2 images.
const TRAIN_PIXELS = [0, 255, 51, 102, 10, 20, 30, 40, 255, 255, 0, 0];
const TRAIN_LABELS = [9, 0, 5];
const TEST_PIXELS = [1, 2, 3, 4, 200, 201, 202, 203];
const TEST_LABELS = [8, 1];
const FILES = {
  'train-images-idx3-ubyte.gz': gzipSync(idxBytes([3, 2, 2], TRAIN_PIXELS)),
  'train-labels-idx1-ubyte.gz': gzipSync(idxBytes([3], TRAIN_LABELS)),
  't10k-images-idx3-ubyte.gz': gzipSync(idxBytes([2, 2, 2], TEST_PIXELS)),
  't10k-labels-idx1-ubyte.gz': gzipSync(idxBytes([2], TEST_LABELS)),
};
const FILE_SHA256 = Object.fromEntries(
  Object.entries(FILES).map(([name, bytes]) => [name, sha256(bytes)]),
);

let root: string;
async function freshDir(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
}
async function writeAll(dir: string, files: Record<string, Uint8Array>): Promise<void> {
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'transferlab-fmnist-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  clearFashionMnistMemo();
});

describe('loadFashionMnist from a directory', () => {
  it('loads both splits with exact pixel values, labels and class names', async () => {
    const dir = await freshDir('good');
    await writeAll(dir, FILES);
    const train = await loadFashionMnist({ dir });
    expect(train.name).toBe('fashion-mnist-train');
    expect(train.shape).toEqual([2, 2, 1]);
    expect(Array.from(train.y)).toEqual([9, 0, 5]);
    expect(Array.from(train.x)).toEqual(TRAIN_PIXELS.map((p) => Math.fround(p / 255)));
    expect(train.x[1]).toBe(1);
    expect(train.x[2]).toBeCloseTo(0.2, 7);
    expect(train.classNames).toEqual(FASHION_MNIST_CLASS_NAMES);
    expect(train.classNames?.[9]).toBe('Ankle boot');
    const test = await loadFashionMnist({ dir, split: 'test' });
    expect(Array.from(test.y)).toEqual([8, 1]);
    expect(test.x[4]).toBe(Math.fround(200 / 255));
  });

  it('memoises per (dir, split)', async () => {
    const dir = await freshDir('memo');
    await writeAll(dir, FILES);
    const a = await loadFashionMnist({ dir, split: 'train' });
    expect(await loadFashionMnist({ dir, split: 'train' })).toBe(a);
    expect(await loadFashionMnist({ dir, split: 'test' })).not.toBe(a);
    clearFashionMnistMemo();
    expect(await loadFashionMnist({ dir, split: 'train' })).not.toBe(a);
  });

  it('accepts uncompressed files under the name without .gz', async () => {
    const dir = await freshDir('raw');
    await writeFile(join(dir, 't10k-images-idx3-ubyte'), idxBytes([2, 2, 2], TEST_PIXELS));
    await writeFile(join(dir, 't10k-labels-idx1-ubyte'), idxBytes([2], TEST_LABELS));
    const test = await loadFashionMnist({ dir, split: 'test' });
    expect(Array.from(test.y)).toEqual([8, 1]);
    expect(test.x[0]).toBe(Math.fround(1 / 255));
  });

  it('reads the directory from TRANSFERLAB_FASHION_MNIST_DIR', async () => {
    const dir = await freshDir('env');
    await writeAll(dir, FILES);
    const before = process.env[FASHION_MNIST_DIR_ENV];
    process.env[FASHION_MNIST_DIR_ENV] = dir;
    try {
      expect(resolveFashionMnistDir()).toEqual({ dir, source: FASHION_MNIST_DIR_ENV });
      const test = await loadFashionMnist({ split: 'test' });
      expect(Array.from(test.y)).toEqual([8, 1]);
    } finally {
      if (before === undefined) delete process.env[FASHION_MNIST_DIR_ENV];
      else process.env[FASHION_MNIST_DIR_ENV] = before;
    }
    if (before === undefined) expect(resolveFashionMnistDir().dir).toBe(DEFAULT_FASHION_MNIST_DIR);
  });

  it('names the full path and the fixes when a file is missing', async () => {
    const dir = await freshDir('empty');
    const err = await loadFashionMnist({ dir, split: 'train' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toContain(
      `Fashion-MNIST file not found: ${join(dir, 'train-images-idx3-ubyte.gz')}`,
    );
    expect(msg).toContain('apt-get install dataset-fashion-mnist');
    expect(msg).toContain('pass {dir}');
    expect(msg).toContain('TRANSFERLAB_FASHION_MNIST_DIR');
    expect(msg).toContain('{download: ...}');
    // A failed load is not memoised: adding the files makes the next call succeed.
    await writeAll(dir, FILES);
    expect((await loadFashionMnist({ dir, split: 'train' })).y.length).toBe(3);
  });

  it('names the corrupt file', async () => {
    const dir = await freshDir('corrupt');
    await writeAll(dir, FILES);
    const labelsPath = join(dir, 'train-labels-idx1-ubyte.gz');
    const gz = FILES['train-labels-idx1-ubyte.gz'];
    await writeFile(labelsPath, gz.subarray(0, gz.length - 6));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(`${labelsPath}: corrupt gzip data`);
    await writeFile(labelsPath, gzipSync(idxBytes([4], [1, 2, 3, 4])));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(
      `IDX size mismatch: ${join(dir, 'train-images-idx3-ubyte.gz')} holds 3 images but ${labelsPath} holds 4 labels`,
    );
    const badMagic = idxBytes([3], TRAIN_LABELS);
    badMagic[1] = 7;
    await writeFile(labelsPath, badMagic);
    await expect(loadFashionMnist({ dir })).rejects.toThrow(`${labelsPath}: bad IDX magic number`);
  });

  it('validates options', async () => {
    await expect(loadFashionMnist({ split: 'val' as 'train' })).rejects.toThrow(
      'split must be "train" or "test", got "val"',
    );
    await expect(loadFashionMnist({ dir: root, download: true })).rejects.toThrow(
      'pass either {dir} or {download}',
    );
  });
});

describe('loadFashionMnist with download', () => {
  let server: Server;
  let baseUrl: string;
  let serveDir: string;
  const hits = new Map<string, number>();

  beforeAll(async () => {
    serveDir = await freshDir('served');
    server = createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '/').replace(/^\/files\//, ''));
      hits.set(name, (hits.get(name) ?? 0) + 1);
      readFile(join(serveDir, name)).then(
        (body) => {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(body);
        },
        () => {
          res.writeHead(404);
          res.end('not found');
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/files`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('downloads into the cache, verifies checksums, writes atomically and reuses the cache', async () => {
    await writeAll(serveDir, FILES);
    const cacheDir = join(root, 'cache-ok');
    hits.clear();
    const download = { baseUrl, cacheDir, sha256: FILE_SHA256 };
    const test = await loadFashionMnist({ split: 'test', download });
    expect(Array.from(test.y)).toEqual([8, 1]);
    expect(test.x[7]).toBe(Math.fround(203 / 255));
    expect(hits.get('t10k-images-idx3-ubyte.gz')).toBe(1);
    expect(hits.get('t10k-labels-idx1-ubyte.gz')).toBe(1);
    // Only the two finished files are in the cache: no temporary files left behind.
    expect((await readdir(cacheDir)).sort()).toEqual([
      't10k-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
    ]);
    expect(sha256(await readFile(join(cacheDir, 't10k-images-idx3-ubyte.gz')))).toBe(
      FILE_SHA256['t10k-images-idx3-ubyte.gz'],
    );

    // Fresh load (memo cleared): the verified cache is reused without any request.
    clearFashionMnistMemo();
    const again = await loadFashionMnist({ split: 'test', download });
    expect(Array.from(again.y)).toEqual([8, 1]);
    expect(hits.get('t10k-images-idx3-ubyte.gz')).toBe(1);

    // A damaged cache file fails its checksum and is fetched again.
    await writeFile(join(cacheDir, 't10k-labels-idx1-ubyte.gz'), 'garbage');
    const path = await ensureFashionMnistFile('t10k-labels-idx1-ubyte.gz', download);
    expect(path).toBe(join(cacheDir, 't10k-labels-idx1-ubyte.gz'));
    expect(hits.get('t10k-labels-idx1-ubyte.gz')).toBe(2);
    expect(sha256(await readFile(path))).toBe(FILE_SHA256['t10k-labels-idx1-ubyte.gz']);
  });

  it('refuses a download whose checksum does not match, naming URL, expected and actual hash', async () => {
    const corrupted = Buffer.from(FILES['train-labels-idx1-ubyte.gz']);
    const last = corrupted.length - 1;
    corrupted[last] = (corrupted[last] as number) ^ 0xff;
    await writeFile(join(serveDir, 'train-labels-idx1-ubyte.gz'), corrupted);
    const cacheDir = join(root, 'cache-bad');
    const err = await ensureFashionMnistFile('train-labels-idx1-ubyte.gz', {
      baseUrl,
      cacheDir,
      sha256: FILE_SHA256,
    }).catch((e: Error) => e);
    const msg = (err as Error).message;
    expect(msg).toContain(`${baseUrl}/train-labels-idx1-ubyte.gz`);
    expect(msg).toContain(`expected SHA-256 ${FILE_SHA256['train-labels-idx1-ubyte.gz']}`);
    expect(msg).toContain(`got ${sha256(corrupted)}`);
    expect(existsSync(join(cacheDir, 'train-labels-idx1-ubyte.gz'))).toBe(false);

    // With the official table, our small files are rejected too.
    await writeAll(serveDir, FILES);
    await expect(
      loadFashionMnist({ split: 'train', download: { baseUrl, cacheDir } }),
    ).rejects.toThrow(
      `expected SHA-256 ${FASHION_MNIST_SHA256['train-images-idx3-ubyte.gz']}, got ${FILE_SHA256['train-images-idx3-ubyte.gz']}`,
    );
    expect(existsSync(join(cacheDir, 'train-images-idx3-ubyte.gz'))).toBe(false);
  });

  it('reports HTTP errors with the URL', async () => {
    const cacheDir = join(root, 'cache-404');
    await expect(
      ensureFashionMnistFile('t10k-images-idx3-ubyte.gz', {
        baseUrl: `${baseUrl}/missing`,
        cacheDir,
      }),
    ).rejects.toThrow(
      `Downloading Fashion-MNIST file from ${baseUrl}/missing/t10k-images-idx3-ubyte.gz failed: HTTP 404`,
    );
    await expect(ensureFashionMnistFile('other.gz', { baseUrl, cacheDir })).rejects.toThrow(
      'No known SHA-256 checksum for Fashion-MNIST file "other.gz"',
    );
  });

  it('downloads the real t10k files against the official checksums (when Debian files are present)', async (ctx) => {
    const real = DEFAULT_FASHION_MNIST_DIR;
    ctx.skip(
      !existsSync(join(real, FASHION_MNIST_FILES.test.images)),
      `${real} not found: install Debian's dataset-fashion-mnist to run this test`,
    );
    for (const name of Object.values(FASHION_MNIST_FILES.test)) {
      await writeFile(join(serveDir, name), await readFile(join(real, name)));
    }
    const cacheDir = join(root, 'cache-real');
    const test = await loadFashionMnist({ split: 'test', download: { baseUrl, cacheDir } });
    expect(test.y.length).toBe(10_000);
    expect(sha256(await readFile(join(cacheDir, FASHION_MNIST_FILES.test.images)))).toBe(
      FASHION_MNIST_SHA256[FASHION_MNIST_FILES.test.images],
    );
  });
});

describe('real Fashion-MNIST', () => {
  it('checksums of the installed files match the hard-coded table', async (ctx) => {
    const { dir } = resolveFashionMnistDir();
    ctx.skip(
      !existsSync(join(dir, FASHION_MNIST_FILES.train.labels)),
      `${dir} not found: install Debian's dataset-fashion-mnist to run this test`,
    );
    for (const split of ['train', 'test'] as const) {
      for (const name of Object.values(FASHION_MNIST_FILES[split])) {
        expect(sha256(await readFile(join(dir, name))), name).toBe(FASHION_MNIST_SHA256[name]);
      }
    }
  });

  it('loads the t10k split: 10,000 examples, 1,000 per class', async (ctx) => {
    const { dir } = resolveFashionMnistDir();
    ctx.skip(
      !existsSync(join(dir, FASHION_MNIST_FILES.test.images)),
      `${dir} not found: install Debian's dataset-fashion-mnist to run this test`,
    );
    const test = await loadFashionMnist({ split: 'test' });
    expect(test.y.length).toBe(10_000);
    expect(test.x.length).toBe(10_000 * 784);
    expect(test.shape).toEqual([28, 28, 1]);
    expect(classCounts(test)).toEqual(new Array(10).fill(1000));
    let max = 0;
    for (const v of test.x) if (v > max) max = v;
    expect(max).toBe(1);
    expect(await loadFashionMnist({ split: 'test', dir })).toBe(test);
  });
});
