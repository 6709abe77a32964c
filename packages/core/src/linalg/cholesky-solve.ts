import * as tf from '@tensorflow/tfjs-core';
import { choleskyFactor, choleskySolveFactored } from './cholesky.js';

/**
 * How far from symmetric A may be, relative to its largest entry, before
 * `choleskySolve` refuses it. Float32 products such as ΦΦᵀ come out
 * asymmetric in the last bits (the two triangles are summed in different
 * orders); anything beyond this is a caller's mistake, not rounding.
 */
export const SYMMETRY_TOLERANCE = 1e-3;

const NAME = 'choleskySolve';

function checkShapes(a: tf.Tensor, b: tf.Tensor): { n: number; k: number } {
  if (a.rank !== 2 || a.shape[0] !== a.shape[1]) {
    throw new Error(`${NAME}: A must be a square matrix [n, n], got shape [${a.shape}]`);
  }
  if (b.rank !== 2) {
    throw new Error(
      `${NAME}: B must be a matrix [n, k] (reshape a vector to [n, 1]), got shape [${b.shape}]`,
    );
  }
  const n = a.shape[0] as number;
  if (b.shape[0] !== n) {
    throw new Error(
      `${NAME}: shapes do not match: A is [${a.shape}] but B is [${b.shape}] (B needs ${n} rows)`,
    );
  }
  if (n === 0) throw new Error(`${NAME}: A is empty (0×0)`);
  if (a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new Error(`${NAME}: A and B must be float32, got ${a.dtype} and ${b.dtype}`);
  }
  return { n, k: b.shape[1] as number };
}

/** The symmetric part ½(A + Aᵀ) in float64, after checking A is finite and nearly symmetric. */
function symmetricPart(data: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  let scale = 0;
  let asym = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const aij = data[i * n + j] as number;
      const aji = data[j * n + i] as number;
      if (!Number.isFinite(aij) || !Number.isFinite(aji)) {
        const [r, c] = Number.isFinite(aij) ? [j, i] : [i, j];
        throw new Error(`${NAME}: A has a non-finite entry at [${r}, ${c}]: ${data[r * n + c]}`);
      }
      scale = Math.max(scale, Math.abs(aij), Math.abs(aji));
      asym = Math.max(asym, Math.abs(aij - aji));
      const s = 0.5 * (aij + aji);
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  if (asym > SYMMETRY_TOLERANCE * scale) {
    throw new Error(
      `${NAME}: A is not symmetric: max |A - Aᵀ| = ${asym} against max |A| = ${scale}` +
        ` (allowed: ${SYMMETRY_TOLERANCE} relative)`,
    );
  }
  return out;
}

/**
 * X = A⁻¹B for a symmetric positive-definite A [n, n] and B [n, k],
 * differentiable with respect to both A and B (tfjs has no linear solve).
 *
 * Forward: A is read to the CPU, symmetrised to ½(A + Aᵀ), factored as
 * L Lᵀ (Cholesky) and the two triangular systems are solved, all in float64,
 * so the result is as accurate as float32 inputs allow even when A is
 * moderately ill-conditioned. O(n³/3 + n²k) in JavaScript: meant for
 * n ≲ 512 (a 64×64 system takes microseconds, 512×512 tens of milliseconds).
 *
 * Gradient (implicit function theorem, A symmetric): with upstream G = ∂L/∂X
 * and S = A⁻¹G (one more solve with the same factor),
 *   ∂L/∂B = S,   ∂L/∂A = −½(S Xᵀ + X Sᵀ).
 * The function is defined on the symmetric part of A, so this symmetric
 * gradient is exact even for the off-diagonal entries.
 *
 * Higher order: a first-order gradient is computed from the cached factor
 * on plain arrays (fast). When that gradient is itself being recorded (a
 * `tf.grad` of a `tf.grad`), it is built from `choleskySolve` calls and
 * matMuls on the saved inputs instead, so second-order derivatives are
 * correct too (tested against finite differences).
 *
 * Throws a clear error when A is not square, is not symmetric, is not
 * positive definite (naming the failing pivot), or the shapes do not match.
 */
export function choleskySolve(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  const { n, k } = checkShapes(a, b);
  const sym = symmetricPart(a.dataSync(), n);
  const l = choleskyFactor(sym, n, NAME);
  const x = choleskySolveFactored(l, n, b.dataSync(), k);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [ta, tb, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // Saving clones the inputs with tape links back to them, which is what
    // makes the second-order path connected; it is a no-op off the tape.
    save([ta, tb]);
    return {
      value: tf.tensor2d(Float32Array.from(x), [n, k]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        if (tf.engine().isTapeOn()) {
          const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
          const s = choleskySolve(sa, dy);
          const xs = choleskySolve(sa, sb);
          const sxt = tf.matMul(s, xs, false, true);
          return [tf.mul(tf.add(sxt, tf.transpose(sxt)), -0.5), s];
        }
        const s = choleskySolveFactored(l, n, dy.dataSync(), k);
        const da = new Float32Array(n * n);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j <= i; j++) {
            let acc = 0;
            for (let c = 0; c < k; c++) {
              acc +=
                (s[i * k + c] as number) * (x[j * k + c] as number) +
                (x[i * k + c] as number) * (s[j * k + c] as number);
            }
            da[i * n + j] = -0.5 * acc;
            da[j * n + i] = -0.5 * acc;
          }
        }
        return [tf.tensor2d(da, [n, n]), tf.tensor2d(Float32Array.from(s), [n, k])];
      },
    };
  });
  return op(a, b) as tf.Tensor2D;
}
