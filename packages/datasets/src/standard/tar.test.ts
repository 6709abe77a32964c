import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeDir } from '../images/test-fixtures.js';
import { ArchiveError, extractTarGz, safeMemberPath } from './tar.js';
import { paxRecords, tar, tarGz } from './test-fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir('transferlab-tar-');
});
afterEach(async () => {
  await removeDir(dir);
});

async function write(name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

async function listAll(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(`${rel}/`, ...(await listAll(join(root, e.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

describe('extractTarGz', () => {
  it('writes files and folders, with ustar prefixes, pax paths and GNU long names', async () => {
    // Bodies of several blocks and of zero bytes; a body that spans gzip chunks.
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251;
    const longDir = `a/${'d'.repeat(90)}`;
    const paxName = `p/${'x'.repeat(180)}.txt`;
    const gnuName = `g/${'y'.repeat(150)}.txt`;
    const archive = await write(
      'a.tar.gz',
      tarGz([
        { path: 'a/', type: '5' },
        { path: 'a/one.txt', data: 'one' },
        { path: 'a/empty.bin', data: '' },
        { path: './a/big.bin', data: big },
        { path: `${longDir}/long-name.txt`, data: 'prefix' },
        { path: 'PaxHeaders/x', type: 'x', data: paxRecords({ path: paxName }) },
        { path: 'ignored-by-pax', data: 'pax' },
        { path: '././@LongLink', type: 'L', data: `${gnuName}\0` },
        { path: 'ignored-by-gnu', data: 'gnu' },
        { path: 'a/link', type: '2', linkname: 'one.txt' },
      ]),
    );
    const out = join(dir, 'out');
    await mkdir(out);
    const result = await extractTarGz(archive, out);
    expect(result.files).toBe(6);
    expect(result.skipped).toEqual([
      { path: 'a/link', reason: 'a symbolic link, not a regular file' },
    ]);
    expect(await readFile(join(out, 'a/one.txt'), 'utf8')).toBe('one');
    expect((await readFile(join(out, 'a/empty.bin'))).length).toBe(0);
    expect((await readFile(join(out, 'a/big.bin'))).equals(big)).toBe(true);
    expect(await readFile(join(out, longDir, 'long-name.txt'), 'utf8')).toBe('prefix');
    expect(await readFile(join(out, paxName), 'utf8')).toBe('pax');
    expect(await readFile(join(out, gnuName), 'utf8')).toBe('gnu');
    expect(await listAll(out)).not.toContain('ignored-by-pax');
  });

  it('refuses a member whose path leaves the destination, naming it', async () => {
    for (const bad of ['../evil.txt', 'a/../../evil.txt', '/etc/evil.txt']) {
      const archive = await write('bad.tar.gz', tarGz([{ path: bad, data: 'x' }]));
      const out = join(dir, 'out');
      await mkdir(out, { recursive: true });
      const err = await extractTarGz(archive, out).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ArchiveError);
      expect((err as Error).message).toContain(`member "${bad}" would be written outside`);
      expect((err as Error).message).toContain(archive);
    }
    expect(await listAll(dir)).toEqual(['bad.tar.gz', 'out/']);
    expect(safeMemberPath('./a/./b')).toEqual(['a', 'b']);
    expect(safeMemberPath('C:\\x')).toBeUndefined();
  });

  it('names the archive when it is truncated, mid-gzip or mid-member', async () => {
    const body = Buffer.alloc(50_000, 7);
    const whole = tar([{ path: 'm/data.bin', data: body }]);
    const gz = gzipSync(whole);
    const cutGzip = await write('cut.tar.gz', gz.subarray(0, Math.floor(gz.length / 2)));
    const out = join(dir, 'out');
    await mkdir(out);
    await expect(extractTarGz(cutGzip, out)).rejects.toThrow(
      new RegExp(`archive ${cutGzip} is truncated`),
    );
    // A complete gzip stream of a tar that stops inside the member's body.
    const cutTar = await write('cut-member.tar.gz', gzipSync(whole.subarray(0, 512 + 20_000)));
    await expect(extractTarGz(cutTar, out)).rejects.toThrow(
      `archive ${cutTar} is truncated: member "m/data.bin" is cut short (50000 bytes, 30000 missing)`,
    );
  });

  it('says when a file is not gzip or not a tar', async () => {
    const out = join(dir, 'out');
    await mkdir(out);
    const text = await write('plain.tar.gz', Buffer.from('hello, not gzip'));
    await expect(extractTarGz(text, out)).rejects.toThrow(`archive ${text} could not be extracted`);
    const noise = Buffer.alloc(2048);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 97 + 11) % 256;
    const notTar = await write('noise.tar.gz', gzipSync(noise));
    await expect(extractTarGz(notTar, out)).rejects.toThrow(
      `archive ${notTar} is corrupt or not a tar archive: bad header checksum`,
    );
    await expect(extractTarGz(join(dir, 'missing.tgz'), out)).rejects.toThrow('does not exist');
  });

  it('reads what the system tar writes (GNU format, long names)', async (ctx) => {
    let hasTar = true;
    try {
      execFileSync('tar', ['--version'], { stdio: 'ignore' });
    } catch {
      hasTar = false;
    }
    if (!hasTar) ctx.skip();
    const src = join(dir, 'src');
    const deep = join(src, 'CUB_200_2011', 'images', `${'n'.repeat(120)}`);
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, `${'f'.repeat(110)}.jpg`), 'jpeg bytes');
    await writeFile(join(src, 'CUB_200_2011', 'classes.txt'), '1 001.A\n');
    const archive = join(dir, 'sys.tgz');
    execFileSync('tar', ['-czf', archive, '-C', src, 'CUB_200_2011']);
    const out = join(dir, 'out');
    await mkdir(out);
    const result = await extractTarGz(archive, out);
    expect(result.files).toBe(2);
    expect(
      await readFile(
        join(out, 'CUB_200_2011', 'images', 'n'.repeat(120), `${'f'.repeat(110)}.jpg`),
        'utf8',
      ),
    ).toBe('jpeg bytes');
  });
});
