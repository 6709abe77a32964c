/**
 * Semi-synthetic sources for MeRLin (Liu, HaoChen, Wei, Ma 2020, arXiv
 * 2011.01418, "Meta-learning Transferable Representations with a Single
 * Target Domain"): the source task can be solved either by transferable
 * features (digit or garment shape, shared with the target) or by a
 * source-specific shortcut, a label-dependent mark written into the source
 * images only. Pre-training latches onto the mark (it is easier to learn),
 * so its features transfer badly to the target, where the mark is absent.
 *
 * The paper's exact image modification is not reproduced here (see
 * docs/references.md): this is a parameterised construction of the same kind.
 */
import { createRng, type Rng } from '@transferlab/core';
import { defineTask } from '../define-task.js';
import type { TaskBuildOptions, TaskSpec } from '../tasks.js';
import type { Dataset, TaskPair } from '../types.js';

/**
 * How the label is written into an image (all work on grayscale images):
 * - 'patch': a bright square whose position encodes the label. Squares sit
 *   along the image border (top and bottom edge alternately, then left and
 *   right), one slot per class; the other classes' slots are written dark.
 * - 'pixel-code': the binary code of label+1 (so no class has an all-dark
 *   code) written in the top-left corner, one square cell per bit, least
 *   significant bit leftmost: a set bit is bright, a clear bit dark.
 * - 'stripe': a vertical stripe along the right edge whose gray level
 *   encodes the label: (label+1)/numClasses.
 */
export type ShortcutKind = 'patch' | 'pixel-code' | 'stripe';

export const SHORTCUT_KINDS: readonly ShortcutKind[] = ['patch', 'pixel-code', 'stripe'];

export interface ShortcutLayoutOptions {
  /** 'patch': side of each square, in pixels (default max(2, round(min(H, W)/10)): 3 on 28×28). */
  readonly patchSize?: number;
  /** 'pixel-code': side of each bit cell, in pixels (default 2). */
  readonly cellSize?: number;
  /** 'stripe': width of the stripe, in columns (default 2). */
  readonly stripeWidth?: number;
}

/**
 * Where a shortcut is written and what it writes. The region is split into
 * `units` (sets of pixels that always get the same value); `values[c][u]` is
 * the value in [0, 1] that class c writes into unit u. Every class writes the
 * whole region, so at full intensity the region is a function of the label
 * alone, whatever the image underneath.
 */
export interface ShortcutLayout {
  readonly kind: ShortcutKind;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly numClasses: number;
  /** Pixel indices (row · width + column) of each unit. */
  readonly units: readonly Int32Array[];
  /** values[c][u]: what class c writes into unit u. */
  readonly values: readonly Float32Array[];
}

export interface ShortcutOptions extends ShortcutLayoutOptions {
  readonly kind: ShortcutKind;
  /**
   * In [0, 1]; both the probability that an example carries its label's mark
   * and the intensity of the mark. Each example independently carries it with
   * probability `strength`; a carrying example's pixels p in the region become
   * `(1 − strength)·x_p + strength·m_c(p)` (all channels), where m_c is the
   * label's pattern (values in [0, 1]). Strength 0 leaves the data unchanged;
   * strength 1 marks every example and overwrites the region with the
   * pattern. Pixels outside the region are never touched.
   */
  readonly strength: number;
  /** One `next()` per example, in order, decides whether it carries the mark. */
  readonly rng: Rng;
  /** Override of the blending weight (default `strength`). */
  readonly intensity?: number;
  /** Override of the carrying probability (default `strength`). */
  readonly probability?: number;
}

export interface ShortcutResult {
  readonly dataset: Dataset;
  /** carriers[i] = 1 when example i got its label's mark. */
  readonly carriers: Uint8Array;
  readonly layout: ShortcutLayout;
}

function imageDims(shape: readonly number[], context: string): [number, number, number] {
  const [h, w, c = 1] = shape;
  if (
    (shape.length !== 2 && shape.length !== 3) ||
    h === undefined ||
    w === undefined ||
    !shape.every((s) => Number.isInteger(s) && s > 0)
  ) {
    throw new Error(
      `${context}: examples must be images of shape [height, width] or [height, width, channels], got [${shape.join(', ')}]`,
    );
  }
  return [h, w, c];
}

function square(top: number, left: number, size: number, width: number): Int32Array {
  const out = new Int32Array(size * size);
  let k = 0;
  for (let r = 0; r < size; r++)
    for (let c = 0; c < size; c++) out[k++] = (top + r) * width + left + c;
  return out;
}

function requireSize(value: number, what: string, context: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${context}: ${what} must be a positive integer, got ${value}`);
  return value;
}

/** The layout a kind uses on images of `shape` with `numClasses` classes (see `ShortcutKind`). */
export function shortcutLayout(
  kind: ShortcutKind,
  shape: readonly number[],
  numClasses: number,
  opts: ShortcutLayoutOptions = {},
): ShortcutLayout {
  const context = `shortcut '${kind}'`;
  const [height, width, channels] = imageDims(shape, context);
  if (!Number.isInteger(numClasses) || numClasses < 2)
    throw new Error(`${context}: needs at least 2 classes, got ${numClasses}`);
  const units: Int32Array[] = [];
  const values: Float32Array[] = [];
  if (kind === 'patch') {
    const size = requireSize(
      opts.patchSize ?? Math.max(2, Math.round(Math.min(height, width) / 10)),
      'patchSize',
      context,
    );
    // Slots along the top and bottom edges (alternating), then the left and
    // right edges (alternating), one pixel apart.
    const slots: Int32Array[] = [];
    if (height >= 2 * size + 1) {
      for (let left = 0; left + size <= width; left += size + 1) {
        slots.push(square(0, left, size, width), square(height - size, left, size, width));
      }
      if (width >= 2 * size + 1) {
        for (let top = size + 1; top + size <= height - size - 1; top += size + 1) {
          slots.push(square(top, 0, size, width), square(top, width - size, size, width));
        }
      }
    }
    if (slots.length < numClasses) {
      throw new Error(
        `${context}: ${height}×${width} images have room for ${slots.length} border squares of side ${size}, but there are ${numClasses} classes (use a smaller patchSize)`,
      );
    }
    units.push(...slots.slice(0, numClasses));
    for (let c = 0; c < numClasses; c++) {
      const v = new Float32Array(numClasses);
      v[c] = 1;
      values.push(v);
    }
  } else if (kind === 'pixel-code') {
    const cell = requireSize(opts.cellSize ?? 2, 'cellSize', context);
    const bits = Math.ceil(Math.log2(numClasses + 1));
    if (bits * cell > width || cell > height) {
      throw new Error(
        `${context}: ${bits} cells of side ${cell} do not fit in the top row of ${height}×${width} images (use a smaller cellSize)`,
      );
    }
    for (let b = 0; b < bits; b++) units.push(square(0, b * cell, cell, width));
    for (let c = 0; c < numClasses; c++) {
      const v = new Float32Array(bits);
      for (let b = 0; b < bits; b++) v[b] = ((c + 1) >> b) & 1;
      values.push(v);
    }
  } else if (kind === 'stripe') {
    const stripe = requireSize(opts.stripeWidth ?? 2, 'stripeWidth', context);
    if (stripe > width)
      throw new Error(`${context}: stripeWidth ${stripe} is wider than the image (${width})`);
    const px = new Int32Array(height * stripe);
    let k = 0;
    for (let r = 0; r < height; r++)
      for (let col = width - stripe; col < width; col++) px[k++] = r * width + col;
    units.push(px);
    for (let c = 0; c < numClasses; c++) values.push(Float32Array.of((c + 1) / numClasses));
  } else {
    throw new Error(
      `unknown shortcut kind ${JSON.stringify(kind)}; use one of ${SHORTCUT_KINDS.join(', ')}`,
    );
  }
  return { kind, height, width, channels, numClasses, units, values };
}

function checkUnitInterval(value: number, what: string): number {
  if (!(typeof value === 'number' && value >= 0 && value <= 1))
    throw new Error(`addShortcut: ${what} must be a number in [0, 1], got ${String(value)}`);
  return value;
}

/**
 * Like `addShortcut`, but also returns which examples carry the mark and the
 * layout used (for tests and diagnostics).
 */
export function applyShortcut(ds: Dataset, opts: ShortcutOptions): ShortcutResult {
  const strength = checkUnitInterval(opts.strength, 'strength');
  const intensity = checkUnitInterval(opts.intensity ?? strength, 'intensity');
  const probability = checkUnitInterval(opts.probability ?? strength, 'probability');
  const layout = shortcutLayout(opts.kind, ds.shape, ds.numClasses, opts);
  const { channels, height, width } = layout;
  const size = height * width * channels;
  const n = ds.y.length;
  if (ds.x.length !== n * size)
    throw new Error(
      `addShortcut on ${ds.name}: x has ${ds.x.length} values, expected ${n} × ${size}`,
    );
  const x = ds.x.slice();
  const carriers = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    // Always draw, so that which examples carry the mark depends only on the rng and i.
    const u = opts.rng.next();
    if (!(u < probability) || intensity === 0) continue;
    carriers[i] = 1;
    const label = ds.y[i] as number;
    const pattern = layout.values[label];
    if (!pattern)
      throw new Error(
        `addShortcut on ${ds.name}: label #${i} is ${label}, outside 0..${ds.numClasses - 1}`,
      );
    const base = i * size;
    layout.units.forEach((pixels, unit) => {
      const m = pattern[unit] as number;
      for (let k = 0; k < pixels.length; k++) {
        const p = base + (pixels[k] as number) * channels;
        for (let ch = 0; ch < channels; ch++) {
          const v = (1 - intensity) * (x[p + ch] as number) + intensity * m;
          x[p + ch] = Math.min(1, Math.max(0, v));
        }
      }
    });
  }
  const dataset: Dataset = {
    ...ds,
    name: `${ds.name}+shortcut(${opts.kind}, ${strength})`,
    x,
    y: ds.y.slice(),
    shape: [...ds.shape],
  };
  return { dataset, carriers, layout };
}

/**
 * A copy of `ds` (images in [0, 1], shape [H, W] or [H, W, C]) in which a
 * label-dependent mark is written, see `ShortcutOptions.strength` for exactly
 * how much and how often, and `ShortcutKind` for where.
 */
export function addShortcut(ds: Dataset, opts: ShortcutOptions): Dataset {
  return applyShortcut(ds, opts).dataset;
}

/**
 * A trivial decoder that reads the mark back: for every example, the label its
 * region encodes, or −1 when the region shows no mark. Unit means (over pixels
 * and channels) are compared with `intensity / 2` (for 'patch' and
 * 'pixel-code') or rounded to the nearest level (for 'stripe'), which recovers
 * the label of every marked example at intensity 1, and of marked examples on
 * a dark background (MNIST) at any intensity > 0.
 */
export function decodeShortcut(
  ds: Dataset,
  kind: ShortcutKind,
  opts: ShortcutLayoutOptions & { readonly intensity?: number } = {},
): Int32Array {
  const layout = shortcutLayout(kind, ds.shape, ds.numClasses, opts);
  const intensity = opts.intensity ?? 1;
  if (!(intensity > 0 && intensity <= 1))
    throw new Error(`decodeShortcut: intensity must be in (0, 1], got ${intensity}`);
  const { channels, numClasses } = layout;
  const size = layout.height * layout.width * channels;
  const n = ds.y.length;
  const out = new Int32Array(n);
  const means = new Float64Array(layout.units.length);
  for (let i = 0; i < n; i++) {
    const base = i * size;
    layout.units.forEach((pixels, unit) => {
      let s = 0;
      for (let k = 0; k < pixels.length; k++) {
        const p = base + (pixels[k] as number) * channels;
        for (let ch = 0; ch < channels; ch++) s += ds.x[p + ch] as number;
      }
      means[unit] = s / (pixels.length * channels);
    });
    let label = -1;
    if (kind === 'patch') {
      let best = intensity / 2;
      means.forEach((m, unit) => {
        if (m > best) {
          best = m;
          label = unit;
        }
      });
    } else if (kind === 'pixel-code') {
      let code = 0;
      means.forEach((m, bit) => {
        if (m > intensity / 2) code |= 1 << bit;
      });
      label = code >= 1 && code <= numClasses ? code - 1 : -1;
    } else {
      const level = Math.round(((means[0] as number) / intensity) * numClasses);
      label = level >= 1 ? Math.min(level, numClasses) - 1 : -1;
    }
    out[i] = label;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Task pairs

export interface ShortcutTaskBuildOptions extends TaskBuildOptions {
  /** Overrides the spec's default strength (see `ShortcutOptions.strength`). */
  readonly shortcutStrength?: number;
  /** Overrides the spec's default kind. */
  readonly shortcutKind?: ShortcutKind;
}

export interface ShortcutTaskSpec extends TaskSpec {
  build(opts: ShortcutTaskBuildOptions): Promise<TaskPair>;
  /** The kind and strength used when the build options do not say. */
  readonly shortcut: { readonly kind: ShortcutKind; readonly strength: number };
}

export interface ShortcutTaskOptions extends ShortcutLayoutOptions {
  /**
   * The task pair to modify, or a function returning it (or a promise of it),
   * called at build time: lets module-level specs refer to specs of modules
   * that import this one.
   */
  readonly base: TaskSpec | (() => TaskSpec | Promise<TaskSpec>);
  /** Default `${base.id}-shortcut` (required when `base` is a function). */
  readonly id?: string;
  readonly description?: string;
  /** Default 'patch'. */
  readonly kind?: ShortcutKind;
  /** Default 1. */
  readonly strength?: number;
}

/**
 * A task pair equal to `base` except that its source training set carries a
 * label-dependent shortcut (see `addShortcut`); the target splits are exactly
 * the base task's, without the shortcut. The base is built with the same
 * options (un-normalized), the mark is added with `createRng(seed).derive('shortcut')`,
 * then `normalization` is applied. Strength 0 gives the base pair.
 */
export function shortcutTask(opts: ShortcutTaskOptions): ShortcutTaskSpec {
  const { base } = opts;
  const layoutOptions: ShortcutLayoutOptions = {
    ...(opts.patchSize !== undefined ? { patchSize: opts.patchSize } : {}),
    ...(opts.cellSize !== undefined ? { cellSize: opts.cellSize } : {}),
    ...(opts.stripeWidth !== undefined ? { stripeWidth: opts.stripeWidth } : {}),
  };
  const getBase = typeof base === 'function' ? base : () => base;
  const id = opts.id ?? (typeof opts.base === 'function' ? undefined : `${opts.base.id}-shortcut`);
  if (id === undefined) throw new Error('shortcutTask: give an id when base is a function');
  const kind = opts.kind ?? 'patch';
  const strength = opts.strength ?? 1;
  if (!SHORTCUT_KINDS.includes(kind))
    throw new Error(
      `shortcutTask: unknown kind ${JSON.stringify(kind)}; use one of ${SHORTCUT_KINDS.join(', ')}`,
    );
  checkUnitInterval(strength, 'strength');
  const description =
    opts.description ??
    `${typeof opts.base === 'function' ? 'Base task' : `"${opts.base.id}"`} with a source-only '${kind}' shortcut ` +
      `(strength ${strength}: probability and intensity of the label's mark); target unchanged.`;
  const spec = defineTask<ShortcutTaskBuildOptions>(
    id,
    description,
    async (build, meta) => {
      const s = build.shortcutStrength ?? strength;
      const k = build.shortcutKind ?? kind;
      const pair = await (await getBase()).build({ ...build, normalization: 'none' });
      const source = addShortcut(pair.source.train, {
        ...layoutOptions,
        kind: k,
        strength: s,
        rng: createRng(build.seed).derive('shortcut'),
      });
      const overridden = s !== strength || k !== kind;
      return {
        ...pair,
        id: meta.id,
        description: overridden
          ? `${meta.description} Built with kind '${k}', strength ${s}.`
          : meta.description,
        source: { train: source },
      };
    },
    ['shortcutStrength', 'shortcutKind'],
  );
  return { ...spec, shortcut: { kind, strength } };
}

// The built-in shortcut pairs. Their bases are imported dynamically at build
// time: this module imports no values from ../tasks.ts, so ../tasks.ts may
// import it (e.g. to list these in builtinTasks) without a load-order cycle.

const tasksModule = () => import('../tasks.js');

/**
 * The main MeRLin semi-synthetic pair. Without the shortcut, digit features
 * learned on the source make target parity close to linearly separable, so
 * transfer clearly pays off; with a strong shortcut the source is solved by
 * reading a border square and the pretrained features lose most of their
 * value. Measured with the bench's MLP (5 epochs of Adam pre-training, 10
 * labels per class, 3 seeds): fine-tuning 0.825 at strength 0 vs 0.747 at
 * strength 1, scratch 0.742.
 */
export const mnistDigitsToParityShortcut: ShortcutTaskSpec = shortcutTask({
  base: async () => (await tasksModule()).mnistDigitsToParity,
  id: 'mnist-digits-to-parity-shortcut',
  description:
    'MeRLin semi-synthetic pair. Source: digit identity (10 classes) on a stratified half of the MNIST digits, each image ' +
    "carrying a label-dependent mark (default 'patch': a bright border square whose position encodes the digit; " +
    'shortcutStrength, default 1, is both the probability and the intensity of the mark). Target: parity (even/odd) on ' +
    'the other half, unmarked, few labels per class (default 10), 10/class validation, the rest as test.',
});

export const mnist04ToMnist59Shortcut: ShortcutTaskSpec = shortcutTask({
  base: async () => (await tasksModule()).mnist04ToMnist59,
  id: 'mnist04-to-mnist59-shortcut',
  description:
    'Source: MNIST digits 0–4 carrying a label-dependent mark (default a border square per class, shortcutStrength ' +
    'default 1 = probability and intensity). Target: digits 5–9 relabelled 0..4, unmarked, few labels per class ' +
    '(default 10), 10/class validation, the rest as test.',
});

export const fashionToFashionCoarseShortcut: ShortcutTaskSpec = shortcutTask({
  base: async () => (await tasksModule()).fashionToFashionCoarse,
  id: 'fashion-to-fashion-coarse-shortcut',
  description:
    'Source: the 10 Fashion-MNIST classes on a 10k subsample of the training split, each image carrying a ' +
    "label-dependent mark (default 'patch', shortcutStrength default 1 = probability and intensity; at strength 1 the " +
    'mark overwrites its border region). Target: 5 garment categories on the t10k split, unmarked, few labels per category.',
});

/** The shortcut pairs, in a fixed order. */
export const shortcutTasks: readonly ShortcutTaskSpec[] = [
  mnistDigitsToParityShortcut,
  mnist04ToMnist59Shortcut,
  fashionToFashionCoarseShortcut,
];
