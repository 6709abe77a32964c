import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where a record came from: enough to tell two machines' or two commits' results apart. */
export interface Provenance {
  /** The git commit of the checkout the app ran from; absent outside a git checkout (an installed package). */
  commit?: string;
  /** Uncommitted changes to tracked files when the run started. */
  dirty?: boolean;
  /** Versions of the packages that shape a result. */
  packages: Record<string, string>;
  node: string;
  cpu: string;
  cores: number;
  platform: string;
}

const PACKAGES = [
  '@transferlab/bench',
  '@transferlab/core',
  '@transferlab/datasets',
  '@transferlab/evaluation',
  '@transferlab/graph',
  '@transferlab/methods',
  '@transferlab/models',
  'onnxruntime-node',
  '@tensorflow/tfjs-core',
  '@tensorflow/tfjs-backend-wasm',
];

const here = dirname(fileURLToPath(import.meta.url));

/** A package's version, found as Node finds packages: node_modules/<name> in this folder or an ancestor. */
function packageVersion(name: string): string | undefined {
  let dir = here;
  for (;;) {
    const own = join(dir, 'package.json');
    if (existsSync(own)) {
      const pkg = JSON.parse(readFileSync(own, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === name) return pkg.version;
    }
    const candidate = join(dir, 'node_modules', name, 'package.json');
    if (existsSync(candidate))
      return (JSON.parse(readFileSync(candidate, 'utf8')) as { version?: string }).version;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, {
      cwd: here,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

let cached: Provenance | undefined;

/** This process's provenance, collected once (git is asked once per process). */
export function collectProvenance(): Provenance {
  if (cached) return cached;
  const commit = git(['rev-parse', 'HEAD']);
  const status = commit ? git(['status', '--porcelain', '--untracked-files=no']) : undefined;
  const packages: Record<string, string> = {};
  for (const name of PACKAGES) {
    const v = packageVersion(name);
    if (v) packages[name] = v;
  }
  const cpu = cpus();
  cached = {
    ...(commit ? { commit, dirty: (status ?? '') !== '' } : {}),
    packages,
    node: process.version,
    cpu: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    platform: `${process.platform}-${process.arch}`,
  };
  return cached;
}
