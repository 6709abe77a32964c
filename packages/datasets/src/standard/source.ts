import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  type DownloadProgress,
  downloadVerified,
  hashFile,
  transferlabCacheRoot,
} from './download.js';
import { extractTarGz } from './tar.js';

// Where a standard dataset's files come from (official URL, a mirror, or
// local copies), how they are checked (SHA-256), and the atomic cache they
// are unpacked into:
//   <cacheDir>/<id>/downloads/<file>      verified downloads (renamed in when complete)
//   <cacheDir>/<id>/data/                 unpacked files + a completion marker
// `data/` is built in a temporary folder, checked by the dataset's parser,
// marked, and renamed into place: it is either absent or complete.

/** One published file of a dataset. */
export interface StandardFile {
  /** The official file name; also its name under a mirror and in a local folder. */
  readonly name: string;
  readonly url: string;
  /** SHA-256 of the published file (where it was found: see each dataset's source). */
  readonly sha256: string;
  /** Size in bytes of the published file. */
  readonly bytes: number;
  /** 'tar.gz' is unpacked into data/; 'file' is copied there as it is. */
  readonly kind: 'tar.gz' | 'file';
}

export interface StandardSource {
  readonly id: string;
  readonly title: string;
  readonly files: readonly StandardFile[];
}

export interface StandardSourceOptions {
  /**
   * Root of the cache; the dataset goes in `<cacheDir>/<id>/`. Default
   * `$XDG_CACHE_HOME/transferlab`, else `~/.cache/transferlab`.
   */
  readonly cacheDir?: string;
  /** Base URL of a mirror: each file is fetched from `${mirror}/${file name}`. */
  readonly mirror?: string;
  /**
   * Use local copies instead of downloading: the archive's path (datasets of
   * one file), a folder holding the files under their official names, or a
   * map from official file name to path. Checked by SHA-256 like downloads,
   * never modified or deleted.
   */
  readonly localArchive?: string | Readonly<Record<string, string>>;
  /**
   * Expected SHA-256 per official file name, replacing the recorded ones
   * (for a mirror of re-packed files, or tests).
   */
  readonly sha256?: Readonly<Record<string, string>>;
  /** Give up on a download when no byte arrives for this long (ms, default 60 s). */
  readonly timeoutMs?: number;
  /** Keep verified downloads after unpacking (default true), so a re-unpack needs no network. */
  readonly keepArchives?: boolean;
  readonly onProgress?: (p: DownloadProgress) => void;
}

const MARKER = '.transferlab-complete.json';

export function standardCacheDir(
  id: string,
  opts: Pick<StandardSourceOptions, 'cacheDir'>,
): string {
  return join(resolve(opts.cacheDir ?? transferlabCacheRoot()), id);
}

function expectedSha(file: StandardFile, opts: StandardSourceOptions): string {
  const v = opts.sha256?.[file.name] ?? file.sha256;
  if (!/^[0-9a-fA-F]{64}$/.test(v))
    throw new Error(`sha256 for ${file.name} must be 64 hex digits, got ${JSON.stringify(v)}`);
  return v.toLowerCase();
}

function markerText(source: StandardSource, opts: StandardSourceOptions): string {
  const files: Record<string, string> = {};
  for (const f of source.files) files[f.name] = expectedSha(f, opts);
  return `${JSON.stringify({ id: source.id, files }, null, 2)}\n`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function isComplete(dataDir: string, marker: string): Promise<boolean> {
  const text = await readFile(join(dataDir, MARKER), 'utf8').catch(() => undefined);
  return text === marker;
}

function fixHint(source: StandardSource, file: StandardFile): string {
  const names = source.files.map((f) => f.name).join(', ');
  return (
    `check the network connection; or download ${file.url} elsewhere and pass ` +
    (source.files.length === 1
      ? `{localArchive: '/path/to/${file.name}'}`
      : `{localArchive: '/folder/with/the/files'} (${names})`) +
    `; or pass {mirror: 'https://…'} of a server holding ${file.name}`
  );
}

/** Local paths for every file, from `localArchive`; errors name what is missing. */
async function localPaths(
  source: StandardSource,
  local: string | Readonly<Record<string, string>>,
): Promise<Map<string, string>> {
  const names = source.files.map((f) => f.name);
  const out = new Map<string, string>();
  if (typeof local === 'string') {
    const path = resolve(local);
    const st = await stat(path).catch(() => undefined);
    if (!st) throw new Error(`${source.title}: localArchive ${path} does not exist`);
    if (st.isDirectory()) {
      const missing: string[] = [];
      for (const n of names) {
        const p = join(path, n);
        if (await exists(p)) out.set(n, p);
        else missing.push(n);
      }
      if (missing.length > 0)
        throw new Error(
          `${source.title}: localArchive folder ${path} has no ${missing.join(', ')} (the dataset needs ${names.join(', ')})`,
        );
      return out;
    }
    if (names.length !== 1)
      throw new Error(
        `${source.title} is published as ${names.length} files (${names.join(', ')}): pass localArchive as a folder holding them, or as {"<file name>": "<path>"}`,
      );
    out.set(names[0] as string, path);
    return out;
  }
  const unknown = Object.keys(local).filter((k) => !names.includes(k));
  if (unknown.length > 0)
    throw new Error(
      `${source.title}: localArchive names unknown file(s) ${unknown.join(', ')}; the files are ${names.join(', ')}`,
    );
  const missing = names.filter((n) => local[n] === undefined);
  if (missing.length > 0)
    throw new Error(
      `${source.title}: localArchive gives no path for ${missing.join(', ')} (the dataset needs ${names.join(', ')})`,
    );
  for (const n of names) {
    const p = resolve(local[n] as string);
    if (!(await exists(p)))
      throw new Error(`${source.title}: localArchive file ${p} (for ${n}) does not exist`);
    out.set(n, p);
  }
  return out;
}

/**
 * Make sure the dataset's files are unpacked, verified and complete in the
 * cache, and return the data folder. `check(dir)` is the dataset's own
 * validation of an unpacked folder (every member it needs, parseable): it
 * runs before the folder is marked complete, so a bad archive is never
 * cached. A complete folder is reused with no network and no hashing.
 */
export async function prepareStandardData(
  source: StandardSource,
  opts: StandardSourceOptions,
  check: (dir: string) => Promise<void>,
): Promise<string> {
  const root = standardCacheDir(source.id, opts);
  const dataDir = join(root, 'data');
  const marker = markerText(source, opts);
  if (await isComplete(dataDir, marker)) return dataDir;

  const locals = opts.localArchive ? await localPaths(source, opts.localArchive) : undefined;
  const paths = new Map<string, string>();
  const downloaded: string[] = [];
  for (const file of source.files) {
    const sha = expectedSha(file, opts);
    const local = locals?.get(file.name);
    if (local) {
      const got = await hashFile(local);
      if (got.hex !== sha)
        throw new Error(
          `Checksum mismatch for ${source.title} file ${file.name} at ${local}: expected SHA-256 ${sha}, got ${got.hex} (${got.bytes} bytes). ` +
            `It is not the official file${opts.sha256?.[file.name] ? '' : ` (${file.bytes} bytes)`}; if it is a re-packed copy on purpose, pass its checksum in {sha256: {'${file.name}': '…'}}`,
        );
      paths.set(file.name, local);
      continue;
    }
    const dest = join(root, 'downloads', file.name);
    if (await exists(dest)) {
      // A download kept from an earlier run: reuse it if it still verifies.
      if ((await hashFile(dest)).hex === sha) {
        paths.set(file.name, dest);
        downloaded.push(dest);
        continue;
      }
      await rm(dest, { force: true });
    }
    const url = opts.mirror ? `${opts.mirror.replace(/\/+$/, '')}/${file.name}` : file.url;
    await downloadVerified({
      url,
      dest,
      sha256: sha,
      what: `${source.title} file ${file.name}`,
      fix: fixHint(source, file),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    paths.set(file.name, dest);
    downloaded.push(dest);
  }

  await mkdir(root, { recursive: true });
  const tmp = join(root, `data.tmp-${process.pid}-${randomUUID()}`);
  try {
    await mkdir(tmp);
    for (const file of source.files) {
      const path = paths.get(file.name) as string;
      if (file.kind === 'tar.gz') await extractTarGz(path, tmp);
      else await copyFile(path, join(tmp, file.name));
    }
    await check(tmp);
    await writeFile(join(tmp, MARKER), marker);
    // A stale folder (no marker, or other checksums) is replaced.
    if (await exists(dataDir)) await rm(dataDir, { recursive: true, force: true });
    try {
      await rename(tmp, dataDir);
    } catch (err) {
      // Another process may have finished first.
      if (!(await isComplete(dataDir, marker))) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if (opts.keepArchives === false) for (const d of downloaded) await rm(d, { force: true });
  return dataDir;
}

/** `path` must exist in the unpacked folder; else an error naming the member and its archive. */
export async function requireMember(
  dir: string,
  member: string,
  source: StandardSource,
  archive: string,
): Promise<string> {
  const path = join(dir, member);
  if (!(await exists(path)))
    throw new Error(
      `${source.title}: ${member} is missing from ${archive}; the archive is not the official one (or is damaged)`,
    );
  return path;
}

/** Every one of `paths` (relative to dir) must exist; checked in parallel batches. */
export async function requireMembers(
  dir: string,
  members: readonly string[],
  source: StandardSource,
  archive: string,
): Promise<void> {
  const batch = 64;
  for (let i = 0; i < members.length; i += batch) {
    const slice = members.slice(i, i + batch);
    const found = await Promise.all(slice.map((m) => exists(join(dir, m))));
    const missing = slice.filter((_, j) => !found[j]);
    if (missing.length > 0)
      throw new Error(
        `${source.title}: ${missing[0]}${missing.length > 1 ? ` (and ${missing.length - 1} more in this batch)` : ''} is listed but missing from ${archive}; the archive is not the official one (or is damaged)`,
      );
  }
}
