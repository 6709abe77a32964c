/**
 * The terms of the Task Transfer Analysis bound, in Float64 on plain arrays:
 *
 *   L_T(h_T) ≤ L_w + H(B, D) + τ · W
 *
 * with the transformed source S''' = (A z + b, y'' ~ B[:, y]), y ~ D, and the
 * transformed source classifier h'''(x) = B · softmax(W_S Ā (x − b) + c_S).
 */
import { type Dense, type MatrixLike, toDense, toVector } from '../estimators/matrix.js';
import { emd } from '../ot/emd.js';
import type { LabelledSet } from './data.js';
import { headCrossEntropies, headLogits, type LinearHead, softmaxRow } from './head.js';

/** Tolerance on Σ_i B_ij = 1 and Σ_j D_j = 1. */
const SIMPLEX_TOL = 1e-6;

/** Checks that D is a probability vector over the source classes. */
export function checkPrior(
  fn: string,
  name: string,
  D: ArrayLike<number>,
  S?: number,
): Float64Array {
  const d = toVector(fn, name, D);
  if (S !== undefined && d.length !== S)
    throw new Error(`${fn}: ${name} has ${d.length} entries but there are ${S} source classes`);
  if (d.length === 0) throw new Error(`${fn}: ${name} is empty`);
  let s = 0;
  d.forEach((v, j) => {
    if (v < 0) throw new Error(`${fn}: ${name}[${j}] is ${v}; probabilities must be >= 0`);
    s += v;
  });
  if (Math.abs(s - 1) > SIMPLEX_TOL) throw new Error(`${fn}: ${name} sums to ${s}, not 1`);
  return d;
}

/**
 * A label map B [|Y_T|, |Y_S|] with columns on the simplex (B_ij = P(target
 * label i | source label j)), from either a matrix or a permutation/assignment
 * array `map` of length |Y_S| (source class j → target class map[j], a 0/1
 * matrix). Returned row-major [T, S].
 */
export function labelMapMatrix(
  fn: string,
  labelMap: MatrixLike | ArrayLike<number>,
  T: number,
  S: number,
): Float64Array {
  const first = (labelMap as ArrayLike<unknown>)[0];
  const isVector =
    !('rows' in (labelMap as object)) &&
    (typeof first === 'number' || (labelMap as ArrayLike<unknown>).length === 0);
  const B = new Float64Array(T * S);
  if (isVector) {
    const map = labelMap as ArrayLike<number>;
    if (map.length !== S)
      throw new Error(
        `${fn}: labelMap has ${map.length} entries but the source has ${S} classes (one target class per source class)`,
      );
    for (let j = 0; j < S; j++) {
      const t = map[j] as number;
      if (!Number.isInteger(t) || t < 0 || t >= T)
        throw new Error(`${fn}: labelMap[${j}] is ${t}; it must be a target class in 0..${T - 1}`);
      B[t * S + j] = 1;
    }
    return B;
  }
  const m = toDense(fn, 'labelMap', labelMap as MatrixLike);
  if (m.rows !== T || m.cols !== S)
    throw new Error(
      `${fn}: labelMap is [${m.rows}, ${m.cols}] but must be [${T}, ${S}] (target classes × source classes)`,
    );
  for (let j = 0; j < S; j++) {
    let s = 0;
    for (let i = 0; i < T; i++) {
      const v = m.data[i * S + j] as number;
      if (v < 0) throw new Error(`${fn}: labelMap[${i}][${j}] is ${v}; entries must be >= 0`);
      s += v;
    }
    if (Math.abs(s - 1) > SIMPLEX_TOL)
      throw new Error(
        `${fn}: column ${j} of labelMap (source class ${j}) sums to ${s}, not 1 (columns are P(target label | source label ${j}))`,
      );
  }
  B.set(m.data);
  return B;
}

/**
 * Conditional entropy of the label map under the prior:
 *
 *   H(B, D) = −Σ_j D_j Σ_i B_ij log B_ij   (0 log 0 = 0),
 *
 * B [|Y_T|, |Y_S|] with columns on the simplex, D on the simplex over the
 * source classes. It is 0 exactly when every column with D_j > 0 is one-hot
 * (e.g. a permutation).
 */
export function conditionalEntropy(B: MatrixLike, D: ArrayLike<number>): number {
  const fn = 'conditionalEntropy';
  const m = toDense(fn, 'B', B);
  const d = checkPrior(fn, 'D', D);
  if (d.length !== m.cols)
    throw new Error(
      `${fn}: B has ${m.cols} columns (source classes) but D has ${d.length} entries`,
    );
  return conditionalEntropyFlat(labelMapMatrix(fn, m, m.rows, m.cols), d, m.rows, m.cols);
}

export function conditionalEntropyFlat(
  B: Float64Array,
  D: Float64Array,
  T: number,
  S: number,
): number {
  let h = 0;
  for (let j = 0; j < S; j++) {
    let col = 0;
    for (let i = 0; i < T; i++) {
      const v = B[i * S + j] as number;
      if (v > 0) col -= v * Math.log(v);
    }
    h += (D[j] as number) * col;
  }
  return h;
}

/** x ↦ M x + v for every row (M row-major [d, d]; v optional). */
export function affineRows(x: Dense, M: Float64Array, v?: Float64Array): Dense {
  const d = x.cols;
  const out = new Float64Array(x.rows * d);
  for (let i = 0; i < x.rows; i++)
    for (let r = 0; r < d; r++) {
      let s = v ? (v[r] as number) : 0;
      for (let k = 0; k < d; k++) s += (M[r * d + k] as number) * (x.data[i * d + k] as number);
      out[i * d + r] = s;
    }
  return { data: out, rows: x.rows, cols: d };
}

/** Row-major product of two d×d matrices. */
export function matMulSquare(P: Float64Array, Q: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let k = 0; k < d; k++) {
      const p = P[i * d + k] as number;
      if (p === 0) continue;
      for (let j = 0; j < d; j++)
        out[i * d + j] = (out[i * d + j] as number) + p * (Q[k * d + j] as number);
    }
  return out;
}

/** ‖AĀ − I‖²_F + ‖ĀA − I‖²_F. */
export function invertibilityGap(A: Float64Array, Abar: Float64Array, d: number): number {
  let s = 0;
  for (const P of [matMulSquare(A, Abar, d), matMulSquare(Abar, A, d)])
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) {
        const v = (P[i * d + j] as number) - (i === j ? 1 : 0);
        s += v * v;
      }
  return s;
}

/**
 * The weighted source loss of the transformed classifier on the transformed
 * source. For a source sample of class i, h'''(A z + b) = B·h_S(Ā A z), so
 *
 *   L_w = Σ_i D_i · mean_{z ∈ class i} CE(h_S(Ā A z), i)
 *       = (1/N) Σ_i (D_i / P̂_S(i)) Σ_{z ∈ class i} CE(h_S(Ā A z), i),
 *
 * P̂_S(i) = n_i / N the empirical prior of the set. With Ā = A⁻¹ this is the
 * paper's (1/N) Σ_i (D_i/P_S(i)) Σ CE(h_S(z), y). `AbarA` null means I.
 * Returns the per-class mean losses too.
 */
export function weightedSourceLoss(
  head: LinearHead,
  source: LabelledSet,
  D: Float64Array,
  AbarA: Float64Array | null,
): { value: number; perClass: Float64Array } {
  const x = AbarA ? affineRows(source.x, AbarA) : source.x;
  const ce = headCrossEntropies(head, x, source.y);
  const perClass = new Float64Array(source.numClasses);
  source.byClass.forEach((idx, c) => {
    let s = 0;
    for (const i of idx) s += ce[i] as number;
    perClass[c] = s / idx.length;
  });
  let value = 0;
  perClass.forEach((v, c) => {
    value += (D[c] as number) * v;
  });
  return { value, perClass };
}

export interface TransformedWassersteinOptions {
  /**
   * How transformed source samples get target labels:
   * - 'argmax' (authors' code): source class j goes to target class
   *   argmax_i B_ij;
   * - 'soft' (the paper's S''' exactly): a source sample of class j carries
   *   mass B_ij to target class i.
   */
  labelMatching?: 'argmax' | 'soft';
  /**
   * Averaging over target classes: 'uniform' (paper and code: each class
   * counts once) or 'target-prior' (weights P̂_T(i), what the proof's W_d
   * reduces to when B D = P_T).
   */
  classWeights?: 'uniform' | 'target-prior';
}

export interface TransformedWasserstein {
  distance: number;
  perClass: {
    /** Target class. */
    label: number;
    /** W1 between the transformed source mass assigned to this class and its target samples; Infinity if no source mass reaches it. */
    distance: number;
    /** Source classes contributing mass. */
    sourceClasses: number[];
    nSource: number;
    nTarget: number;
  }[];
}

/**
 * Class-wise exact W1 (Euclidean ground cost) between the transformed source
 * features xs = A z + b (rows aligned with `source`) and the target set. Within
 * target class i, a source sample of class j has mass ∝ (D_j / n_j) · w_ij,
 * w_ij = B_ij ('soft') or 1[i = argmax B_·j] ('argmax'); target samples are
 * uniform. With D = P̂_S this is uniform over the source points of the class,
 * as in the authors' code.
 */
export function transformedWasserstein(
  xs: Dense,
  source: LabelledSet,
  target: LabelledSet,
  B: Float64Array,
  D: Float64Array,
  options: TransformedWassersteinOptions = {},
): TransformedWasserstein {
  const matching = options.labelMatching ?? 'argmax';
  const classWeights = options.classWeights ?? 'uniform';
  const S = source.numClasses;
  const T = target.numClasses;
  const d = xs.cols;
  const assigned = argmaxColumns(B, T, S);
  const perClass: TransformedWasserstein['perClass'] = [];
  for (let i = 0; i < T; i++) {
    const rows: number[] = [];
    const mass: number[] = [];
    const classes: number[] = [];
    for (let j = 0; j < S; j++) {
      const w = matching === 'soft' ? (B[i * S + j] as number) : assigned[j] === i ? 1 : 0;
      const idx = source.byClass[j] as Int32Array;
      const m = ((D[j] as number) / idx.length) * w;
      if (!(m > 0)) continue;
      classes.push(j);
      for (const r of idx) {
        rows.push(r);
        mass.push(m);
      }
    }
    const tIdx = target.byClass[i] as Int32Array;
    if (rows.length === 0) {
      perClass.push({
        label: i,
        distance: Number.POSITIVE_INFINITY,
        sourceClasses: [],
        nSource: 0,
        nTarget: tIdx.length,
      });
      continue;
    }
    const M: Float64Array[] = rows.map((r) => {
      const row = new Float64Array(tIdx.length);
      for (let c = 0; c < tIdx.length; c++) {
        const t = tIdx[c] as number;
        let s = 0;
        for (let k = 0; k < d; k++) {
          const diff = (xs.data[r * d + k] as number) - (target.x.data[t * d + k] as number);
          s += diff * diff;
        }
        row[c] = Math.sqrt(s);
      }
      return row;
    });
    const total = mass.reduce((p, q) => p + q, 0);
    const a = mass.map((m) => m / total);
    const b = new Float64Array(tIdx.length).fill(1 / tIdx.length);
    perClass.push({
      label: i,
      distance: emd(a, b, M).cost,
      sourceClasses: classes,
      nSource: rows.length,
      nTarget: tIdx.length,
    });
  }
  const weights =
    classWeights === 'uniform' ? new Float64Array(T).fill(1 / T) : Float64Array.from(target.prior);
  let distance = 0;
  perClass.forEach((c, i) => {
    const w = weights[i] as number;
    if (w > 0) distance += w * c.distance;
  });
  return { distance, perClass };
}

/** For every source class j, argmax_i B_ij (ties: the smaller i). */
export function argmaxColumns(B: Float64Array, T: number, S: number): Int32Array {
  const out = new Int32Array(S);
  for (let j = 0; j < S; j++) {
    let best = 0;
    for (let i = 1; i < T; i++)
      if ((B[i * S + j] as number) > (B[best * S + j] as number)) best = i;
    out[j] = best;
  }
  return out;
}

/**
 * Loss and input gradients of the transformed source classifier on labelled
 * points x with target labels y:
 *
 *   ℓ(x, y) = −log (B p)_y,  p = softmax(W Ā (x − b) + c),
 *   ∇_x ℓ = Āᵀ Wᵀ (p − r),  r_k = p_k B_yk / (B p)_y,
 *
 * (r is the posterior over source classes given target label y; r = e_j for a
 * permutation mapping j to y). Returns the mean loss and the largest gradient
 * norm.
 */
export function transformedClassifierStats(
  head: LinearHead,
  Abar: Float64Array,
  b: Float64Array,
  B: Float64Array,
  x: Dense,
  y: ArrayLike<number>,
): { loss: number; maxGradNorm: number } {
  const S = head.numClasses;
  const d = head.dim;
  // The transformed head in target coordinates: logits = V (x − b) + c, V = W Ā.
  const V = composedWeight(head, Abar);
  const shifted = new Float64Array(x.data.length);
  for (let i = 0; i < x.rows; i++)
    for (let k = 0; k < d; k++)
      shifted[i * d + k] = (x.data[i * d + k] as number) - (b[k] as number);
  const logits = headLogits(
    { numClasses: S, dim: d, weight: V, bias: head.bias },
    { data: shifted, rows: x.rows, cols: d },
  );
  const p = new Float64Array(S);
  const g = new Float64Array(d);
  let loss = 0;
  let maxGradNorm = 0;
  for (let n = 0; n < x.rows; n++) {
    softmaxRow(logits, n * S, S, p);
    const yi = y[n] as number;
    let q = 0;
    for (let j = 0; j < S; j++) q += (B[yi * S + j] as number) * (p[j] as number);
    q = Math.max(q, 1e-300);
    loss -= Math.log(q);
    // g = Vᵀ (p − r), r_j = p_j B_yj / q.
    g.fill(0);
    for (let j = 0; j < S; j++) {
      const pj = p[j] as number;
      const cj = pj - (pj * (B[yi * S + j] as number)) / q;
      if (cj === 0) continue;
      for (let k = 0; k < d; k++) g[k] = (g[k] as number) + cj * (V[j * d + k] as number);
    }
    let s = 0;
    for (let k = 0; k < d; k++) s += (g[k] as number) ** 2;
    maxGradNorm = Math.max(maxGradNorm, Math.sqrt(s));
  }
  return { loss: loss / x.rows, maxGradNorm };
}

/** V = W Ā, row-major [S, d]: row k is Āᵀ W_k. */
function composedWeight(head: LinearHead, Abar: Float64Array): Float64Array {
  const S = head.numClasses;
  const d = head.dim;
  const V = new Float64Array(S * d);
  for (let k = 0; k < S; k++)
    for (let r = 0; r < d; r++) {
      const w = head.weight[k * d + r] as number;
      if (w === 0) continue;
      for (let c = 0; c < d; c++)
        V[k * d + c] = (V[k * d + c] as number) + w * (Abar[r * d + c] as number);
    }
  return V;
}

/**
 * A certified Lipschitz constant of x ↦ ℓ(x, y) for every y and every x (not
 * only at samples): p − r lies in conv{e_k − e_l}, so
 * ‖Āᵀ Wᵀ (p − r)‖ ≤ max_{k,l} ‖Āᵀ (W_k − W_l)‖.
 */
export function globalLipschitz(head: LinearHead, Abar: Float64Array): number {
  const S = head.numClasses;
  const d = head.dim;
  const V = composedWeight(head, Abar);
  let best = 0;
  for (let k = 0; k < S; k++)
    for (let l = k + 1; l < S; l++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += ((V[k * d + c] as number) - (V[l * d + c] as number)) ** 2;
      best = Math.max(best, Math.sqrt(s));
    }
  return best;
}
