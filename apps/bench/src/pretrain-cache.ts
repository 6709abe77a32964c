import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pickParams } from '@transferlab/core';
import type { Dataset } from '@transferlab/datasets';
import type { Engine } from '@transferlab/methods';
import { type Backbone, loadParams, saveParams } from '@transferlab/models';
import {
  type PretrainConfig,
  type PretrainedSource,
  type ProgressEvent,
  pretrainSource,
} from './runner.js';

/**
 * Part of every cache key. Bump it when what a pre-training produces changes
 * in a way the other key fields cannot see — the initialisation or the step
 * itself (2: batch normalisation trained in training mode, He initialisation
 * looking past batchNorm layers).
 */
export const PRETRAIN_CACHE_VERSION = 2;

/**
 * Source pre-training, cached on disk under `cacheDir` by a hash of
 * everything that determines the weights (source identity and options,
 * seed, architecture, pre-training config), so a re-run or another suite on
 * the same source skips it. Backbone and source head share one file.
 */
export async function loadOrPretrain(args: {
  /** Identifies the source data: a task id and its build options. */
  sourceKey: { task: string; options: unknown };
  source: Dataset;
  backbone: Backbone;
  seed: number;
  config: PretrainConfig;
  cacheDir?: string;
  /** The engine that pre-trains (default: onnxruntime where the backbone compiles). Part of the key: engines agree only to rounding. */
  engine?: Engine;
  onEpoch?: (e: ProgressEvent) => void;
  /** Where a warning goes (default stderr), e.g. that a cache entry was unreadable and is rebuilt. */
  warn?: (message: string) => void;
}): Promise<PretrainedSource & { fromCache: boolean; pretrainMs: number }> {
  const started = Date.now();
  const engine: Engine = args.engine ?? (args.backbone.emitGraph ? 'onnxruntime' : 'tfjs');
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        version: PRETRAIN_CACHE_VERSION,
        ...args.sourceKey,
        seed: args.seed,
        backbone: args.backbone.spec ?? args.backbone.name,
        config: args.config,
        ...(engine === 'tfjs' ? {} : { engine }),
      }),
    )
    .digest('hex')
    .slice(0, 16);
  const file = args.cacheDir
    ? join(args.cacheDir, `pretrain-${args.sourceKey.task}-s${args.seed}-${key}.tlparams`)
    : undefined;
  if (file && existsSync(file)) {
    // An entry that cannot be read (truncated by a crash, a disk error) is a
    // miss: rebuild and overwrite it rather than fail every later run.
    let cached: Awaited<ReturnType<typeof loadParams>> | undefined;
    try {
      cached = await loadParams(file);
      if (!Number.isFinite(Number(cached.meta.sourceTrainAcc)))
        throw new Error('its metadata has no sourceTrainAcc');
    } catch (err) {
      cached = undefined;
      const warn = args.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
      warn(`unreadable pre-training cache entry, rebuilding it: ${(err as Error).message}`);
    }
    if (cached) {
      const { params, meta } = cached;
      const isHead = (name: string) => name.startsWith('source_head.');
      return {
        params: pickParams(params, (n) => !isHead(n)),
        sourceHead: pickParams(params, isHead),
        sourceTrainAcc: Number(meta.sourceTrainAcc),
        fromCache: true,
        pretrainMs: Date.now() - started,
      };
    }
  }
  const out = await pretrainSource({
    backbone: args.backbone,
    source: args.source,
    seed: args.seed,
    config: args.config,
    engine,
    ...(args.onEpoch ? { onEpoch: args.onEpoch } : {}),
  });
  if (file && args.cacheDir) {
    mkdirSync(args.cacheDir, { recursive: true });
    await saveParams(
      file,
      { ...out.params, ...out.sourceHead },
      {
        ...args.sourceKey,
        seed: args.seed,
        backbone: args.backbone.name,
        sourceTrainAcc: out.sourceTrainAcc,
      },
    );
  }
  return { ...out, fromCache: false, pretrainMs: Date.now() - started };
}
