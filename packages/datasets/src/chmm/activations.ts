/**
 * The pointwise activations of the hidden-manifold generator, in float64 and
 * independent of any tfjs backend (so one seed gives the same data
 * everywhere).
 */

export const CHMM_ACTIVATIONS = ['relu', 'tanh', 'erf', 'sign'] as const;
export type ChmmActivation = (typeof CHMM_ACTIVATIONS)[number];

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const ONE_OVER_SQRT_PI = 1 / Math.sqrt(Math.PI);

/**
 * The error function to ~1e-15 relative accuracy: for |x| ≤ 3 the
 * all-positive series erf(x) = (2/√π) e^{−x²} Σ_n 2ⁿ x^{2n+1}/(1·3·…·(2n+1))
 * (no cancellation); for |x| > 3 the continued fraction
 * erfc(x) = (e^{−x²}/√π) / (x + ½/(x + 1/(x + (3/2)/(x + …)))), evaluated
 * backwards from a fixed depth; |x| ≥ 6 gives ±1 to double precision.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  const sign = x < 0 ? -1 : 1;
  if (ax >= 6) return sign;
  if (ax <= 3) {
    const x2 = ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 0; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 3);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    return sign * TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  }
  let t = ax;
  for (let k = 60; k >= 1; k--) t = ax + k / 2 / t;
  const erfc = (ONE_OVER_SQRT_PI * Math.exp(-ax * ax)) / t;
  return sign * (1 - erfc);
}

/** The activation as a float64 function; sign(0) = 0 (a null set under the latent Gaussian). */
export function chmmActivation(name: ChmmActivation): (z: number) => number {
  switch (name) {
    case 'relu':
      return (z) => Math.max(z, 0);
    case 'tanh':
      return Math.tanh;
    case 'erf':
      return erf;
    case 'sign':
      return Math.sign;
    default:
      throw new Error(
        `chmm: unknown activation ${JSON.stringify(name)}; valid activations: ${CHMM_ACTIVATIONS.join(', ')}`,
      );
  }
}
