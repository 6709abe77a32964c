// Fixtures for the tests in this folder: small archives in each dataset's
// real format (tar.gz written by a tiny ustar writer, MAT-files by a tiny
// Level 5 writer, JPEGs by sharp) and a local HTTP server that counts
// requests. Not exported from the package.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';

export interface TarMember {
  readonly path: string;
  readonly data?: Uint8Array | string;
  /** '0' file (default), '5' folder, '2' symlink, 'x' pax header, 'L' GNU long name. */
  readonly type?: string;
  readonly linkname?: string;
}

function putString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length)
    throw new Error(`tar fixture: "${value}" does not fit ${length} bytes`);
  bytes.copy(block, offset);
}

function putOctal(block: Buffer, offset: number, length: number, value: number): void {
  putString(block, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

/** A ustar header; names over 100 bytes are split into prefix/name at a '/'. */
function header(path: string, size: number, type: string, linkname = ''): Buffer {
  const block = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(path) > 100) {
    const cut = path.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(path.slice(cut + 1)) > 100)
      throw new Error(`tar fixture: cannot split "${path}" into ustar prefix and name`);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  putString(block, 0, 100, name);
  putOctal(block, 100, 8, type === '5' ? 0o755 : 0o644);
  putOctal(block, 108, 8, 0);
  putOctal(block, 116, 8, 0);
  putOctal(block, 124, 12, size);
  putOctal(block, 136, 12, 1_700_000_000);
  block.fill(0x20, 148, 156);
  putString(block, 156, 1, type);
  putString(block, 157, 100, linkname);
  putString(block, 257, 6, 'ustar\0');
  putString(block, 263, 2, '00');
  putString(block, 345, 155, prefix);
  let sum = 0;
  for (const b of block) sum += b;
  putString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** An uncompressed tar of `members`, ended by two zero blocks. */
export function tar(members: readonly TarMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data =
      typeof m.data === 'string' ? Buffer.from(m.data, 'utf8') : Buffer.from(m.data ?? []);
    parts.push(header(m.path, data.length, m.type ?? '0', m.linkname));
    parts.push(data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function tarGz(members: readonly TarMember[]): Buffer {
  return gzipSync(tar(members));
}

/** A pax extended-header body: "<len> key=value\n" records. */
export function paxRecords(fields: Readonly<Record<string, string>>): string {
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body);
    len += String(len + String(len).length).length;
    out += `${len}${body}`;
  }
  return out;
}

// ---- MATLAB Level 5 MAT-files, as MATLAB's `save` writes them ----

const MI_INT8 = 1;
const MI_UINT8 = 2;
const MI_UINT16 = 4;
const MI_INT32 = 5;
const MI_UINT32 = 6;
const MI_DOUBLE = 9;
const MI_MATRIX = 14;
const MI_COMPRESSED = 15;

interface Endian {
  readonly little: boolean;
}

type Width = 2 | 4 | 8;

/** Numbers in the file's byte order: unsigned 16/32-bit, signed 32-bit, or doubles. */
function pack(values: readonly number[], kind: 'u16' | 'u32' | 'i32' | 'f64', e: Endian): Buffer {
  const width: Width = kind === 'u16' ? 2 : kind === 'f64' ? 8 : 4;
  const b = Buffer.alloc(width * values.length);
  const le = e.little;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    const o = width * i;
    if (kind === 'u16') le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o);
    else if (kind === 'u32') le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o);
    else if (kind === 'i32') le ? b.writeInt32LE(v, o) : b.writeInt32BE(v, o);
    else le ? b.writeDoubleLE(v, o) : b.writeDoubleBE(v, o);
  }
  return b;
}

function u32s(values: readonly number[], e: Endian): Buffer {
  return pack(values, 'u32', e);
}

function element(type: number, data: Buffer, e: Endian, pad = true): Buffer {
  // Small data element: up to 4 bytes packed with the tag (MATLAB does this for short names).
  if (data.length <= 4 && data.length > 0 && type !== MI_MATRIX && type !== MI_COMPRESSED) {
    const out = Buffer.alloc(8);
    const word = ((data.length << 16) | type) >>> 0;
    if (e.little) out.writeUInt32LE(word, 0);
    else out.writeUInt32BE(word, 0);
    data.copy(out, 4);
    return out;
  }
  const padding = pad ? (8 - (data.length % 8)) % 8 : 0;
  return Buffer.concat([u32s([type, data.length], e), data, Buffer.alloc(padding)]);
}

export interface MatWriteOptions {
  /** zlib-compress each variable, as MATLAB's default -v7 (default true). */
  readonly compress?: boolean;
  /** Store integer-valued doubles in the smallest unsigned type, as MATLAB does (default true). */
  readonly smallestType?: boolean;
  /** Byte order (default little-endian). */
  readonly bigEndian?: boolean;
}

/** A MAT-file of double matrices: `vars[name] = {dims, data (column-major)}` or a row vector. */
export function matFile(
  vars: Readonly<Record<string, readonly number[] | { dims: number[]; data: readonly number[] }>>,
  opts: MatWriteOptions = {},
): Buffer {
  const e: Endian = { little: !opts.bigEndian };
  const text = 'MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2009';
  const head = Buffer.alloc(128, 0x20);
  head.write(text, 0, 'latin1');
  head.fill(0, 116, 124);
  if (e.little) head.writeUInt16LE(0x0100, 124);
  else head.writeUInt16BE(0x0100, 124);
  head.write(e.little ? 'IM' : 'MI', 126, 'latin1');
  const parts: Buffer[] = [head];
  for (const [name, v] of Object.entries(vars)) {
    const { dims, data } = Array.isArray(v)
      ? { dims: [1, v.length], data: v as readonly number[] }
      : (v as { dims: number[]; data: readonly number[] });
    const ints = data.every((x) => Number.isInteger(x) && x >= 0);
    const max = Math.max(0, ...data);
    let real: Buffer;
    if (opts.smallestType !== false && ints && max <= 0xff) {
      real = element(MI_UINT8, Buffer.from(data), e);
    } else if (opts.smallestType !== false && ints && max <= 0xffff) {
      real = element(MI_UINT16, pack(data, 'u16', e), e);
    } else {
      real = element(MI_DOUBLE, pack(data, 'f64', e), e);
    }
    const dimsBuf = pack(dims, 'i32', e);
    const body = Buffer.concat([
      element(MI_UINT32, u32s([6 /* mxDOUBLE_CLASS */, 0], e), e),
      element(MI_INT32, dimsBuf, e),
      element(MI_INT8, Buffer.from(name, 'latin1'), e),
      real,
    ]);
    const matrix = element(MI_MATRIX, body, e);
    parts.push(
      opts.compress === false ? matrix : element(MI_COMPRESSED, deflateSync(matrix), e, false),
    );
  }
  return Buffer.concat(parts);
}

// ---- images ----

/** An 8×8 JPEG of one colour. */
export async function solidJpeg(rgb: readonly [number, number, number], size = 8): Promise<Buffer> {
  return sharp({
    create: {
      width: size,
      height: size,
      channels: 3,
      background: { r: rgb[0], g: rgb[1], b: rgb[2] },
    },
  })
    .jpeg({ quality: 95, chromaSubsampling: '4:4:4' })
    .toBuffer();
}

/** Class c's colour in the image fixtures (well apart, so decoding tells them apart). */
export const CLASS_COLOURS: readonly (readonly [number, number, number])[] = [
  [220, 30, 30],
  [30, 220, 30],
  [30, 30, 220],
  [220, 220, 30],
];

// ---- a local HTTP server ----

export interface FileServer {
  /** http://127.0.0.1:<port>; files are at `${base}/files/<name>`. */
  readonly base: string;
  /** Every request path, in order. */
  readonly requests: string[];
  /** What `/files/<name>` serves (tests may change it). */
  readonly files: Map<string, Uint8Array>;
  close(): Promise<void>;
}

/**
 * Serves `/files/<name>` from `files`, `/truncated/<name>` as the first half
 * of the body under the full Content-Length (then drops the connection),
 * `/stall/<name>` as 100 bytes and then silence, and 404 for anything else.
 */
export async function startFileServer(files: Map<string, Uint8Array>): Promise<FileServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(url);
    const m = /^\/(files|truncated|stall)\/([^/?]+)/.exec(url);
    const body = m ? files.get(decodeURIComponent(m[2] as string)) : undefined;
    if (!m || !body) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(body.length),
    });
    if (m[1] === 'files') {
      res.end(Buffer.from(body));
      return;
    }
    if (m[1] === 'stall') {
      res.write(Buffer.from(body.subarray(0, 100))); // then nothing, until the client gives up
      return;
    }
    res.write(Buffer.from(body.subarray(0, Math.floor(body.length / 2))), () => {
      res.socket?.destroy();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    files,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// ---- the five datasets, in their real layouts ----

/** Pixel value of CIFAR fixture record `k`, channel c (0 R, 1 G, 2 B), pixel p = row·32 + col. */
export function cifarPixel(k: number, c: number, p: number): number {
  return (k * 37 + c * 85 + p * 3) % 256;
}

function cifarRecord(labels: readonly number[], k: number): Buffer {
  const rec = Buffer.alloc(labels.length + 3072);
  labels.forEach((l, i) => {
    rec[i] = l;
  });
  for (let c = 0; c < 3; c++)
    for (let p = 0; p < 1024; p++) rec[labels.length + c * 1024 + p] = cifarPixel(k, c, p);
  return rec;
}

export const CIFAR10_NAMES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

/**
 * cifar-10-binary.tar.gz: five data batches of 3 records (train record k
 * has label k % 3, pixels cifarPixel(k, …)) and a test batch of 4 records
 * (labels [2, 0, 1, 2], pixels cifarPixel(100 + j, …)).
 */
export function cifar10Archive(): { archive: Buffer; testLabels: number[] } {
  const members: TarMember[] = [{ path: 'cifar-10-batches-bin/', type: '5' }];
  for (let b = 0; b < 5; b++) {
    const recs = [0, 1, 2].map((r) => {
      const k = 3 * b + r;
      return cifarRecord([k % 3], k);
    });
    members.push({
      path: `cifar-10-batches-bin/data_batch_${b + 1}.bin`,
      data: Buffer.concat(recs),
    });
  }
  const testLabels = [2, 0, 1, 2];
  members.push({
    path: 'cifar-10-batches-bin/test_batch.bin',
    data: Buffer.concat(testLabels.map((l, j) => cifarRecord([l], 100 + j))),
  });
  members.push({
    path: 'cifar-10-batches-bin/batches.meta.txt',
    data: `${CIFAR10_NAMES.join('\n')}\n\n`,
  });
  members.push({ path: 'cifar-10-batches-bin/readme.html', data: '<html></html>' });
  return { archive: tarGz(members), testLabels };
}

/**
 * cifar-100-binary.tar.gz: train.bin with 6 records (coarse, fine) =
 * (0,0) (0,0) (0,1) (0,1) (1,2) (1,2); test.bin with 2: (1,2) (0,0).
 */
export function cifar100Archive(): Buffer {
  const train = [
    [0, 0],
    [0, 0],
    [0, 1],
    [0, 1],
    [1, 2],
    [1, 2],
  ];
  const test = [
    [1, 2],
    [0, 0],
  ];
  const fine = Array.from({ length: 100 }, (_, i) => `fine_${i}`);
  const coarse = Array.from({ length: 20 }, (_, i) => `coarse_${i}`);
  return tarGz([
    {
      path: 'cifar-100-binary/train.bin',
      data: Buffer.concat(train.map((l, k) => cifarRecord(l, k))),
    },
    {
      path: 'cifar-100-binary/test.bin',
      data: Buffer.concat(test.map((l, j) => cifarRecord(l, 100 + j))),
    },
    { path: 'cifar-100-binary/fine_label_names.txt', data: `${fine.join('\n')}\n` },
    { path: 'cifar-100-binary/coarse_label_names.txt', data: `${coarse.join('\n')}\n` },
  ]);
}

/**
 * Flowers-102's three files: 9 images, labels 1,2,3,1,2,3,1,2,3 (image i is
 * the colour of its class), trnid [1,2,3], valid [4,5,6], tstid [9,8,7].
 */
export async function flowersFiles(): Promise<Map<string, Buffer>> {
  const labels = [1, 2, 3, 1, 2, 3, 1, 2, 3];
  const members: TarMember[] = [{ path: 'jpg/', type: '5' }];
  for (let i = 1; i <= labels.length; i++)
    members.push({
      path: `jpg/image_${String(i).padStart(5, '0')}.jpg`,
      data: await solidJpeg(
        CLASS_COLOURS[(labels[i - 1] as number) - 1] as [number, number, number],
      ),
    });
  return new Map([
    ['102flowers.tgz', tarGz(members)],
    ['imagelabels.mat', matFile({ labels })],
    ['setid.mat', matFile({ trnid: [1, 2, 3], valid: [4, 5, 6], tstid: [9, 8, 7] })],
  ]);
}

export const PETS_BREEDS = ['Abyssinian', 'american_bulldog', 'Bengal'] as const;

/**
 * Pets' two archives: 3 breeds (ids 1..3, species cat/dog/cat), 4 trainval
 * and 2 test images each, plus an image in no list and a stray .mat file
 * (as in the real images.tar.gz). `without` leaves a member out.
 */
export async function petsFiles(without?: string): Promise<Map<string, Buffer>> {
  const species = [1, 2, 1];
  const images: TarMember[] = [{ path: 'images/', type: '5' }];
  const trainval: string[] = [];
  const test: string[] = [];
  for (let c = 0; c < PETS_BREEDS.length; c++) {
    const colour = CLASS_COLOURS[c] as [number, number, number];
    for (let k = 1; k <= 6; k++) {
      const name = `${PETS_BREEDS[c]}_${k * 10 + c}`;
      images.push({ path: `images/${name}.jpg`, data: await solidJpeg(colour) });
      (k <= 4 ? trainval : test).push(`${name} ${c + 1} ${species[c]} ${k}`);
    }
  }
  images.push({ path: 'images/Bengal_999.jpg', data: await solidJpeg([0, 0, 0]) });
  images.push({ path: 'images/Abyssinian_100.mat', data: 'not an image' });
  const annotations: TarMember[] = [
    { path: 'annotations/', type: '5' },
    {
      path: 'annotations/list.txt',
      data: `#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n${[...trainval, ...test].join('\n')}\n`,
    },
    { path: 'annotations/trainval.txt', data: `${trainval.join('\n')}\n` },
    { path: 'annotations/test.txt', data: `${test.join('\n')}\n` },
    { path: 'annotations/trimaps/', type: '5' },
  ].filter((m) => m.path !== without);
  return new Map([
    ['images.tar.gz', tarGz(images.filter((m) => m.path !== without))],
    ['annotations.tar.gz', tarGz(annotations)],
  ]);
}

export const CUB_CLASSES = [
  '001.Black_footed_Albatross',
  '002.Laysan_Albatross',
  '003.Sooty_Albatross',
] as const;

/**
 * CUB_200_2011.tgz: 3 classes × 4 images (ids 1..12, class by id order),
 * image 4k+4 of each class in test, the rest train. One path is longer than
 * 100 bytes (a ustar prefix) and attributes.txt sits beside the folder, as
 * in the real archive.
 */
export async function cubArchive(): Promise<Buffer> {
  const members: TarMember[] = [
    { path: 'attributes.txt', data: '1 has_bill_shape::curved_(up_or_down)\n' },
    { path: 'CUB_200_2011/', type: '5' },
  ];
  const images: string[] = [];
  const labels: string[] = [];
  const split: string[] = [];
  let id = 0;
  for (let c = 0; c < CUB_CLASSES.length; c++) {
    const folder = CUB_CLASSES[c] as string;
    const species = folder.slice(4);
    for (let k = 0; k < 4; k++) {
      id++;
      const file =
        c === 2 && k === 0
          ? `${species}_0001_796335_photographed_from_a_boat_off_the_coast_in_the_evening.jpg`
          : `${species}_00${k + 1}_${id}.jpg`;
      const rel = `${folder}/${file}`;
      members.push({
        path: `CUB_200_2011/images/${rel}`,
        data: await solidJpeg(CLASS_COLOURS[c] as [number, number, number]),
      });
      images.push(`${id} ${rel}`);
      labels.push(`${id} ${c + 1}`);
      split.push(`${id} ${k === 3 ? 0 : 1}`);
    }
  }
  members.push(
    {
      path: 'CUB_200_2011/classes.txt',
      data: `${CUB_CLASSES.map((n, i) => `${i + 1} ${n}`).join('\n')}\n`,
    },
    { path: 'CUB_200_2011/images.txt', data: `${images.join('\n')}\n` },
    { path: 'CUB_200_2011/image_class_labels.txt', data: `${labels.join('\n')}\n` },
    { path: 'CUB_200_2011/train_test_split.txt', data: `${split.join('\n')}\n` },
    { path: 'CUB_200_2011/README', data: 'fixture\n' },
  );
  return tarGz(members);
}
