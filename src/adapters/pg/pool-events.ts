/**
 * pg-pool's per-client events and hooks, raised from the adapter's hooks so that every path
 * the core takes (creates, destroys, idle clients dying) reports them exactly once:
 * `onConnect` / `verify` on a new client, then 'connect'; 'remove' once it is gone; 'error'
 * when an idle client fails. The pool's own counting and health checks are untouched.
 */
import diagnostics from 'node:diagnostics_channel';
import type pg from 'pg';
import { CHANNELS, type Adapter, type DestroyEvent, type DestroyReason } from '../../index.js';
import { recordListeners } from '../postgres/client-state.js';
import type { DropInPolicy, PoolLog } from './config.js';

/** Where the wrapped adapter reports: the drop-in pool. */
export interface PoolEventSink {
  /** A new client passed `onConnect` and `verify`. */
  connected(client: pg.Client): void;
  /** The pool let go of a client (it no longer counts it); its connection is closing. */
  destroying(client: pg.Client): void;
  /** A client was destroyed (after its connection closed). */
  removed(client: pg.Client): void;
  /** A client idle in the pool failed; the pool already replaces it. */
  idleError(error: unknown, client: pg.Client): void;
}

/** `inner` with pg-pool's hooks and events around its create, destroy and ref hooks. */
export function withPoolEvents(inner: Adapter<pg.Client>, policy: DropInPolicy, sink: PoolEventSink): Adapter<pg.Client> {
  // Clients idle in the pool, as the core's ref hook reports (ref(false) = gone idle).
  const idle = new WeakSet<pg.Client>();
  // Errors from onConnect/verify: the user's verdict on the connection, not worth a retry.
  const hookErrors = new WeakSet<object>();
  const { log, onConnect, verify } = policy;

  const runHooks = async (client: pg.Client): Promise<void> => {
    try {
      if (onConnect !== undefined) await onConnect(client);
      if (verify !== undefined) {
        await new Promise<void>((resolve, reject) => verify(client, (error) => (error ? reject(error) : resolve())));
      }
    } catch (error) {
      if (typeof error === 'object' && error !== null) hookErrors.add(error);
      throw error;
    }
  };

  return {
    ...inner,
    async create(context) {
      log('connecting new client');
      let client: pg.Client;
      try {
        client = await inner.create(context);
      } catch (error) {
        log('client failed to connect', error);
        throw error;
      }
      try {
        await runHooks(client);
      } catch (error) {
        log('connect hook failed', error);
        await inner.destroy(client, AbortSignal.timeout(5000)).catch(() => {});
        throw error;
      }
      client.on('error', (error: unknown) => {
        if (idle.has(client)) sink.idleError(error, client);
      });
      sink.connected(client);
      // Listeners added by onConnect, verify and 'connect' handlers belong to the client for
      // its whole life; only those a caller adds during a lease are removed when it ends.
      recordListeners(client);
      log('new client connected');
      return client;
    },

    async destroy(client, signal) {
      idle.delete(client);
      // Called by the core in the same turn as it stops counting the client.
      sink.destroying(client);
      try {
        await inner.destroy(client, signal);
      } finally {
        sink.removed(client);
      }
    },

    isRetryable(error) {
      return !(typeof error === 'object' && error !== null && hookErrors.has(error)) && (inner.isRetryable?.(error) ?? true);
    },

    ref(client, active) {
      if (active) idle.delete(client);
      else idle.add(client);
      inner.ref?.(client, active);
    },
  };
}

/** pg-pool's log lines for the removals it logs; lifeguard's other reasons are logged by name. */
const REMOVAL_LOG: Partial<Record<DestroyReason, string>> = {
  maxUses: 'remove expended client',
  idle: 'remove idle client',
  lifetime: 'remove expired client',
};
const removalLogs = new WeakMap<object, PoolLog>();
let listening = false;

/**
 * Log each client `pool` removes, and why, to pg-pool's `log`, as the core decides it (in the
 * same turn as a `release()` that retires a client). One subscription to lifeguard's destroy
 * channel serves every pool; once there, every pool publishes its destroys, which are rare.
 */
export function logRemovals(pool: object, log: PoolLog): void {
  removalLogs.set(pool, log);
  if (listening) return;
  listening = true;
  diagnostics.subscribe(CHANNELS.destroy, (message) => {
    const { pool: from, reason } = message as DestroyEvent;
    // Never throws (see resolveDropInConfig): a subscriber's throw would be an uncaught exception.
    removalLogs.get(from)?.(REMOVAL_LOG[reason] ?? `remove client (${reason})`);
  });
}
