/**
 * A connection pooler (PgBouncer) between the pool and PostgreSQL: what the `pooler` option
 * refuses at construction, and what the adapter does differently behind one (a round trip
 * before a new client counts, statement names dropped in transaction mode, cancel before
 * close). SCALE.md 2.2 and 4.7 have the measurements behind each rule.
 */
import type pg from 'pg';
import { InvalidPoolOptionError } from '../../index.js';
import { cancelRunning } from './cancel.js';
import { busy, hardClose, internals } from './client-state.js';

/** What sits between the pool and PostgreSQL: nothing, or a pooler in session or transaction mode. */
export type Pooler = 'none' | 'session' | 'transaction';
/** Named prepared statements: 'server' as pg prepares them, 'unnamed' sent without their name. */
export type PreparedStatements = 'server' | 'unnamed';

/** The behaviour behind a pooler, resolved once at construction. */
export interface PoolerPolicy {
  /** The `pooler` option: what sits between the pool and PostgreSQL. */
  readonly pooler: Pooler;
  /** The `preparedStatements` option, its default resolved from `pooler`. */
  readonly preparedStatements: PreparedStatements;
}

/**
 * Startup parameters PgBouncer refuses (`08P01 unsupported startup parameter`) or, with
 * `ignore_startup_parameters`, silently drops: a `statement_timeout` that never applies.
 */
const STARTUP_PARAMETERS = ['statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'options'] as const;

/**
 * Validate `pooler` and `preparedStatements` against the rest of the configuration.
 * `merged` is the client config as pg will see it (explicit fields over the URL's).
 */
export function resolvePoolerPolicy(config: Readonly<Record<string, unknown>>, merged: Readonly<Record<string, unknown>>): PoolerPolicy {
  const pooler = config.pooler ?? 'none';
  if (pooler !== 'none' && pooler !== 'session' && pooler !== 'transaction') {
    throw InvalidPoolOptionError.expected('pooler', "'none', 'session' or 'transaction'", pooler);
  }
  const preparedStatements = config.preparedStatements ?? (pooler === 'transaction' ? 'unnamed' : 'server');
  if (preparedStatements !== 'server' && preparedStatements !== 'unnamed') {
    throw InvalidPoolOptionError.expected('preparedStatements', "'server' or 'unnamed'", preparedStatements);
  }
  if (pooler === 'none') return { pooler, preparedStatements };
  for (const key of STARTUP_PARAMETERS) {
    const value = merged[key];
    if (value === undefined || value === null || value === false || value === '' || value === 0) continue;
    const where = key in config ? `\`${key}\`` : `the \`${key}\` parameter of \`connectionString\``;
    throw new InvalidPoolOptionError(
      key in config ? key : 'connectionString',
      `${where} cannot be used with pooler: '${pooler}': PgBouncer refuses this startup parameter (or, with ignore_startup_parameters, silently drops it). ` +
        `Set it per role (ALTER ROLE … SET ${key === 'options' ? '…' : key} = …) or per transaction (SET LOCAL) instead`,
    );
  }
  if (pooler === 'transaction' && config.resetOnRelease === 'discard') {
    throw new InvalidPoolOptionError(
      'resetOnRelease',
      "resetOnRelease: 'discard' cannot be used with pooler: 'transaction': session state does not survive a transaction there, and DISCARD would run on " +
        "whichever server connection PgBouncer picks, another client's. Use 'rollback' (or 'none'), and keep session state out of transaction pooling",
    );
  }
  // Multi-host role targeting behind a pooler: the role is the pooler's business.
  const target = config.targetSessionAttrs;
  if (target !== undefined && target !== 'any') {
    throw new InvalidPoolOptionError(
      'targetSessionAttrs',
      `targetSessionAttrs other than 'any' cannot be used with pooler: '${pooler}': the server behind a pooler changes from one transaction to the next, so its role cannot be checked at connect. Point the pooler at the right server instead`,
    );
  }
  return { pooler, preparedStatements };
}

/**
 * Behind a pooler a successful login proves only that the pooler answers: the server behind
 * it may be down (`server_login_retry`), so one round trip decides whether the client counts
 * as created (the core's backoff, breaker and health then see the outage).
 */
export async function validateThroughPooler(client: pg.Client): Promise<void> {
  await client.query('SELECT 1');
}

/**
 * Send named statements unnamed: in transaction mode each transaction may run on another
 * server connection, where the name is unknown (26000) or taken by another client (42P05).
 * Only `{ name, text }` configs change; submittables and plain text pass through.
 */
export function sendStatementsUnnamed(client: pg.Client): void {
  const query = client.query;
  client.query = function (this: pg.Client, config: unknown, ...rest: unknown[]): unknown {
    if (typeof config === 'object' && config !== null && typeof (config as { name?: unknown }).name === 'string' && typeof (config as { submit?: unknown }).submit !== 'function') {
      const { name: _name, ...unnamed } = config as pg.QueryConfig;
      return (query as (...a: unknown[]) => unknown).call(this, unnamed, ...rest);
    }
    return (query as (...a: unknown[]) => unknown).call(this, config, ...rest);
  } as typeof client.query;
}

/** `LISTEN` through `pool.query` in transaction mode: the notifications would go to a server connection nobody listens on. */
export function refuseListen(text: unknown): TypeError | undefined {
  const sql = typeof text === 'string' ? text : typeof text === 'object' && text !== null ? (text as { text?: unknown }).text : undefined;
  if (typeof sql !== 'string' || !/^\s*LISTEN\b/i.test(sql)) return undefined;
  return new TypeError(
    "LISTEN cannot be used through pool.query with pooler: 'transaction': PgBouncer hands the server connection to other clients after each transaction, so no notification would arrive. Use a dedicated pg.Client connected to PostgreSQL directly",
  );
}

/** How long a client cancelled behind a pooler gets for each step after the cancel (the query to end, then end()) before its socket is cut. */
const AFTER_CANCEL_MS = 1000;

/**
 * Cancel what `client` runs, let the cancelled query end (its ErrorResponse and ReadyForQuery:
 * pg's end() cuts the socket while a query is active, which would race the cancel), then
 * close it; every step bounded, nothing thrown.
 */
export async function cancelThenClose(client: pg.Client): Promise<void> {
  await cancelRunning(client);
  if (busy(client)) {
    const connection = internals(client).connection;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        connection.off('readyForQuery', done);
        connection.off('end', done);
        resolve();
      };
      const timer = setTimeout(done, AFTER_CANCEL_MS);
      timer.unref();
      connection.on('readyForQuery', done);
      connection.on('end', done);
    });
  }
  const timer = setTimeout(() => hardClose(client), AFTER_CANCEL_MS);
  timer.unref();
  try {
    await client.end();
  } catch {
    hardClose(client);
  } finally {
    clearTimeout(timer);
  }
}
