/**
 * `pnpm bench stream-memory`: does a folder far larger than a memory cap
 * stream through an epoch with flat memory?
 *
 * It writes (once, cached) N photo-like JPEGs — gradients, soft blobs and
 * sensor-like noise at 400–640 px, JPEG sizes of real photos — whose decoded
 * float32 size at the input size is ≥ 10× the cap, then streams one epoch
 * through `imageBatches` with fit's evaluation transforms and one with its
 * augmentation, each in a fresh child process that samples its own RSS and
 * V8 heap every ~50 ms. Flat means: RSS does not grow over the second half
 * of the epoch (slope ≈ 0 MiB per 1000 images) and what the epoch adds to
 * the process stays under the cap, a small fraction of the decoded epoch.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParseArgsConfig } from 'node:util';
import { type ImageEntry, imageBatches, type TransformStep } from '@transferlab/datasets';
import { evalTransforms, trainTransforms } from './preprocess.js';
import { loadSharp } from './sharp.js';

export type StreamPass = 'eval' | 'augment';

export interface StreamMemoryOptions {
  /** Images in the epoch (default: enough for 10× the cap decoded). */
  images?: number;
  /** Input height = width (default 224). */
  size?: number;
  /** The memory cap, MiB (default 240). */
  capMb?: number;
  batch?: number;
  /** Where the photos are written and kept (default $TMPDIR/transferlab-stream-memory). */
  dir?: string;
  /** Decodes in flight (default imageBatches' own: min(4, cores)). */
  concurrency?: number;
  /** Default both. */
  passes?: readonly StreamPass[];
  sampleMs?: number;
  /** Node options of the measuring child (default: as this process, or tsx's for sources). */
  execArgv?: readonly string[];
  /** Progress lines (default stderr). */
  log?: (line: string) => void;
}

export interface StreamMemoryRow {
  pass: StreamPass;
  images: number;
  /** N × size × size × 3 × 4: the epoch as float32 arrays. */
  decodedBytes: number;
  capBytes: number;
  /** RSS after imports, before the epoch. */
  rssStart: number;
  /** Largest sampled RSS during the epoch, and the kernel's high-water mark for the process. */
  peakRss: number;
  maxRss: number;
  /** RSS when 10%, 50% and 90% of the images had been decoded. */
  rssAt10: number;
  rssAt50: number;
  rssAt90: number;
  /** Least-squares slope of RSS over the second half of the epoch, MiB per 1000 images. */
  slopeMbPer1000: number;
  peakHeapUsed: number;
  imagesPerSecond: number;
  seconds: number;
  samples: number;
  batches: number;
  skipped: number;
}

export interface StreamMemoryResult {
  rows: StreamMemoryRow[];
  dir: string;
  /** Mean JPEG size of the photos, bytes. */
  meanFileBytes: number;
  notes: string[];
}

const FORMAT_VERSION = 1;
const CLASSES = 10;
const MIB = 2 ** 20;

/** A 32-bit xorshift: fast enough to fill hundreds of megapixels of noise. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** One photo-like RGB image: a two-colour gradient, a few soft blobs, and noise. */
function photoPixels(i: number): { data: Uint8Array; width: number; height: number } {
  const r = xorshift(i * 2654435761 + 12345);
  const width = 400 + Math.floor(r() * 241);
  const height = Math.round(width * (0.66 + r() * 0.34));
  const a = [r() * 255, r() * 255, r() * 255];
  const b = [r() * 255, r() * 255, r() * 255];
  const angle = r() * Math.PI * 2;
  const [dx, dy] = [Math.cos(angle) / width, Math.sin(angle) / height];
  const blobs = Array.from({ length: 3 + Math.floor(r() * 4) }, () => ({
    x: r() * width,
    y: r() * height,
    r2: (20 + r() * width * 0.25) ** 2,
    c: [r() * 255, r() * 255, r() * 255],
  }));
  // Noise like a phone sensor's in dim light: it is what makes JPEGs of photos 40–100 kB.
  const noise = 16 + r() * 24;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + (x - width / 2) * dx + (y - height / 2) * dy));
      let w = 0;
      let cr = 0;
      let cg = 0;
      let cb = 0;
      for (const blob of blobs) {
        const d2 = (x - blob.x) ** 2 + (y - blob.y) ** 2;
        if (d2 < blob.r2) {
          const k = 1 - d2 / blob.r2;
          w += k;
          cr += k * (blob.c[0] as number);
          cg += k * (blob.c[1] as number);
          cb += k * (blob.c[2] as number);
        }
      }
      const keep = 1 / (1 + w);
      const o = (y * width + x) * 3;
      const base = [
        (a[0] as number) * (1 - t) + (b[0] as number) * t,
        (a[1] as number) * (1 - t) + (b[1] as number) * t,
        (a[2] as number) * (1 - t) + (b[2] as number) * t,
      ];
      const blob = [cr, cg, cb];
      for (let c = 0; c < 3; c++)
        data[o + c] = Math.max(
          0,
          Math.min(
            255,
            Math.round(
              (base[c] as number) * keep + (blob[c] as number) * keep + (r() - 0.5) * noise,
            ),
          ),
        );
    }
  }
  return { data, width, height };
}

const photoPath = (dir: string, i: number) =>
  join(dir, `class-${i % CLASSES}`, `photo-${String(i).padStart(6, '0')}.jpg`);

/**
 * Photos 0..n-1 in `dir/class-k/`, written once: a manifest records how
 * many exist, so a larger N only writes the new ones.
 */
export async function ensurePhotos(
  dir: string,
  n: number,
  log: (line: string) => void = () => {},
): Promise<{ entries: ImageEntry[]; meanFileBytes: number }> {
  const manifestPath = join(dir, 'manifest.json');
  let manifest = { version: FORMAT_VERSION, count: 0, bytes: 0 };
  try {
    const read = JSON.parse(await readFile(manifestPath, 'utf8'));
    if (read.version === FORMAT_VERSION) manifest = read;
  } catch {
    // No photos yet.
  }
  if (manifest.count < n) {
    const sharp = loadSharp();
    for (let k = 0; k < CLASSES; k++) await mkdir(join(dir, `class-${k}`), { recursive: true });
    const started = Date.now();
    let bytes = manifest.bytes;
    let done = manifest.count;
    // Encoding runs on libuv's threads while the next image's pixels are drawn.
    const inFlight = new Set<Promise<void>>();
    for (let i = manifest.count; i < n; i++) {
      const { data, width, height } = photoPixels(i);
      const job = sharp(data, { raw: { width, height, channels: 3 } })
        .jpeg({ quality: 85 + (i % 8) })
        .toBuffer()
        .then(async (jpeg) => {
          await writeFile(photoPath(dir, i), jpeg);
          bytes += jpeg.length;
          done++;
          if (done % 500 === 0)
            log(
              `stream-memory: wrote ${done}/${n} photos (${((Date.now() - started) / 1000).toFixed(0)} s)`,
            );
        });
      const tracked = job.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size >= 4) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    manifest = { version: FORMAT_VERSION, count: n, bytes };
    const tmp = `${manifestPath}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(manifest));
    await rename(tmp, manifestPath);
  }
  const entries = Array.from({ length: n }, (_, i) => ({
    path: photoPath(dir, i),
    label: i % CLASSES,
  }));
  return { entries, meanFileBytes: manifest.bytes / manifest.count };
}

/** Least-squares slope of y on x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    sxx += ((xs[i] as number) - mx) ** 2;
  }
  return sxx === 0 ? Number.NaN : sxy / sxx;
}

interface ChildJob {
  pass: StreamPass;
  entries: ImageEntry[];
  size: number;
  batch: number;
  concurrency?: number;
  sampleMs: number;
}

interface Sample {
  images: number;
  rss: number;
  heapUsed: number;
}

type ChildRow = Omit<StreamMemoryRow, 'decodedBytes' | 'capBytes'>;

/** The measuring side: one epoch, sampled; runs in a fresh process. */
async function measureEpoch(job: ChildJob): Promise<ChildRow> {
  const imagenet = { op: 'normalize', preset: 'imagenet' } as const;
  const transforms: TransformStep[] =
    job.pass === 'eval'
      ? evalTransforms(job.size, job.size, imagenet)
      : trainTransforms(job.size, job.size, imagenet);
  const stream = imageBatches(job.entries, {
    batchSize: job.batch,
    transforms,
    decode: { channels: 3 },
    seed: 0,
    epoch: 1,
    shuffle: job.pass === 'augment',
    ...(job.concurrency !== undefined ? { concurrency: job.concurrency } : {}),
  });
  (globalThis as { gc?: () => void }).gc?.();
  const rssStart = process.memoryUsage.rss();
  const samples: Sample[] = [];
  const sample = () => {
    const m = process.memoryUsage();
    samples.push({ images: stream.stats.decoded, rss: m.rss, heapUsed: m.heapUsed });
  };
  sample();
  const timer = setInterval(sample, job.sampleMs);
  const started = performance.now();
  let batches = 0;
  try {
    for await (const b of stream) if (b.y.length > 0) batches++;
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - started) / 1000;
  sample();
  const n = stream.stats.decoded;
  const at = (p: number) =>
    (samples.find((s) => s.images >= p * n) ?? (samples.at(-1) as Sample)).rss;
  const half = samples.filter((s) => s.images >= n / 2);
  return {
    pass: job.pass,
    images: n,
    rssStart,
    peakRss: Math.max(...samples.map((s) => s.rss)),
    // resourceUsage reports kilobytes.
    maxRss: process.resourceUsage().maxRSS * 1024,
    rssAt10: at(0.1),
    rssAt50: at(0.5),
    rssAt90: at(0.9),
    slopeMbPer1000:
      slope(
        half.map((s) => s.images),
        half.map((s) => s.rss / MIB),
      ) * 1000,
    peakHeapUsed: Math.max(...samples.map((s) => s.heapUsed)),
    imagesPerSecond: n / seconds,
    seconds,
    samples: samples.length,
    batches,
    skipped: stream.stats.skipped,
  };
}

/** The file to fork: this module, as source (under tsx) or built. */
const SELF = fileURLToPath(import.meta.url);

function runChild(job: ChildJob, execArgv: readonly string[]): Promise<ChildRow> {
  return new Promise((resolveRow, reject) => {
    const child: ChildProcess = fork(SELF, ['--stream-memory-child'], {
      execArgv: [...execArgv, '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let row: ChildRow | undefined;
    let error: string | undefined;
    child.on('message', (m: { row?: ChildRow; error?: string }) => {
      if (m.row) row = m.row;
      if (m.error) error = m.error;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (row) resolveRow(row);
      else
        reject(new Error(`stream-memory: the measuring process failed (exit ${code}): ${error}`));
    });
    child.send(job);
  });
}

if (process.argv.includes('--stream-memory-child') && process.argv[1] === SELF && process.send) {
  process.once('message', (job: ChildJob) => {
    measureEpoch(job).then(
      (row) => process.send?.({ row }, () => process.exit(0)),
      (err: Error) => process.send?.({ error: err.stack ?? err.message }, () => process.exit(1)),
    );
  });
}

export async function streamMemoryBench(
  opts: StreamMemoryOptions = {},
): Promise<StreamMemoryResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const size = opts.size ?? 224;
  const capMb = opts.capMb ?? 240;
  const batch = opts.batch ?? 64;
  const capBytes = capMb * MIB;
  const perImage = size * size * 3 * 4;
  const images = opts.images ?? Math.ceil((10 * capBytes) / perImage);
  for (const [name, v] of [
    ['images', images],
    ['size', size],
    ['batch', batch],
  ] as const)
    if (!(Number.isInteger(v) && v >= 1))
      throw new Error(`stream-memory: --${name} must be a positive integer, got ${v}`);
  if (!(capMb > 0)) throw new Error(`stream-memory: --cap-mb must be positive, got ${capMb}`);
  const notes: string[] = [];
  if (images * perImage < 10 * capBytes)
    notes.push(
      `${images} images decode to ${((images * perImage) / MIB).toFixed(0)} MiB, less than 10× the cap: give --images ${Math.ceil((10 * capBytes) / perImage)} or more for the 10× test`,
    );
  const dir = resolve(opts.dir ?? join(tmpdir(), 'transferlab-stream-memory'));
  const { entries, meanFileBytes } = await ensurePhotos(dir, images, log);
  const execArgv =
    opts.execArgv ??
    (SELF.endsWith('.ts') ? ['--conditions=@transferlab/source', '--import', 'tsx'] : []);
  const rows: StreamMemoryRow[] = [];
  for (const pass of opts.passes ?? (['eval', 'augment'] as const)) {
    log(`stream-memory: ${pass} epoch over ${images} photos at ${size}×${size}…`);
    const row = await runChild(
      {
        pass,
        entries,
        size,
        batch,
        sampleMs: opts.sampleMs ?? 50,
        ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
      },
      execArgv,
    );
    rows.push({ ...row, decodedBytes: images * perImage, capBytes });
  }
  return { rows, dir, meanFileBytes, notes };
}

const mb = (b: number) => (b / MIB).toFixed(0);

/**
 * The largest second-half slope called flat: 1% of what 1000 images take
 * decoded (5.7 MiB at 224×224). Keeping even one decoded image in a hundred
 * would exceed it; the V8 heap's garbage-collection sawtooth does not.
 */
export function flatSlope(r: StreamMemoryRow): number {
  return (0.01 * 1000 * (r.decodedBytes / r.images)) / MIB;
}

/** Flat: RSS does not grow over the second half of the epoch, and what the epoch adds stays under the cap. */
export function isFlat(r: StreamMemoryRow): boolean {
  return Math.abs(r.slopeMbPer1000) < flatSlope(r) && r.peakRss - r.rssStart <= r.capBytes;
}

export function formatStreamMemory(res: StreamMemoryResult): string {
  const lines = [
    '| pass | images | decoded epoch (MiB) | cap (MiB) | RSS before (MiB) | peak RSS (MiB) | added by the epoch (MiB) | RSS at 10% / 50% / 90% (MiB) | slope, 2nd half (MiB / 1000 images) | peak V8 heap used (MiB) | images/s |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...res.rows.map(
      (r) =>
        `| ${r.pass} | ${r.images} | ${mb(r.decodedBytes)} | ${mb(r.capBytes)} | ${mb(r.rssStart)} | ${mb(r.peakRss)} | ${mb(r.peakRss - r.rssStart)} | ${mb(r.rssAt10)} / ${mb(r.rssAt50)} / ${mb(r.rssAt90)} | ${r.slopeMbPer1000.toFixed(2)} | ${mb(r.peakHeapUsed)} | ${r.imagesPerSecond.toFixed(1)} |`,
    ),
    '',
    ...res.rows.map(
      (r) =>
        `${r.pass}: ${isFlat(r) ? 'flat' : 'NOT flat'} — slope ${r.slopeMbPer1000.toFixed(2)} MiB / 1000 images over the second half (flat: |slope| < ${flatSlope(r).toFixed(1)}, 1% of 1000 decoded images); the epoch added ${mb(r.peakRss - r.rssStart)} MiB (${r.peakRss - r.rssStart <= r.capBytes ? 'within' : 'ABOVE'} the cap); peak RSS ${mb(r.peakRss)} MiB (kernel high-water mark ${mb(r.maxRss)} MiB) is ${((100 * r.peakRss) / r.decodedBytes).toFixed(1)}% of the decoded epoch; ${r.samples} samples over ${r.seconds.toFixed(0)} s${r.skipped ? `; ${r.skipped} file(s) skipped` : ''}`,
    ),
    `photos: ${res.dir} (mean JPEG ${(res.meanFileBytes / 1000).toFixed(0)} kB); "RSS before" is Node, the loader and @transferlab/datasets (sharp/libvips, tfjs-core) before any image`,
    ...res.notes.map((n) => `note: ${n}`),
  ];
  return `${lines.join('\n')}\n`;
}

type Values = Record<string, string | boolean | string[] | undefined>;

function num(name: string, v: Values[string]): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0))
    throw new Error(`--${name} must be a positive number, got "${v}"`);
  return n;
}

/** The CLI entry, in the shape of cli.ts's command table. */
export const streamMemory: {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<number>;
} = {
  usage: `pnpm bench stream-memory [--images N] [--size 224] [--cap-mb 240] [--batch 64] [--dir DIR] [--concurrency K] [--json]
  memory while an image folder ≥ 10× a cap streams through an epoch (eval transforms, then augmentation):
  writes N photo-like JPEGs once (default: enough for 10× the cap decoded; kept in --dir, default
  $TMPDIR/transferlab-stream-memory), samples RSS and V8 heap every 50 ms in a fresh process, prints a table`,
  options: {
    images: { type: 'string' },
    size: { type: 'string' },
    'cap-mb': { type: 'string' },
    batch: { type: 'string' },
    dir: { type: 'string' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values, positionals) {
    if (positionals.length > 0)
      throw new Error(`stream-memory: unexpected argument(s) ${positionals.join(' ')}`);
    const images = num('images', values.images);
    const size = num('size', values.size);
    const capMb = num('cap-mb', values['cap-mb']);
    const batch = num('batch', values.batch);
    const concurrency = num('concurrency', values.concurrency);
    const res = await streamMemoryBench({
      ...(images !== undefined ? { images } : {}),
      ...(size !== undefined ? { size } : {}),
      ...(capMb !== undefined ? { capMb } : {}),
      ...(batch !== undefined ? { batch } : {}),
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(typeof values.dir === 'string' ? { dir: values.dir } : {}),
    });
    process.stdout.write(
      values.json ? `${JSON.stringify(res, null, 2)}\n` : formatStreamMemory(res),
    );
    return res.rows.every(isFlat) ? 0 : 1;
  },
};
