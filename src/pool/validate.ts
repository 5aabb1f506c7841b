/**
 * The checks every option goes through: one place for what a valid number, duration or
 * key set is, and for the wording of the error ("Expected `max` to be an integer >= 1, got 0").
 */
import { InvalidPoolOptionError } from './errors.js';

export function rejectUnknownKeys(prefix: string, object: object, known: ReadonlySet<string>): void {
  for (const key of Object.keys(object)) {
    if (known.has(key)) continue;
    const hint = closest(key, known);
    throw new InvalidPoolOptionError(
      `${prefix}${key}`,
      `Unknown option \`${prefix}${key}\`${hint === undefined ? '' : ` (did you mean \`${prefix}${hint}\`?)`}; known options: ${[...known].join(', ')}`,
    );
  }
}

// Suggest the known key sharing the longest prefix, so `acquireTimeoutMillis` points at `acquireTimeoutMs`.
function closest(key: string, known: ReadonlySet<string>): string | undefined {
  let best: string | undefined;
  let bestLength = 3;
  const lower = key.toLowerCase();
  for (const candidate of known) {
    const other = candidate.toLowerCase();
    let n = 0;
    while (n < lower.length && n < other.length && lower[n] === other[n]) n++;
    if (n > bestLength) {
      best = candidate;
      bestLength = n;
    }
  }
  return best;
}

export function integer(name: string, value: unknown, fallback: number, min: number, allowInfinity = false): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && ((Number.isInteger(value) && value >= min) || (allowInfinity && value === Infinity))) {
    return value;
  }
  throw InvalidPoolOptionError.expected(name, `an integer >= ${min}${allowInfinity ? ' or Infinity' : ''}`, value);
}

export function duration(name: string, value: unknown, fallback: number, allowZero: boolean, allowInfinity: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && !Number.isNaN(value) && (allowZero ? value >= 0 : value > 0) && (allowInfinity || value !== Infinity)) {
    return value;
  }
  const range = allowZero ? 'a number of milliseconds >= 0' : 'a number of milliseconds > 0';
  throw InvalidPoolOptionError.expected(name, `${range}${allowInfinity ? ' (or Infinity for never)' : ''}`, value);
}

export function optionalFunction<F>(name: string, value: F | undefined): F | undefined {
  if (value === undefined || typeof value === 'function') return value;
  throw InvalidPoolOptionError.expected(name, 'a function', value);
}
