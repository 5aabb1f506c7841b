/**
 * What the adapter knows about each `pg.Client` it made: whether the connection died (and
 * of what), the errors the server sent on it, the session's read-only state as the server
 * reports it, and the listeners the pool itself put on the client (so that listeners added
 * during a lease can be removed when it ends). Everything here reads pg's own fields
 * (node_modules/pg/lib/client.js) and costs nothing on a client's ordinary queries.
 */
import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import { isConnectionFatal } from './classify.js';

type Listener = (...args: unknown[]) => void;

export interface ClientState {
  broken: boolean;
  /** The error the connection died of (a FATAL such as 25P03, a socket error): the cause of later "not queryable" errors. */
  lastError: unknown;
  /** A CancelRequest was already sent for the query running when the connection died. */
  cancelled: boolean;
  /** The last ErrorResponse the server sent on this connection (the very object its query rejected with). */
  lastServerError: unknown;
  /**
   * The ErrorResponse that aborted the current transaction: the last one received while the
   * session was not already in a failed transaction (after a ROLLBACK TO SAVEPOINT a later
   * error is the one that counts; the 25P02s that follow it are not). Cleared at each BEGIN.
   */
  abortError: unknown;
  /** ParameterStatus values the server reports (PostgreSQL 14+: `in_hot_standby`, `default_transaction_read_only`). */
  readonly params: Map<string, string>;
  /** The client's own listeners once connected (the pool's), by event; undefined until then. */
  baseline: Map<string | symbol, Listener[]> | undefined;
  /** A listener was added or removed since the last {@link restoreListeners}. */
  listenersChanged: boolean;
  /** {@link restoreListeners} is running (its own removals do not count as changes). */
  restoring: boolean;
}

const kState = Symbol('lifeguard.postgres');

/** pg internals the adapter reads (see node_modules/pg/lib/client.js); @types/pg does not declare them. */
export type PgClientInternals = pg.Client & {
  [kState]: ClientState;
  _activeQuery?: unknown;
  _queryQueue?: unknown[];
  _sentQueryQueue?: unknown[];
  _txStatus?: string | null;
  _ending?: boolean;
  _queryable?: boolean;
  readyForQuery?: boolean;
  processID?: number | null;
  secretKey?: number | null;
  host?: string;
  port?: number;
  connection: NodeJS.EventEmitter & { stream?: SocketLike };
};

interface SocketLike {
  destroyed?: boolean;
  destroy(): void;
  ref?(): unknown;
  unref?(): unknown;
}

export function internals(client: pg.Client): PgClientInternals {
  return client as PgClientInternals;
}

/** Attach fresh state to a new client (before it connects). */
export function track(client: pg.Client): ClientState {
  const clientState: ClientState = {
    broken: false,
    lastError: undefined,
    cancelled: false,
    lastServerError: undefined,
    abortError: undefined,
    params: new Map(),
    baseline: undefined,
    listenersChanged: false,
    restoring: false,
  };
  const c = internals(client);
  c[kState] = clientState;
  // Every ErrorResponse the server sends on this connection, awaited or not, before pg hands
  // it to the query (prepended: pg's own listener is attached at connect).
  c.connection.prependListener('errorMessage', (error: unknown) => {
    clientState.lastServerError = error;
    // The status is the one of the ReadyForQuery before this statement.
    if (c._txStatus !== 'E') clientState.abortError = error;
  });
  c.connection.on('parameterStatus', (message: { parameterName?: string; parameterValue?: string }) => {
    if (message.parameterName === 'in_hot_standby' || message.parameterName === 'default_transaction_read_only') {
      clientState.params.set(message.parameterName, String(message.parameterValue));
    }
  });
  return clientState;
}

export function state(client: pg.Client): ClientState {
  return internals(client)[kState];
}

/** 'I' idle, 'T' in a transaction, 'E' in a failed one; null before the first ReadyForQuery. */
export function transactionStatus(client: pg.Client): string | null {
  const tracked = client as pg.Client & { getTransactionStatus?: () => string | null; _txStatus?: string | null };
  return tracked.getTransactionStatus?.() ?? tracked._txStatus ?? null;
}

/** Mid-query: a query is running or queued. */
export function busy(client: pg.Client): boolean {
  const c = internals(client);
  // Not `readyForQuery === false` alone: after an ErrorResponse pg has no active query and is
  // only waiting for the ReadyForQuery that follows it (a separate packet).
  return c._activeQuery != null || (c._queryQueue?.length ?? 0) > 0 || (c._sentQueryQueue?.length ?? 0) > 0;
}

/** Kill the socket now: used when the protocol state is unknown (timeouts, aborts). */
export function hardClose(client: pg.Client): void {
  internals(client).connection?.stream?.destroy();
}

/** Let the client's socket keep the process alive (`active`) or not; a socket not (or no longer) there is left alone. */
export function refSocket(client: pg.Client, active: boolean): void {
  // After a TLS upgrade `stream` is the TLS socket, whose ref/unref reach the TCP handle.
  const stream = internals(client).connection?.stream;
  if (stream === undefined || stream.destroyed === true) return;
  if (active) stream.ref?.();
  else stream.unref?.();
}

/**
 * The client's listeners now are the pool's own: remember them, and from now on note any
 * listener added or removed (by a caller during a lease), so that {@link restoreListeners}
 * has nothing to do, and allocates nothing, while no caller touched them.
 */
export function recordListeners(pgClient: pg.Client): void {
  const client = pgClient as unknown as EventEmitter;
  const clientState = state(pgClient);
  const onChange = (): void => {
    if (!clientState.restoring) clientState.listenersChanged = true;
  };
  // Called again (a drop-in's hooks added listeners after connect): take a new snapshot, watch once.
  if (clientState.baseline === undefined) {
    client.on('newListener', onChange);
    client.on('removeListener', onChange);
  }
  const baseline = new Map<string | symbol, Listener[]>();
  for (const name of client.eventNames()) baseline.set(name, client.rawListeners(name) as Listener[]);
  baseline.set('newListener', client.rawListeners('newListener') as Listener[]);
  baseline.set('removeListener', client.rawListeners('removeListener') as Listener[]);
  clientState.baseline = baseline;
  clientState.listenersChanged = false;
}

/**
 * Back to the pool's own listeners: remove every listener a caller added (a `notice` or
 * `notification` handler left behind would pile up and hear the next caller's messages),
 * and put back any of the pool's own that a caller removed (its `'error'` listener keeps a
 * dead connection from crashing the process).
 */
export function restoreListeners(pgClient: pg.Client): void {
  const client = pgClient as unknown as EventEmitter;
  const clientState = state(pgClient);
  const baseline = clientState.baseline;
  if (!clientState.listenersChanged || baseline === undefined) return;
  clientState.restoring = true;
  try {
    for (const name of client.eventNames()) {
      const own = baseline.get(name);
      for (const listener of client.rawListeners(name) as Listener[]) {
        if (own === undefined || !own.includes(listener)) client.removeListener(name, listener);
      }
    }
    for (const [name, own] of baseline) {
      const now = client.rawListeners(name);
      for (const listener of own) if (!now.includes(listener)) client.on(name, listener);
    }
  } finally {
    clientState.restoring = false;
    clientState.listenersChanged = false;
  }
}

/**
 * Does the server say this session cannot write? PostgreSQL 14+ reports `in_hot_standby`
 * (a standby) and `default_transaction_read_only` (a primary fenced read-only, or a session
 * made read-only by default) to the client as they change. `undefined`: the server does not
 * report them (PostgreSQL < 14).
 */
export function sessionReadOnly(client: pg.Client): boolean | undefined {
  const params = state(client).params;
  const standby = params.get('in_hot_standby');
  const readOnly = params.get('default_transaction_read_only');
  if (standby === undefined && readOnly === undefined) return undefined;
  return standby === 'on' || readOnly === 'on';
}

/** Did this client die (an error or end event, or pg itself refusing further queries)? */
export function dead(client: pg.Client): boolean {
  const c = internals(client);
  return c[kState]?.broken === true || c._queryable === false || c._ending === true;
}

/**
 * Is `client` unusable after `error` was thrown while it was leased? The client's own state
 * decides, not the error's code alone: yes when the connection itself died, or when the error
 * came from this connection and is connection-fatal. An error from unrelated work (an
 * `ECONNRESET` from an HTTP call made inside the callback) does not condemn a healthy client.
 * 25006 (read-only transaction) from this connection condemns it only when the session is
 * really read-only by default (a standby after a failover, a primary fenced read-only): the
 * caller's own `BEGIN READ ONLY` or `SET TRANSACTION READ ONLY` leaves it healthy. A server
 * that does not report its read-only state (PostgreSQL < 14) keeps the conservative answer.
 */
export function isClientFatal(error: unknown, client: pg.Client | undefined): boolean {
  if (client === undefined || internals(client)[kState] === undefined) return isConnectionFatal(error);
  if (dead(client)) return true;
  if (!isConnectionFatal(error)) return false;
  const clientState = state(client);
  if (error === clientState.lastError) return true;
  if (error !== null && (error === clientState.lastServerError || error === clientState.abortError)) {
    if ((error as { code?: unknown }).code === '25006') return sessionReadOnly(client) ?? true;
    return true;
  }
  // pg's client-side query timeout rejects the query but leaves it running: the connection
  // is fatal while it still is (a timeout from another client finds this one idle).
  if (error instanceof Error && error.message.includes('Query read timeout')) return busy(client);
  return false;
}
