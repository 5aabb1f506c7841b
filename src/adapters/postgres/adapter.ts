/**
 * The hooks the generic core drives for `pg.Client`s: connect (with the server checks), end,
 * health check, reset and the release policy, error classification, socket refs, and the
 * reachability probe.
 */
import pg from 'pg';
import type { Adapter } from '../../index.js';
import type { DirtyRelease, ResetOnRelease } from './config.js';
import { isRetryableConnectError } from './classify.js';
import { cancelRunning, probeServer, resolvedTarget } from './cancel.js';
import {
  busy, dead, hardClose, internals, isClientFatal, recordListeners, refSocket, restoreListeners, state, track, transactionStatus,
} from './client-state.js';
import { checkSessionLimits, type SessionLimitCheck } from './server-checks.js';
import { cancelThenClose, sendStatementsUnnamed, validateThroughPooler, type PoolerPolicy } from './pooler.js';

const DISCARD_SQL = 'CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;';

/**
 * pg rejects queries on a dead connection with a bare "not queryable" error: from now on,
 * give such errors the error the connection died of as their cause. Installed when the
 * connection dies, so a live client's queries pay nothing for it.
 */
function causeLaterErrors(client: pg.Client, died: unknown): void {
  const query = client.query;
  client.query = function (this: pg.Client, ...args: unknown[]): unknown {
    const result: unknown = (query as (...a: unknown[]) => unknown).apply(this, args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      if (error instanceof Error && error.cause === undefined && error !== died) error.cause = died;
      throw error;
    });
  } as typeof client.query;
}

/**
 * The `pg` adapter behind {@link createPostgresPool}: one narrow object the generic core
 * drives. `clientConfig` is final (see {@link resolveClientConfig}); `policy` is the release
 * policy and the optional `idle_session_timeout` check.
 */
export function postgresAdapter(
  clientConfig: pg.ClientConfig,
  policy: { resetOnRelease: ResetOnRelease; dirtyRelease: DirtyRelease; sessionLimits?: SessionLimitCheck; Client?: typeof pg.Client; pooler?: PoolerPolicy },
): Adapter<pg.Client> {
  const Client = policy.Client ?? pg.Client;
  let sessionLimits = policy.sessionLimits;
  // A reset on release (any mode but 'none') rolls an open transaction back, so dirty clients are reused.
  const rollbackDirty = policy.dirtyRelease === 'rollback' || policy.resetOnRelease !== 'none';
  // Where the probe connects: resolved once, as pg resolves it, on first use.
  let target: ReturnType<typeof resolvedTarget> | undefined;
  const probeTimeoutMs = Math.min(clientConfig.connectionTimeoutMillis ?? 5000, 5000);
  const behindPooler = policy.pooler !== undefined && policy.pooler.pooler !== 'none';
  const unnamed = policy.pooler?.preparedStatements === 'unnamed';
  const adapter: Adapter<pg.Client> = {
    async create({ signal, evict }) {
      const client = new Client(clientConfig);
      const clientState = track(client);
      // For the client's whole life: a server that goes away while the client is idle or
      // leased emits 'error'; without a listener that would crash the process. The pool
      // hears of it at once, so a dead idle client is replaced now, not at its next borrow.
      client.on('error', (error: unknown) => {
        clientState.broken = true;
        if (clientState.lastError === undefined) {
          clientState.lastError = error;
          causeLaterErrors(client, error);
        }
        evict();
      });
      client.on('end', () => {
        clientState.broken = true;
        evict();
      });
      // A connection cut mid-query (a reset, a proxy dying) leaves its server process running
      // the query, holding a session the pool no longer counts. Cancel it; this runs before
      // pg's own handlers, which forget the active query.
      const connection = internals(client).connection;
      const onDeath = (): void => {
        if (!clientState.cancelled && busy(client)) {
          clientState.cancelled = true;
          void cancelRunning(client, true);
        }
      };
      connection.prependListener('error', onDeath);
      connection.prependListener('end', onDeath);
      const onAbort = (): void => {
        clientState.broken = true;
        hardClose(client);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        // The callback form, as pg-pool calls it: a subclass that overrides connect(cb) works too.
        await new Promise<void>((resolve, reject) => {
          client.connect((error: unknown) => (error ? reject(error) : resolve()));
        });
      } catch (error) {
        hardClose(client);
        throw error;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
      try {
        // Pooler mode: the round trip that proves a server is behind the pooler.
        if (behindPooler) await bounded(client, signal, () => validateThroughPooler(client));
        if (unnamed) sendStatementsUnnamed(client);
      } catch (error) {
        hardClose(client);
        throw error;
      }
      if (sessionLimits !== undefined) {
        const check = sessionLimits;
        sessionLimits = undefined;
        await checkSessionLimits(client, check);
      }
      if (signal.aborted) {
        hardClose(client);
        throw signal.reason;
      }
      // The listeners the client has now are the pool's; a caller's are removed when its lease ends.
      recordListeners(client);
      return client;
    },

    async destroy(client, signal) {
      // Pooler mode: PgBouncer forgets the cancel key once the client's Terminate arrives, so
      // a busy client is cancelled before it is closed; in the background, since a cancel may
      // take up to its 1 s bound and the caller awaiting destroy must not wait for it.
      if (behindPooler && !state(client).broken && busy(client)) {
        state(client).broken = true;
        state(client).cancelled = true;
        void cancelThenClose(client);
        return;
      }
      void cancelRunning(client);
      // Marked broken by an 'error' pg did not raise itself (pg marks the connection unqueryable
      // first): the session is still sound, so it gets a polite goodbye like a healthy one.
      if (state(client).broken && (internals(client)._queryable === false || internals(client).connection.stream?.destroyed !== false)) {
        hardClose(client);
        return;
      }
      state(client).broken = true;
      // A polite end() waits for the server's FIN; past destroyTimeoutMs the socket is cut.
      const onAbort = (): void => hardClose(client);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await client.end();
      } catch {
        hardClose(client);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },

    isBroken(client) {
      // The core checks isBroken on every borrow and return, only ever on a client nobody
      // holds: the one point every lease boundary passes, a release handed straight to the
      // next waiter included (no ref() call comes between). O(1) unless a caller touched
      // the client's listeners.
      restoreListeners(client);
      // dead(): pg's own flags too, so a client the caller end()ed is not handed to the next
      // borrower in the moment before its 'end' event.
      if (dead(client)) return true;
      if (busy(client)) return true;
      const status = transactionStatus(client);
      return !rollbackDirty && (status === 'T' || status === 'E');
    },

    async ping(client, signal) {
      await bounded(client, signal, () => client.query('SELECT 1'));
    },

    isRetryable: isRetryableConnectError,
    isFatal: isClientFatal,

    ref(client, active) {
      // Both ends of a lease (the core calls ref(true) as it hands a client out, ref(false)
      // as it goes idle): listeners a caller added are gone before anyone else can hear them.
      restoreListeners(client);
      refSocket(client, active);
    },

    probe(signal) {
      target ??= resolvedTarget(clientConfig);
      if (target.address === undefined) return Promise.reject(new Error('probe: no host to connect to'));
      return probeServer(target.address, target.identity, signal, probeTimeoutMs);
    },
  };
  if (rollbackDirty) {
    adapter.reset = async (client, signal) => {
      // A client handed from a reset straight to the next caller gets no ref() call in between.
      restoreListeners(client);
      const status = transactionStatus(client);
      if (status === 'T' || status === 'E') await bounded(client, signal, () => client.query('ROLLBACK'));
      if (policy.resetOnRelease === 'discard') await bounded(client, signal, () => client.query(DISCARD_SQL));
    };
  }
  return adapter;
}

/** Run a query bounded by `signal`; when it aborts the connection is killed, since the query is still in flight. */
async function bounded<R>(client: pg.Client, signal: AbortSignal, run: () => Promise<R>): Promise<R> {
  signal.throwIfAborted();
  const onAbort = (): void => {
    state(client).broken = true;
    hardClose(client);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await run();
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
