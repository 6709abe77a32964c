import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { idxToDataset, parseIdx } from './idx.js';
import { sha256Hex, transferlabCacheRoot } from './standard/download.js';
import type { Dataset } from './types.js';

export const FASHION_MNIST_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export type FashionMnistSplit = 'train' | 'test';

/** The official file names: 60,000 training and 10,000 test ("t10k") examples. */
export const FASHION_MNIST_FILES: Readonly<
  Record<FashionMnistSplit, { readonly images: string; readonly labels: string }>
> = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
};

/**
 * SHA-256 of the four official gzip files, as shipped by Zalando and packaged
 * unchanged by Debian's `dataset-fashion-mnist`.
 */
export const FASHION_MNIST_SHA256: Readonly<Record<string, string>> = {
  'train-images-idx3-ubyte.gz': 'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7',
  'train-labels-idx1-ubyte.gz': '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
  't10k-images-idx3-ubyte.gz': 'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
  't10k-labels-idx1-ubyte.gz': '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
};

/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** Environment variable that overrides `DEFAULT_FASHION_MNIST_DIR`. */
export const FASHION_MNIST_DIR_ENV = 'TRANSFERLAB_FASHION_MNIST_DIR';
/** The upstream download location used by `{download: true}`. */
export const DEFAULT_FASHION_MNIST_BASE_URL =
  'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com';

const FIX_HINT =
  "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), pass {dir}, " +
  `set ${FASHION_MNIST_DIR_ENV}, or pass {download: ...}`;

export interface FashionMnistDownloadOptions {
  /** Base URL; files are fetched from `${baseUrl}/${file}`. */
  readonly baseUrl: string;
  /** Default: `$XDG_CACHE_HOME/transferlab/fashion-mnist`, else `~/.cache/transferlab/fashion-mnist`. */
  readonly cacheDir?: string;
  /**
   * Expected SHA-256 per file name, overriding `FASHION_MNIST_SHA256` (for
   * tests or re-packaged mirrors). A file with no known checksum is refused.
   */
  readonly sha256?: Readonly<Record<string, string>>;
  /** Per-request timeout in ms (default 10 minutes). */
  readonly timeoutMs?: number;
}

export interface LoadFashionMnistOptions {
  /**
   * Directory holding the IDX files. Default: `$TRANSFERLAB_FASHION_MNIST_DIR`,
   * else `/usr/share/datasets/fashion-mnist`. Cannot be combined with `download`.
   */
  readonly dir?: string;
  /** Default 'train' (60,000 examples); 'test' is the 10,000-example t10k split. */
  readonly split?: FashionMnistSplit;
  /**
   * Fetch the files into a cache directory (verified by SHA-256) instead of
   * reading a local directory. `true` uses the upstream URL and default cache.
   */
  readonly download?: boolean | FashionMnistDownloadOptions;
}

export function defaultFashionMnistCacheDir(): string {
  return join(transferlabCacheRoot(), 'fashion-mnist');
}

/** The local directory `loadFashionMnist` reads (without `download`), and why. */
export function resolveFashionMnistDir(dir?: string): { dir: string; source: string } {
  if (dir !== undefined) return { dir: resolve(dir), source: 'the dir option' };
  const fromEnv = process.env[FASHION_MNIST_DIR_ENV];
  if (fromEnv) return { dir: resolve(fromEnv), source: FASHION_MNIST_DIR_ENV };
  return { dir: DEFAULT_FASHION_MNIST_DIR, source: 'the default directory' };
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`Fashion-MNIST file ${path} could not be read: ${(err as Error).message}`);
  }
}

/**
 * Make sure `cacheDir/file` exists with the expected SHA-256, downloading it
 * from `${baseUrl}/${file}` when it is missing or its checksum does not match.
 * The download is verified before it is written, and written atomically
 * (temporary file + rename), so a cache file is either absent or complete.
 * Returns the cached file's path.
 */
export async function ensureFashionMnistFile(
  file: string,
  opts: FashionMnistDownloadOptions,
): Promise<string> {
  const expected = (opts.sha256?.[file] ?? FASHION_MNIST_SHA256[file])?.toLowerCase();
  if (!expected)
    throw new Error(
      `No known SHA-256 checksum for Fashion-MNIST file "${file}"; refusing to download it`,
    );
  const cacheDir = resolve(opts.cacheDir ?? defaultFashionMnistCacheDir());
  const dest = join(cacheDir, file);
  const cached = await readIfExists(dest);
  if (cached && sha256Hex(cached) === expected) return dest;

  const url = `${opts.baseUrl.replace(/\/+$/, '')}/${file}`;
  let body: Uint8Array;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 600_000) });
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`.trim());
    body = new Uint8Array(await response.arrayBuffer());
  } catch (err) {
    throw new Error(`Downloading Fashion-MNIST file from ${url} failed: ${(err as Error).message}`);
  }
  const actual = sha256Hex(body);
  if (actual !== expected) {
    throw new Error(
      `Checksum mismatch for Fashion-MNIST download ${url}: expected SHA-256 ${expected}, got ${actual} (${body.length} bytes); the file was not saved`,
    );
  }
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${randomUUID()}`;
  try {
    await writeFile(tmp, body);
    await rename(tmp, dest);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new Error(`Could not write Fashion-MNIST cache file ${dest}: ${(err as Error).message}`);
  }
  return dest;
}

/** Read a local IDX file, accepting the uncompressed name (without .gz) as a fallback. */
async function readLocal(
  dir: string,
  file: string,
  source: string,
): Promise<{ path: string; bytes: Buffer }> {
  const path = join(dir, file);
  const gz = await readIfExists(path);
  if (gz) return { path, bytes: gz };
  const rawPath = path.replace(/\.gz$/, '');
  if (rawPath !== path) {
    const raw = await readIfExists(rawPath);
    if (raw) return { path: rawPath, bytes: raw };
  }
  throw new Error(
    `Fashion-MNIST file not found: ${path} (directory from ${source}). To fix: ${FIX_HINT}.`,
  );
}

const memo = new Map<string, Promise<Dataset>>();

/** Forget memoised Fashion-MNIST datasets (frees their memory). */
export function clearFashionMnistMemo(): void {
  memo.clear();
}

/**
 * Load a Fashion-MNIST split as a Dataset: 28×28×1 images, pixels scaled from
 * bytes to [0, 1], labels 0..9 with `FASHION_MNIST_CLASS_NAMES`, in file order.
 *
 * Files come from a local directory (`dir`, else `$TRANSFERLAB_FASHION_MNIST_DIR`,
 * else Debian's `/usr/share/datasets/fashion-mnist`) or, with `download`, from
 * a SHA-256-verified cache that is filled over HTTP on first use.
 *
 * Results are memoised per (directory, split): repeated calls return the same
 * object, whose arrays must be treated as read-only. A failed load is not
 * memoised.
 */
export function loadFashionMnist(opts: LoadFashionMnistOptions = {}): Promise<Dataset> {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test') {
    return Promise.reject(
      new Error(`loadFashionMnist: split must be "train" or "test", got ${JSON.stringify(split)}`),
    );
  }
  if (opts.download && opts.dir !== undefined) {
    return Promise.reject(
      new Error(
        'loadFashionMnist: pass either {dir} or {download}, not both (use download.cacheDir to choose where downloads go)',
      ),
    );
  }
  const download: FashionMnistDownloadOptions | undefined =
    opts.download === true
      ? { baseUrl: DEFAULT_FASHION_MNIST_BASE_URL }
      : opts.download
        ? opts.download
        : undefined;
  const where = download
    ? {
        dir: resolve(download.cacheDir ?? defaultFashionMnistCacheDir()),
        source: 'the download cache',
      }
    : resolveFashionMnistDir(opts.dir);
  const key = `${download ? 'download' : 'local'}\u0000${where.dir}\u0000${split}`;
  const hit = memo.get(key);
  if (hit) return hit;
  const pending = load(split, where, download);
  memo.set(key, pending);
  pending.catch(() => {
    if (memo.get(key) === pending) memo.delete(key);
  });
  return pending;
}

async function load(
  split: FashionMnistSplit,
  where: { dir: string; source: string },
  download: FashionMnistDownloadOptions | undefined,
): Promise<Dataset> {
  const files = FASHION_MNIST_FILES[split];
  let images: { path: string; bytes: Buffer };
  let labels: { path: string; bytes: Buffer };
  if (download) {
    const cacheOpts = { ...download, cacheDir: where.dir };
    const imagesPath = await ensureFashionMnistFile(files.images, cacheOpts);
    const labelsPath = await ensureFashionMnistFile(files.labels, cacheOpts);
    images = { path: imagesPath, bytes: await readFile(imagesPath) };
    labels = { path: labelsPath, bytes: await readFile(labelsPath) };
  } else {
    images = await readLocal(where.dir, files.images, where.source);
    labels = await readLocal(where.dir, files.labels, where.source);
  }
  const imageIdx = parseIdx(images.bytes, images.path);
  const labelIdx = parseIdx(labels.bytes, labels.path);
  return idxToDataset(imageIdx, images.path, labelIdx, labels.path, {
    name: `fashion-mnist-${split}`,
    numClasses: 10,
    classNames: FASHION_MNIST_CLASS_NAMES,
  });
}
