export { choleskyFactor, choleskySolveFactored, NotPositiveDefiniteError } from './cholesky.js';
export { choleskySolve, SYMMETRY_TOLERANCE } from './cholesky-solve.js';
