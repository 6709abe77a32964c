import { symmetricEigen } from './linalg.js';
import type { Dense } from './matrix.js';

/**
 * The non-zero part of a thin SVD F = U S Vᵀ, obtained from the smaller Gram
 * matrix: σ_k = s_k² are the positive eigenvalues of FᵀF (= those of FFᵀ) and
 * U [n, r] the matching left singular vectors.
 */
export interface Spectrum {
  n: number;
  d: number;
  /** Numerical rank: how many σ are above the cutoff. */
  r: number;
  /** σ_1 ≥ … ≥ σ_r > cutoff, the eigenvalues of FᵀF. */
  sigma: Float64Array;
  /** Left singular vectors, row-major [n, r]: U[i, k] = u[i * r + k]. */
  u: Float64Array;
}

/**
 * Eigendecomposes FᵀF (d×d) when d ≤ n, else FFᵀ (n×n), with the Jacobi
 * solver, so the cost is O(n·d·min(n, d)) to form the Gram matrix plus
 * O(min(n, d)³) per sweep. Eigenvalues ≤ relCutoff·σ_max count as zero (their
 * directions are dropped). For d ≤ n, u_k = F v_k / √σ_k. Returns r = 0 for
 * an all-zero F.
 */
export function leftSpectrum(f: Dense, relCutoff: number): Spectrum {
  const { rows: n, cols: d, data: x } = f;
  const small = Math.min(n, d);
  const gram = new Float64Array(small * small);
  if (d <= n) {
    // FᵀF, upper triangle
    for (let i = 0; i < n; i++) {
      const off = i * d;
      for (let p = 0; p < d; p++) {
        const xp = x[off + p] as number;
        if (xp === 0) continue;
        for (let q = p; q < d; q++)
          gram[p * d + q] = (gram[p * d + q] as number) + xp * (x[off + q] as number);
      }
    }
  } else {
    // FFᵀ, upper triangle
    for (let i = 0; i < n; i++)
      for (let j = i; j < n; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += (x[i * d + k] as number) * (x[j * d + k] as number);
        gram[i * n + j] = s;
      }
  }
  for (let p = 0; p < small; p++)
    for (let q = 0; q < p; q++) gram[p * small + q] = gram[q * small + p] as number;
  const { values, vectors } = symmetricEigen(gram, small);
  const sigmaMax = values[0] as number;
  let r = 0;
  if (sigmaMax > 0) {
    const cutoff = relCutoff * sigmaMax;
    while (r < small && (values[r] as number) > cutoff) r++;
  }
  const sigma = values.slice(0, r);
  const u = new Float64Array(n * r);
  if (d <= n) {
    for (let k = 0; k < r; k++) {
      const inv = 1 / Math.sqrt(sigma[k] as number);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < d; j++)
          s += (x[i * d + j] as number) * (vectors[j * small + k] as number);
        u[i * r + k] = s * inv;
      }
    }
  } else {
    for (let i = 0; i < n; i++)
      for (let k = 0; k < r; k++) u[i * r + k] = vectors[i * small + k] as number;
  }
  return { n, d, r, sigma, u };
}
