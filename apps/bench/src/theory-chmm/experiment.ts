/**
 * The transfer protocol of Gerace et al. 2022 (arXiv 2106.05418) on the
 * correlated hidden-manifold model:
 *
 * (a) a two-layer network (first layer W ∈ R^{N×K} with activation, linear
 *     second layer) is trained on n_source source examples;
 * (b) 'transfer': its first layer is frozen and only a new readout is
 *     trained on n_target target examples (ridge-penalised square or
 *     logistic loss, see `analytic.ts`);
 * (c) 'random-features': the same readout on a random first layer
 *     (i.i.d. N(0, 1) entries, as at initialisation);
 * (d) 'scratch': the whole two-layer network trained on the n_target target
 *     examples only;
 *
 * for each correlation level (how the target differs from the source) and
 * each n_target. For (b) and (c) the GCM gives the learning curve of the
 * frozen feature map from Monte Carlo covariances (`analytic.ts`); each
 * record carries `predicted_test_error` beside `measured_test_error`.
 *
 * Data per (seed, level): the generator's seed is the trial seed, so every
 * level of one seed shares the source (and the source network is trained
 * once per seed). Target training sets are nested: for each repeat r the n
 * examples are the first n of stream `train-r`, so a learning curve moves
 * smoothly with n. Test error and covariances come from one pool of
 * `nTest` fresh target examples (stream 'pool'), independent of training.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, initBackend, type Params } from '@transferlab/core';
import {
  type ChmmCorrelation,
  type ChmmOptions,
  chmmMeasuredCorrelations,
  correlatedHiddenManifold,
} from '@transferlab/datasets';
import type { TrialRecord } from '../results.js';
import type { TrialOutcome } from '../suite-kind.js';
import {
  estimateFixedFeatureCovariances,
  type FixedFeaturePredictor,
  fitReadout,
  gaussianSurrogateErrors,
  gcmPredictor,
  readoutError,
} from './analytic.js';
import {
  type ChmmLoss,
  featuresOf,
  initTwoLayer,
  type NetActivation,
  signs,
  type TwoLayerTraining,
  trainTwoLayer,
  twoLayerError,
} from './network.js';

export const CHMM_METHODS = ['transfer', 'random-features', 'scratch'] as const;
export type ChmmMethod = (typeof CHMM_METHODS)[number];

/** One correlation level: how the target differs from the source, and its name in records. */
export interface ChmmLevel extends ChmmCorrelation {
  label?: string;
}

export interface ChmmExperimentOptions {
  /** Generator options (D, N, activation, and default correlation); the seed comes from `seeds`. */
  params: Omit<ChmmOptions, 'seed'>;
  /** Correlation levels to sweep (default: the one in `params`). */
  levels?: readonly ChmmLevel[];
  /** Source training examples. */
  nSource: number;
  /** Target training-set sizes. */
  nTargetList: readonly number[];
  /** Hidden width K. */
  hidden: number;
  /** A number s means seeds 0..s−1. */
  seeds: number | readonly number[];
  /** Default: all three. */
  methods?: readonly ChmmMethod[];
  /** Network activation (default 'erf'). */
  activation?: NetActivation;
  /** Source training of the two-layer network. */
  sourceTraining?: Partial<TwoLayerTraining>;
  /** Training of the 'scratch' network on the target. */
  scratchTraining?: Partial<TwoLayerTraining>;
  /** Readout of the fixed-feature methods: loss and λ (default square, λ = 0.1). */
  readout?: { loss?: ChmmLoss; lambda?: number };
  /** Size of the target pool used for the test error and for the Monte Carlo covariances (default 20,000). */
  nTest?: number;
  /** Source test examples for `source_test_error` (default 5,000). */
  nSourceTest?: number;
  /** Independent target training sets per trial, errors averaged; their spread gives `measured_test_error_se` (default 1). */
  targetRepeats?: number;
  /** Training sets for 'scratch' (a network per set, so costlier): default `targetRepeats`. */
  scratchRepeats?: number;
  /** Analytic curves for the fixed feature maps; null: none (default: the GCM). */
  predictor?: FixedFeaturePredictor | null;
  /**
   * Also fit the readout on Gaussian features with the estimated covariances
   * (`surrogate_test_error` ± `surrogate_test_error_se`, `targetRepeats`
   * draws): tells non-Gaussian features apart from solver or finite-size
   * error. Default false.
   */
  gaussianSurrogate?: boolean;
  backend?: string;
  /** Suite name in the records (default 'theory-chmm'). */
  suite?: string;
  /** Run id in the records. */
  run?: string;
  /** Called with each record as soon as it exists. */
  onRecord?: (record: TrialRecord) => void;
  /** Called before each unit of work. */
  onProgress?: (label: string) => void;
}

export const defaultSourceTraining: TwoLayerTraining = {
  steps: 1500,
  batchSize: 256,
  lr: 0.005,
  weightDecay: 1e-4,
  loss: 'logistic',
};

export const defaultScratchTraining: TwoLayerTraining = {
  steps: 600,
  batchSize: 256,
  lr: 0.005,
  weightDecay: 1e-3,
  loss: 'logistic',
};

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}

/** Default level label, e.g. `dF=0.5 sub=0 dT=1`. */
export function chmmLevelLabel(level: ChmmLevel): string {
  if (level.label) return level.label;
  const parts = [`dF=${fmt(level.featurePerturbation ?? 0)}`];
  if (level.featureSubstitution) parts.push(`sub=${fmt(level.featureSubstitution)}`);
  parts.push(`dT=${fmt(level.teacherPerturbation ?? 0)}`);
  return parts.join(' ');
}

function seedList(seeds: number | readonly number[]): number[] {
  if (typeof seeds === 'number') {
    if (!(Number.isInteger(seeds) && seeds >= 1))
      throw new Error(
        `runChmmExperiment: seeds must be a positive integer or a list, got ${seeds}`,
      );
    return Array.from({ length: seeds }, (_, i) => i);
  }
  if (seeds.length === 0) throw new Error('runChmmExperiment: the seed list is empty');
  return [...seeds];
}

function checkPositiveInteger(name: string, v: number): void {
  if (!(Number.isInteger(v) && v >= 1))
    throw new Error(`runChmmExperiment: ${name} must be a positive integer, got ${v}`);
}

/**
 * Standard error of the mean test error over R training sets, all scored on
 * one pool of nTest examples: the spread over sets (s²/R) plus the pool's own
 * binomial sampling variance ē(1 − ē)/nTest, which every set shares and the
 * spread therefore misses.
 */
export function testErrorSe(errors: readonly number[], nTest: number): number {
  const e = mean(errors);
  const spread = errors.length > 1 ? sd(errors) ** 2 / errors.length : 0;
  return Math.sqrt(spread + (e * (1 - e)) / nTest);
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function sd(xs: readonly number[]): number {
  if (xs.length < 2) return Number.NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) * (b - m), 0) / (xs.length - 1));
}

/** The experiment's options checked and with their defaults: what one seed runs from. */
export interface ResolvedChmmExperiment {
  methods: ChmmMethod[];
  generator: Omit<ChmmOptions, 'seed' | keyof ChmmCorrelation>;
  levels: ChmmLevel[];
  /** Each level's name in records (`chmmLevelLabel`). */
  labels: string[];
  nSource: number;
  nList: number[];
  K: number;
  nTest: number;
  nSourceTest: number;
  repeats: number;
  scratchRepeats: number;
  activation: NetActivation;
  sourceTraining: TwoLayerTraining;
  scratchTraining: TwoLayerTraining;
  loss: ChmmLoss;
  lambda: number;
  predictor: FixedFeaturePredictor | null;
  gaussianSurrogate: boolean;
}

/** Check the options (throws before any work) and fill in the defaults. */
export function resolveChmmExperiment(
  opts: Omit<ChmmExperimentOptions, 'seeds'>,
): ResolvedChmmExperiment {
  const methods = [...(opts.methods ?? CHMM_METHODS)];
  for (const m of methods)
    if (!(CHMM_METHODS as readonly string[]).includes(m))
      throw new Error(
        `runChmmExperiment: unknown method "${m}"; valid methods: ${CHMM_METHODS.join(', ')}`,
      );
  checkPositiveInteger('nSource', opts.nSource);
  checkPositiveInteger('hidden', opts.hidden);
  if (opts.nTargetList.length === 0) throw new Error('runChmmExperiment: nTargetList is empty');
  for (const n of opts.nTargetList) checkPositiveInteger('every n_target', n);
  const nTest = opts.nTest ?? 20_000;
  const nSourceTest = opts.nSourceTest ?? 5_000;
  const repeats = opts.targetRepeats ?? 1;
  checkPositiveInteger('nTest', nTest);
  checkPositiveInteger('nSourceTest', nSourceTest);
  checkPositiveInteger('targetRepeats', repeats);
  const scratchRepeats = opts.scratchRepeats ?? repeats;
  checkPositiveInteger('scratchRepeats', scratchRepeats);
  if (scratchRepeats > repeats)
    throw new Error(
      `runChmmExperiment: scratchRepeats (${scratchRepeats}) cannot exceed targetRepeats (${repeats})`,
    );
  const lambda = opts.readout?.lambda ?? 0.1;
  if (!(lambda > 0))
    throw new Error(`runChmmExperiment: readout lambda must be positive, got ${lambda}`);
  const { featurePerturbation, featureSubstitution, teacherPerturbation, ...generator } =
    opts.params;
  const levels: ChmmLevel[] = opts.levels
    ? [...opts.levels]
    : [{ featurePerturbation, featureSubstitution, teacherPerturbation }];
  const labels = levels.map(chmmLevelLabel);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup)
    throw new Error(
      `runChmmExperiment: two levels are labelled "${dup}"; give them distinct labels`,
    );
  return {
    methods,
    generator,
    levels,
    labels,
    nSource: opts.nSource,
    nList: [...opts.nTargetList],
    K: opts.hidden,
    nTest,
    nSourceTest,
    repeats,
    scratchRepeats,
    activation: opts.activation ?? 'erf',
    sourceTraining: { ...defaultSourceTraining, ...opts.sourceTraining },
    scratchTraining: { ...defaultScratchTraining, ...opts.scratchTraining },
    loss: opts.readout?.loss ?? 'square',
    lambda,
    predictor: opts.predictor === undefined ? gcmPredictor : opts.predictor,
    gaussianSurrogate: opts.gaussianSurrogate ?? false,
  };
}

/** A record's task: the level's label and the target size. */
export const chmmTask = (level: string, n: number) => `${level} · n=${n}`;

/** What one seed's run reports to, and asks of, whoever runs it. */
export interface ChmmSeedIo {
  /** The tfjs backend already initialised. */
  backend: string;
  /** Each trial's outcome as soon as it exists (suite and run are the caller's). */
  emit(outcome: TrialOutcome): void;
  /** Called before each (level, method), with its index of levels × methods. */
  progress?(label: string, index: number, total: number): void;
  /** Trials already done: their work is skipped where that saves any (a source network, a scratch network). */
  isDone?(task: string, method: string): boolean;
}

/**
 * One seed of the protocol, in the order (level, method, n_target). Data per
 * (seed, level): the generator's seed is the trial seed, so every level of
 * one seed shares the source, and the source network is trained once per seed.
 * A failure fails the trials it touches only (the source: transfer; a method
 * at a level: its sizes).
 */
export async function runChmmSeed(
  r: ResolvedChmmExperiment,
  seed: number,
  io: ChmmSeedIo,
): Promise<void> {
  const { methods, generator, levels, labels, K, nList, nTest, repeats, scratchRepeats } = r;
  const { activation, sourceTraining, scratchTraining, loss, lambda, predictor } = r;
  const { N } = generator;
  const nMax = Math.max(...nList);
  const isDone = io.isDone ?? (() => false);
  const allDone = (level: string, method: ChmmMethod) =>
    nList.every((n) => isDone(chmmTask(level, n), method));
  const progress = io.progress ?? (() => {});
  const total = levels.length * methods.length;
  const rng = createRng(seed).derive('theory-chmm');
  // (a) Source network, once per seed (the source does not depend on the level).
  let sourceNet: Params | undefined;
  let sourceError: string | undefined;
  const sourceMetrics: Record<string, number> = {};
  let sourceMs = 0;
  if (methods.includes('transfer') && !labels.every((l) => allDone(l, 'transfer'))) {
    progress(`seed ${seed}: source training`, 0, total);
    const started = Date.now();
    try {
      const model = correlatedHiddenManifold({ ...generator, seed });
      const train = model.source.sample(r.nSource, 'train');
      const test = model.source.sample(r.nSourceTest, 'test');
      const out = trainTwoLayer({
        params: initTwoLayer(N, K, rng.derive('source-init')),
        x: train.x,
        y: train.y,
        N,
        config: sourceTraining,
        activation,
        rng: rng.derive('source-batches'),
      });
      sourceNet = out.params;
      sourceMetrics.source_train_loss = out.finalLoss;
      sourceMetrics.source_test_error = twoLayerError(sourceNet, test.x, test.y, N, activation);
    } catch (err) {
      sourceError = `source training failed: ${(err as Error).message}`;
    }
    sourceMs = Date.now() - started;
  }
  const randomW = methods.includes('random-features')
    ? tf.tensor2d(rng.derive('random-features').normalArray(N * K), [N, K])
    : undefined;

  try {
    for (const [li, level] of levels.entries()) {
      const label = labels[li] as string;
      const todo = methods.filter((m) => !allDone(label, m));
      if (todo.length === 0) continue;
      const config = {
        ...generator,
        ...level,
        K,
        nSource: r.nSource,
        activation,
        readout: { loss, lambda },
        targetRepeats: repeats,
        scratchRepeats,
        nTest,
        predictor: predictor?.name ?? null,
      };
      const model = correlatedHiddenManifold({
        ...generator,
        featurePerturbation: level.featurePerturbation ?? 0,
        featureSubstitution: level.featureSubstitution ?? 0,
        teacherPerturbation: level.teacherPerturbation ?? 0,
        seed,
      });
      const measured = chmmMeasuredCorrelations(model.matrices);
      const levelMetrics = {
        teacher_overlap: measured.teacherOverlap,
        feature_correlation: measured.featureCorrelation,
      };
      const pool = model.target.sampleWithLatent(nTest, 'pool');
      const poolSigns = signs(pool.dataset.y);
      const trainSets = Array.from({ length: repeats }, (_, rep) =>
        model.target.sample(nMax, `train-${rep}`),
      );
      const base = {
        seed,
        backend: io.backend,
        backbone: `two-layer K=${K} ${activation}`,
      };

      const failAll = (method: ChmmMethod, error: string, durationMs: number) => {
        for (const n of nList)
          io.emit({
            ...base,
            task: chmmTask(label, n),
            method,
            status: 'failed',
            metrics: { n_target: n },
            durationMs,
            error,
            config,
          });
      };

      for (const method of todo) {
        progress(
          `seed ${seed} · ${label} · ${method}`,
          li * methods.length + methods.indexOf(method),
          total,
        );
        const started = Date.now();
        if (method === 'scratch') {
          for (const n of nList) {
            if (isDone(chmmTask(label, n), method)) continue;
            const t0 = Date.now();
            try {
              const errors = trainSets.slice(0, scratchRepeats).map((ds, rep) => {
                const x = ds.x.subarray(0, n * N);
                const y = ds.y.subarray(0, n);
                const out = trainTwoLayer({
                  params: initTwoLayer(N, K, rng.derive(`scratch-init-${li}-${n}-${rep}`)),
                  x,
                  y,
                  N,
                  config: scratchTraining,
                  activation,
                  rng: rng.derive(`scratch-batches-${li}-${n}-${rep}`),
                });
                try {
                  return twoLayerError(out.params, pool.dataset.x, pool.dataset.y, N, activation);
                } finally {
                  disposeParams(out.params);
                }
              });
              io.emit({
                ...base,
                task: chmmTask(label, n),
                method,
                status: 'ok',
                metrics: {
                  measured_test_error: mean(errors),
                  measured_test_error_se: testErrorSe(errors, nTest),
                  ...(scratchRepeats > 1 ? { measured_test_error_sd: sd(errors) } : {}),
                  n_target: n,
                  ...levelMetrics,
                },
                durationMs: Date.now() - t0,
                config: { ...config, scratchTraining },
                timestamp: new Date().toISOString(),
              });
            } catch (err) {
              io.emit({
                ...base,
                task: chmmTask(label, n),
                method,
                status: 'failed',
                metrics: { n_target: n },
                durationMs: Date.now() - t0,
                error: (err as Error).message,
                config,
              });
            }
          }
          continue;
        }
        // Fixed feature maps: transfer (frozen source layer) or random features.
        const W = method === 'transfer' ? sourceNet?.W : randomW;
        if (!W) {
          failAll(method, sourceError ?? 'no first layer', sourceMs);
          continue;
        }
        try {
          const poolFeatures = featuresOf(W, pool.dataset.x, N, activation);
          const trainFeatures = trainSets.map((ds) => featuresOf(W, ds.x, N, activation));
          const trainSigns = trainSets.map((ds) => signs(ds.y));
          let predicted: number[] | undefined;
          let surrogate: number[][] | undefined;
          let explained: number | undefined;
          let predictError: string | undefined;
          if (predictor) {
            try {
              const cov = estimateFixedFeatureCovariances({
                features: poolFeatures,
                latent: pool.latent,
                samples: nTest,
                theta: model.matrices.thetaT,
              });
              const p = predictor.predict(cov, {
                alphas: nList.map((n) => n / K),
                lambda,
                loss,
              });
              predicted = p.testErrors;
              explained = p.explainedVariance;
              if (r.gaussianSurrogate) {
                const g = rng.derive(`surrogate-${li}-${method}`);
                surrogate = gaussianSurrogateErrors(cov, nList, lambda, loss, repeats, () =>
                  g.normal(),
                );
              }
            } catch (err) {
              predictError = (err as Error).message;
            }
          }
          const setupMs = Date.now() - started + (method === 'transfer' ? sourceMs : 0);
          for (const [ni, n] of nList.entries()) {
            const t0 = Date.now();
            const errors = trainFeatures.map((feats, rep) => {
              const w = fitReadout(feats, trainSigns[rep] as Float32Array, n, K, lambda, loss);
              return readoutError(poolFeatures, poolSigns, w);
            });
            const pred = predicted?.[ni];
            const sur = surrogate?.map((row) => row[ni] as number);
            io.emit({
              ...base,
              task: chmmTask(label, n),
              method,
              status: 'ok',
              metrics: {
                measured_test_error: mean(errors),
                measured_test_error_se: testErrorSe(errors, nTest),
                ...(repeats > 1 ? { measured_test_error_sd: sd(errors) } : {}),
                ...(pred !== undefined && Number.isFinite(pred)
                  ? { predicted_test_error: pred }
                  : {}),
                n_target: n,
                alpha: n / K,
                lambda,
                ...(explained !== undefined ? { explained_teacher_variance: explained } : {}),
                ...(sur
                  ? {
                      surrogate_test_error: mean(sur),
                      surrogate_test_error_se: sur.length > 1 ? sd(sur) / Math.sqrt(sur.length) : 0,
                    }
                  : {}),
                ...levelMetrics,
                ...(method === 'transfer' ? sourceMetrics : {}),
              },
              durationMs: Date.now() - t0 + Math.round(setupMs / nList.length),
              config: {
                ...config,
                ...(method === 'transfer' ? { sourceTraining } : {}),
                ...(predictError ? { predictError } : {}),
                ...(pred !== undefined && !Number.isFinite(pred)
                  ? { predictError: 'GCM fixed point did not converge' }
                  : {}),
              },
              timestamp: new Date().toISOString(),
            });
          }
        } catch (err) {
          failAll(method, (err as Error).message, Date.now() - started);
        }
      }
    }
  } finally {
    disposeParams(sourceNet);
    randomW?.dispose();
  }
}

/**
 * Run the protocol; returns one record per (seed, level, method, n_target)
 * in the TrialRecord shape (task = `<level label> · n=<n_target>`, so that
 * the bench's task × method tables compare methods at one size).
 */
export async function runChmmExperiment(opts: ChmmExperimentOptions): Promise<TrialRecord[]> {
  const resolved = resolveChmmExperiment(opts);
  const seeds = seedList(opts.seeds);
  const backend = await initBackend(opts.backend ? { backend: opts.backend } : {});
  const suite = opts.suite ?? 'theory-chmm';
  const run = opts.run ?? new Date().toISOString();
  const records: TrialRecord[] = [];
  const onProgress = opts.onProgress;
  for (const seed of seeds)
    await runChmmSeed(resolved, seed, {
      backend: backend.name,
      emit(outcome) {
        const record = { suite, run, ...outcome };
        records.push(record);
        opts.onRecord?.(record);
      },
      ...(onProgress ? { progress: (label: string) => onProgress(label) } : {}),
    });
  return records;
}
