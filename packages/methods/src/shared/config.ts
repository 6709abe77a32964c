/**
 * Merge `options` over `defaults`, rejecting unknown keys and values whose
 * type differs from the default's. Methods add their own range checks.
 */
export function mergeConfig<C extends object>(
  methodId: string,
  defaults: Readonly<C>,
  options: Readonly<Record<string, unknown>> = {},
): C {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(options)) {
    if (!(key in defaults)) {
      throw new Error(
        `method "${methodId}": unknown option "${key}". Valid options: ${Object.keys(defaults).join(', ')}`,
      );
    }
    const expected = typeof (defaults as Record<string, unknown>)[key];
    if (typeof value !== expected) {
      throw new Error(
        `method "${methodId}": option "${key}" must be a ${expected}, got ${JSON.stringify(value)}`,
      );
    }
    out[key] = value;
  }
  return out as C;
}

export function requirePositive(
  methodId: string,
  name: string,
  value: number,
  integer = false,
): void {
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new Error(
      `method "${methodId}": ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`,
    );
  }
}

export function requireNonNegative(methodId: string, name: string, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new Error(`method "${methodId}": ${name} must be ≥ 0, got ${value}`);
  }
}

export function requireOneOf<T extends string>(
  methodId: string,
  name: string,
  value: string,
  allowed: readonly T[],
): void {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(
      `method "${methodId}": ${name} must be one of ${allowed.join(', ')}, got "${value}"`,
    );
  }
}
