/**
 * Small dense symmetric eigenproblems on the host, in float64: what a loss
 * needs when neither engine has the decomposition as a differentiable op
 * (ONNX has no SVD). BSS reads the smallest singular directions of a batch's
 * feature matrix from here and feeds them to its loss as a step value.
 */

/**
 * Eigen-decomposition of the symmetric n × n matrix `a` (row-major; read,
 * not written) by cyclic Jacobi rotations: eigenvalues ascending, and the
 * matching unit eigenvectors as the columns of `vectors` (row-major n × n).
 * Jacobi is slow for large n but accurate to the last bits for small
 * ones, including clustered and repeated eigenvalues.
 */
export function symmetricEigen(
  a: ArrayLike<number>,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const at = (i: number, j: number) => m[i * n + j] as number;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let scale = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        const x = at(i, j) ** 2;
        if (i === j) scale += x;
        else off += x;
      }
    if (off <= 1e-30 * scale || off === 0) break;
    for (let p = 0; p < n - 1; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = at(p, q);
        if (apq === 0) continue;
        // The rotation that zeroes (p, q): tan of its angle, the smaller root.
        const theta = (at(q, q) - at(p, p)) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = at(k, p);
          const mkq = at(k, q);
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = at(p, k);
          const mqk = at(q, k);
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p] as number;
          const vkq = v[k * n + q] as number;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => at(i, i) - at(j, j));
  const values = Float64Array.from(order, (i) => at(i, i));
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => {
    for (let k = 0; k < n; k++) vectors[k * n + to] = v[k * n + from] as number;
  });
  return { values, vectors };
}

/**
 * The right singular vectors of the b × d matrix `f` (row-major) for its k
 * smallest singular values among the min(b, d) an SVD reports, as the
 * columns of a d × k matrix V_k (row-major, float32), and those σ².
 * ‖F V_k‖² = Σ σ_i² over them; with V_k held fixed its gradient in F,
 * 2 F V_k V_kᵀ, is the gradient of that sum, even when singular values
 * repeat inside the k (the sum is a smooth function of F as long as
 * σ_k ≠ σ_{k+1}). From the smaller Gram matrix: F Fᵀ when b ≤ d
 * (v_i = Fᵀu_i / σ_i), FᵀF otherwise. A σ_i that is zero to rounding gets a
 * zero column: its term and gradient are 0 either way. Columns beyond
 * min(b, d) are zero too.
 */
export function smallestSingularVectors(
  f: ArrayLike<number>,
  b: number,
  d: number,
  k: number,
): { v: Float32Array; sigma2: Float64Array } {
  const n = Math.min(b, d);
  const small = b <= d;
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      let s = 0;
      if (small)
        for (let t = 0; t < d; t++) s += (f[i * d + t] as number) * (f[j * d + t] as number);
      else for (let t = 0; t < b; t++) s += (f[t * d + i] as number) * (f[t * d + j] as number);
      gram[i * n + j] = s;
      gram[j * n + i] = s;
    }
  const { values, vectors } = symmetricEigen(gram, n);
  const largest = Math.max(0, values[n - 1] ?? 0);
  const count = Math.min(k, n);
  const v = new Float32Array(d * k);
  const sigma2 = new Float64Array(count);
  for (let c = 0; c < count; c++) {
    const lambda = Math.max(0, values[c] as number);
    sigma2[c] = lambda;
    if (!small) {
      for (let r = 0; r < d; r++) v[r * k + c] = vectors[r * n + c] as number;
      continue;
    }
    if (lambda <= 1e-12 * largest) continue;
    const sigma = Math.sqrt(lambda);
    for (let r = 0; r < d; r++) {
      let s = 0;
      for (let t = 0; t < b; t++) s += (f[t * d + r] as number) * (vectors[t * n + c] as number);
      v[r * k + c] = s / sigma;
    }
  }
  return { v, sigma2 };
}
