import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

// Checked downloads shared by the dataset loaders: files are streamed to a
// temporary name while hashed, and renamed into place only once the hash
// matches, so a cache file is either absent or complete and verified.

/** `$XDG_CACHE_HOME/transferlab`, else `~/.cache/transferlab`. */
export function transferlabCacheRoot(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache');
  return join(base, 'transferlab');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Hash a file without reading it into memory. */
export async function hashFile(
  path: string,
  algorithm: 'sha256' | 'md5' = 'sha256',
): Promise<{ hex: string; bytes: number }> {
  const hash = createHash(algorithm);
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { hex: hash.digest('hex'), bytes };
}

export interface DownloadProgress {
  /** The file's name (e.g. `cifar-10-binary.tar.gz`). */
  readonly file: string;
  readonly url: string;
  readonly bytes: number;
  /** From Content-Length, when the server sends it. */
  readonly total?: number;
}

export interface VerifiedDownloadOptions {
  readonly url: string;
  /** Where the verified file ends up (its folder is created). */
  readonly dest: string;
  readonly sha256: string;
  /** Names the file in messages, e.g. `CIFAR-10 file cifar-10-binary.tar.gz`. */
  readonly what: string;
  /** How to get the file some other way; appended to network errors. */
  readonly fix: string;
  /** Give up when no byte arrives for this long (ms, default 60 s). */
  readonly timeoutMs?: number;
  readonly onProgress?: (p: DownloadProgress) => void;
}

/** Why a fetch failed, with the cause undici hides behind "fetch failed". */
export function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return 'timed out';
  const cause = e?.cause?.message ?? e?.cause?.code;
  return cause && cause !== e.message ? `${e.message} (${cause})` : String(e?.message ?? err);
}

/**
 * Stream `url` into `dest`, hashing on the way; rename into place only when
 * the SHA-256 matches. On any failure the temporary file is removed and the
 * error names the URL (and, for a checksum mismatch, expected and actual
 * hash). Never leaves a partial file at `dest`.
 */
export async function downloadVerified(opts: VerifiedDownloadOptions): Promise<void> {
  const { url, dest, what, fix } = opts;
  const expected = opts.sha256.toLowerCase();
  const stallMs = opts.timeoutMs ?? 60_000;
  await mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}-${randomUUID()}`;
  const file = dest.slice(dirname(dest).length + 1);
  // An inactivity timer rather than a total one: a 1 GB archive may take long.
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(new Error(`no data for ${stallMs} ms`)), stallMs);
  };
  try {
    arm();
    let response: Response;
    try {
      response = await fetch(url, { signal: abort.signal });
    } catch (err) {
      throw new Error(
        `Downloading ${what} from ${url} failed: ${describeFetchError(abort.signal.reason ?? err)}. To fix: ${fix}`,
      );
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      throw new Error(
        `Downloading ${what} from ${url} failed: HTTP ${response.status} ${response.statusText}`.trim() +
          `. To fix: ${fix}`,
      );
    }
    const header = Number(response.headers.get('content-length'));
    const total = Number.isFinite(header) && header > 0 ? header : undefined;
    const hash = createHash('sha256');
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        arm();
        hash.update(chunk);
        bytes += chunk.length;
        opts.onProgress?.({ file, url, bytes, ...(total !== undefined ? { total } : {}) });
        done(null, chunk);
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>, {
          signal: abort.signal,
        }),
        counter,
        createWriteStream(tmp),
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code && ['ENOSPC', 'EACCES', 'EPERM', 'EROFS', 'EDQUOT', 'EIO'].includes(code))
        throw new Error(
          `Downloading ${what} from ${url}: cannot write ${tmp}: ${(err as Error).message}`,
        );
      throw new Error(
        `Downloading ${what} from ${url} failed after ${bytes}${total !== undefined ? ` of ${total}` : ''} bytes: ` +
          `${describeFetchError(abort.signal.reason ?? err)} (the download is incomplete and was removed). To fix: retry, or ${fix}`,
      );
    }
    if (total !== undefined && bytes !== total) {
      throw new Error(
        `Downloading ${what} from ${url} failed: the body ended after ${bytes} of ${total} bytes (truncated; removed). To fix: retry, or ${fix}`,
      );
    }
    const actual = hash.digest('hex');
    if (actual !== expected) {
      throw new Error(
        `Checksum mismatch for ${what} downloaded from ${url}: expected SHA-256 ${expected}, got ${actual} (${bytes} bytes); the file was removed. ` +
          'If the server holds a re-packed copy on purpose, pass its checksum in {sha256: {…}}',
      );
    }
    await rename(tmp, dest);
  } finally {
    clearTimeout(timer);
    await rm(tmp, { force: true });
  }
}
