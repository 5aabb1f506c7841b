/**
 * The server's settings checked against the pool's own, once per pool on its first
 * connection: a server that closes idle sessions before the pool retires them deserves a
 * warning, since the pool's timings then do not hold.
 */
import type pg from 'pg';
import { PoolError } from '../../index.js';
import type { Pooler } from './pooler.js';

/** `SHOW` output of a time setting ('0', '1500', '1s', '5min', '100ms') in milliseconds. */
export function parsePgDuration(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(value);
  if (match === null) return NaN;
  const unit = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  return Number(match[1]) * unit;
}

/**
 * The pool's timing options that {@link postgresAdapter} compares with the server's
 * `idle_session_timeout` on the first connection, and where the `POOL_CONFIG_WARNING` goes.
 */
export interface SessionLimitCheck {
  /** The pool's `idleTimeoutMs`. */
  readonly idleTimeoutMs: number;
  /** The pool's `maxLifetimeMs`. */
  readonly maxLifetimeMs: number;
  /** The pool's `keepaliveMs`. */
  readonly keepaliveMs: number;
  /** Receives the warning (a `PoolError` with code `POOL_CONFIG_WARNING`); usually the pool's `onError`. */
  readonly warn: (error: unknown) => void;
  /** The pool's `pooler`: 'transaction' skips the check, 'none' adds the pooler detection. @default 'none' */
  readonly pooler?: Pooler;
}

/**
 * Once per pool, on the first connection, in one round trip:
 *
 * - a server `idle_session_timeout` (PG 14+) at or below the pool's idle timeout or lifetime
 *   means the server kills pooled connections before the pool retires them (HikariCP's
 *   maxLifetime advice). They are evicted quietly when that happens, but the configuration
 *   deserves one warning. Not in transaction pooling, where it is a false positive: the
 *   pooler replaces the server connection and the client survives;
 * - with `pooler: 'none'`, a `pg_backend_pid()` that differs from the pid the login reported
 *   (BackendKeyData) means a pooler is in between without the pool being told: one warning.
 */
export async function checkSessionLimits(client: pg.Client, check: SessionLimitCheck): Promise<void> {
  const pooler = check.pooler ?? 'none';
  if (pooler === 'transaction') return;
  let value: string;
  try {
    const { rows } = await client.query<{ pid: number; idle_session_timeout: string | null }>(
      "SELECT pg_backend_pid() AS pid, current_setting('idle_session_timeout', true) AS idle_session_timeout",
    );
    const pid = rows[0]?.pid;
    const reported = (client as pg.Client & { processID?: number | null }).processID;
    if (pooler === 'none' && typeof pid === 'number' && typeof reported === 'number' && pid !== reported) {
      warn(check, new PoolError(
        "The processID from the login does not match pg_backend_pid(): a connection pooler (PgBouncer?) is in between. Set the `pooler` option ('session' or 'transaction', as the pooler's pool_mode) " +
          'so that cancels reach the server, new connections are validated through the pooler, and what the pooler breaks is refused.',
        'POOL_CONFIG_WARNING',
      ));
    }
    value = rows[0]?.idle_session_timeout ?? '0'; // NULL: PostgreSQL < 14 has no such setting
  } catch {
    return;
  }
  const serverMs = parsePgDuration(value);
  // Keepalive pings more often than the server's limit keep idle sessions alive.
  if (!(serverMs > 0) || check.keepaliveMs < serverMs) return;
  const limits = [check.idleTimeoutMs >= serverMs ? `idleTimeoutMs (${check.idleTimeoutMs} ms)` : undefined,
    check.maxLifetimeMs >= serverMs ? `maxLifetimeMs (${check.maxLifetimeMs} ms)` : undefined].filter((x) => x !== undefined);
  if (limits.length === 0) return;
  const warning = new PoolError(
    `The server's idle_session_timeout (${value}) is not above the pool's ${limits.join(' and ')}: the server will close idle pooled connections first. ` +
      'Set idleTimeoutMs and maxLifetimeMs, or keepaliveMs, several seconds shorter than idle_session_timeout, or raise it.',
    'POOL_CONFIG_WARNING',
  );
  warn(check, warning);
}

function warn(check: SessionLimitCheck, warning: PoolError): void {
  try {
    check.warn(warning);
  } catch {
    // A throwing handler must not fail the create.
  }
}
