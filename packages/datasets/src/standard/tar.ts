import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

// A small streaming reader for .tar.gz / .tgz archives: gunzip (node:zlib)
// into a parser of 512-byte tar blocks (ustar, with pax and GNU long names),
// writing regular files as their bytes arrive. Memory stays at one gzip
// chunk whatever the archive's size. Links, devices and FIFOs are skipped;
// a member whose path would leave the destination is refused.

/** A damaged or unsafe archive; the message names the archive. */
export class ArchiveError extends Error {
  constructor(
    readonly archive: string,
    message: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface ExtractTarResult {
  /** Regular files written. */
  readonly files: number;
  readonly bytes: number;
  /** Members that are not regular files or folders (links, devices…), not written. */
  readonly skipped: readonly { readonly path: string; readonly reason: string }[];
}

const BLOCK = 512;

function text(block: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return Buffer.from(block.subarray(start, end)).toString('utf8');
}

// Octal (NUL/space padded), or GNU base-256 when the top bit of the first byte is set.
function number(block: Uint8Array, start: number, length: number): number {
  const first = block[start] as number;
  if (first & 0x80) {
    let v = first & 0x7f;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + (block[i] as number);
    return v;
  }
  const s = text(block, start, length).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return Number.NaN;
  return Number.parseInt(s, 8);
}

function checksumOk(block: Uint8Array): boolean {
  const stored = number(block, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** pax records: "<len> <key>=<value>\n". */
function parsePax(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number.parseInt(body.subarray(pos, space).toString('ascii'), 10);
    if (!(len > 0)) break;
    const record = body.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * The member's path split into safe segments, or undefined when it would
 * escape the destination (absolute, a drive letter, or a '..' segment).
 */
export function safeMemberPath(name: string): string[] | undefined {
  if (name.startsWith('/') || name.startsWith('\\') || /^[a-zA-Z]:/.test(name)) return undefined;
  const parts = name.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return undefined;
  return parts;
}

type State =
  | { kind: 'header' }
  | { kind: 'file'; path: string; remaining: number; size: number; fh: FileHandle; pad: number }
  | { kind: 'skip'; remaining: number; path?: string; size?: number }
  | { kind: 'meta'; type: 'pax' | 'gnu-name'; remaining: number; parts: Buffer[]; pad: number }
  | { kind: 'end' };

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    off += bytesWritten;
  }
}

/**
 * Extract the gzip-compressed tar `archive` into the existing folder `dest`,
 * streaming. Throws an `ArchiveError` naming the archive when it is not
 * gzip, is truncated (mid-member or mid-header), has a corrupt header, or
 * holds a member whose path would leave `dest`.
 */
export async function extractTarGz(archive: string, dest: string): Promise<ExtractTarResult> {
  const made = new Set<string>();
  const ensureDir = async (segments: readonly string[]) => {
    const dir = join(dest, ...segments);
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    made.add(dir);
  };
  const skipped: { path: string; reason: string }[] = [];
  let files = 0;
  let bytes = 0;
  let offset = 0; // of the tar stream, for messages
  let state: State = { kind: 'header' };
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let leftover: Buffer | undefined;

  const startMember = async (block: Uint8Array): Promise<void> => {
    if (isZeroBlock(block)) {
      state = { kind: 'end' };
      return;
    }
    if (!checksumOk(block))
      throw new ArchiveError(
        archive,
        `archive ${archive} is corrupt or not a tar archive: bad header checksum at byte ${offset - BLOCK} of the uncompressed tar`,
      );
    const type = String.fromCharCode(block[156] as number);
    const magic = text(block, 257, 6);
    let name = text(block, 0, 100);
    const prefix = magic.startsWith('ustar') ? text(block, 345, 155) : '';
    if (prefix) name = `${prefix}/${name}`;
    if (longName !== undefined) name = longName;
    if (pax.has('path')) name = pax.get('path') as string;
    let size = number(block, 124, 12);
    if (pax.has('size')) size = Number(pax.get('size'));
    if (!Number.isSafeInteger(size) || size < 0)
      throw new ArchiveError(archive, `archive ${archive}: member "${name}" has a bad size field`);
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    // Headers that describe the next member.
    if (type === 'x' || type === 'L') {
      state = {
        kind: 'meta',
        type: type === 'x' ? 'pax' : 'gnu-name',
        remaining: size,
        parts: [],
        pad,
      };
      return;
    }
    longName = undefined;
    pax = new Map();
    if (type === 'g' || type === 'K') {
      state = { kind: 'skip', remaining: size + pad };
      return;
    }
    const segments = safeMemberPath(name);
    if (!segments)
      throw new ArchiveError(
        archive,
        `archive ${archive}: member "${name}" would be written outside the extraction folder; refusing to extract it`,
      );
    if (type === '5') {
      if (segments.length > 0) await ensureDir(segments);
      state = { kind: 'skip', remaining: size + pad };
      return;
    }
    if (type !== '0' && type !== '\0' && type !== '7') {
      const what =
        type === '1' ? 'a hard link' : type === '2' ? 'a symbolic link' : `of tar type "${type}"`;
      skipped.push({ path: name, reason: `${what}, not a regular file` });
      state = { kind: 'skip', remaining: size + pad, path: name, size };
      return;
    }
    if (segments.length === 0)
      throw new ArchiveError(archive, `archive ${archive}: a file member has an empty name`);
    await ensureDir(segments.slice(0, -1));
    const fh = await open(join(dest, ...segments), 'w');
    files++;
    bytes += size;
    state = { kind: 'file', path: name, remaining: size, size, fh, pad };
    if (size === 0) await finishFile();
  };

  const finishFile = async () => {
    if (state.kind !== 'file') return;
    const { fh, pad } = state;
    state = pad > 0 ? { kind: 'skip', remaining: pad } : { kind: 'header' };
    await fh.close();
  };

  const consume = async (chunk: Buffer): Promise<void> => {
    const data = leftover ? Buffer.concat([leftover, chunk]) : chunk;
    leftover = undefined;
    let pos = 0;
    while (pos < data.length) {
      const s: State = state;
      switch (s.kind) {
        case 'end':
          return; // anything after the end-of-archive block is padding
        case 'header': {
          if (data.length - pos < BLOCK) {
            leftover = Buffer.from(data.subarray(pos));
            return;
          }
          const block = data.subarray(pos, pos + BLOCK);
          pos += BLOCK;
          offset += BLOCK;
          await startMember(block);
          break;
        }
        case 'file': {
          const n = Math.min(s.remaining, data.length - pos);
          await writeAll(s.fh, data.subarray(pos, pos + n));
          pos += n;
          offset += n;
          s.remaining -= n;
          if (s.remaining === 0) await finishFile();
          break;
        }
        case 'skip': {
          const n = Math.min(s.remaining, data.length - pos);
          pos += n;
          offset += n;
          s.remaining -= n;
          if (s.remaining === 0) state = { kind: 'header' };
          break;
        }
        case 'meta': {
          const n = Math.min(s.remaining, data.length - pos);
          s.parts.push(Buffer.from(data.subarray(pos, pos + n)));
          pos += n;
          offset += n;
          s.remaining -= n;
          if (s.remaining === 0) {
            const body = Buffer.concat(s.parts);
            if (s.type === 'pax') pax = parsePax(body);
            else longName = text(body, 0, body.length);
            state = s.pad > 0 ? { kind: 'skip', remaining: s.pad } : { kind: 'header' };
          }
          break;
        }
      }
    }
  };

  // pipeline may report its own abort rather than the parser's error: keep ours.
  let parseError: unknown;
  try {
    await pipeline(createReadStream(archive), createGunzip(), async (source) => {
      try {
        for await (const chunk of source) await consume(chunk as Buffer);
      } catch (err) {
        parseError = err;
        throw err;
      }
    });
  } catch (caught) {
    const err = parseError ?? caught;
    const cur = state as State;
    if (cur.kind === 'file') await cur.fh.close().catch(() => undefined);
    if (err instanceof ArchiveError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' && e.path === archive)
      throw new ArchiveError(archive, `archive ${archive} does not exist`);
    const truncated = e.code === 'Z_BUF_ERROR' || /unexpected end/i.test(e.message);
    throw new ArchiveError(
      archive,
      truncated
        ? `archive ${archive} is truncated (${e.message}): the gzip stream ends early; download it again`
        : `archive ${archive} could not be extracted: ${e.message}`,
    );
  }
  const end = state as State;
  if (end.kind === 'file' || end.kind === 'meta' || (end.kind === 'skip' && end.path)) {
    if (end.kind === 'file') await end.fh.close();
    const member = end.kind === 'meta' ? 'a header extension' : `member "${end.path}"`;
    const size = end.kind === 'meta' ? '' : ` (${end.size} bytes, ${end.remaining} missing)`;
    throw new ArchiveError(
      archive,
      `archive ${archive} is truncated: ${member} is cut short${size}; download it again`,
    );
  }
  if (leftover && leftover.length > 0)
    throw new ArchiveError(archive, `archive ${archive} is truncated: it ends inside a tar header`);
  return { files, bytes, skipped };
}
