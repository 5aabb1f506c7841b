/**
 * The hooks the generic core drives for mysql2 connections: connect (abortable), close (a
 * busy connection's statement is killed on the server first), COM_PING, the release policy
 * (rollback, COM_RESET_CONNECTION), error classification, socket refs, and the per-query
 * bound that also stops the statement on the server.
 */
import { connect as tcpConnect } from 'node:net';
import mysql, { type ConnectionOptions } from 'mysql2';
import type { Connection as PromiseConnection } from 'mysql2/promise';
import { PoolError, type Adapter } from '../../index.js';
import { isConnectionFatal, isRetryableConnectError } from './classify.js';
import {
  autocommitOff, baseOf, busy, dead, hardClose, inTransaction, recordListeners, refSocket, restoreListeners, serverVersion, sessionReset, state, track,
  type BaseConnection,
} from './connection-state.js';
import type { MysqlReleasePolicy } from './config.js';
import { killQuery } from './kill-query.js';

/**
 * A statement ran longer than `queryTimeoutMs`: `KILL QUERY` was sent to stop it on the
 * server and the connection is destroyed (mysql2 cannot take it back mid-result).
 */
export class QueryTimeoutError extends PoolError {
  constructor(timeoutMs: number, sql: string | undefined) {
    super(
      `Query timed out after ${timeoutMs} ms (queryTimeoutMs): KILL QUERY was sent to stop it on the server and the connection was destroyed${sql === undefined ? '' : `; the query began ${JSON.stringify(sql.slice(0, 60))}`}`,
      'POOL_QUERY_TIMEOUT',
    );
  }
}

interface TimedCommand extends NodeJS.EventEmitter {
  readonly _commandName?: string;
  readonly sql?: string;
  readonly query?: string;
}
/** The commands a statement runs as; pings, resets and the handshake have their own bounds. */
const TIMED_COMMANDS = new Set(['Query', 'Execute', 'Prepare']);

/** COM_RESET_CONNECTION: MySQL 5.7.3+, MariaDB 10.2.4+. */
function supportsResetConnection(version: string): boolean {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (match === null) return true;
  const [major, minor, patch] = match.slice(1).map(Number) as [number, number, number];
  const at = (a: number, b: number, c: number): boolean => major > a || (major === a && (minor > b || (minor === b && patch >= c)));
  return /mariadb/i.test(version) ? at(10, 2, 4) : at(5, 7, 3);
}

/** Run a callback-style mysql2 command bounded by `signal`: when it aborts, the connection is cut (the command is in flight). */
function bounded(connection: PromiseConnection, signal: AbortSignal, run: (done: (error: Error | null) => void) => void): Promise<void> {
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      hardClose(connection);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    run((error) => {
      signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve();
    });
  });
}

/** mysql2's `query` in callback form, for the adapter's own statements. */
const statement = (base: BaseConnection, sql: string) => (done: (error: Error | null) => void): void => base.query(sql, done);

/**
 * The mysql2 adapter behind `createMysqlPool`: `options` are final (see `resolveMysqlConfig`);
 * `policy` is the release policy and the per-query bound.
 */
export function mysqlAdapter(
  options: ConnectionOptions,
  policy: MysqlReleasePolicy,
): Adapter<PromiseConnection> {
  const rollbackDirty = policy.dirtyRelease === 'rollback' || policy.resetOnRelease !== 'none';
  const timeoutMs = policy.queryTimeoutMs;
  /** The pool's live connections, and which are idle (from ref()): where a kill goes when the user is at its connection limit. */
  const live = new Set<PromiseConnection>();
  const idle = new WeakSet<PromiseConnection>();
  const othersThan = (connection: PromiseConnection) => (): PromiseConnection[] => {
    const others = [...live].filter((other) => other !== connection);
    return [...others.filter((other) => idle.has(other) && !busy(other)), ...others.filter((other) => !idle.has(other) || busy(other))];
  };
  /** Stop `connection`'s statement on the server; one that cannot be stopped is reported, since it keeps its locks until it ends. */
  const stopStatement = async (connection: PromiseConnection, threadId: number): Promise<void> => {
    const outcome = await killQuery(options, threadId, othersThan(connection));
    if (!outcome.sent) {
      const cause = outcome.error;
      policy.warn?.(
        new PoolError(
          `KILL QUERY ${threadId} could not be sent (${cause instanceof Error ? cause.message : String(cause)}): the statement goes on running on the server, holding its locks, until it ends`,
          'POOL_KILL_FAILED',
          { cause },
        ),
      );
    }
  };

  /** Bound every statement: on expiry the server-side statement is killed and the connection cut. */
  const boundStatements = (connection: PromiseConnection, base: BaseConnection): void => {
    if (timeoutMs === undefined) return;
    const addCommand = (base as unknown as { addCommand: (command: TimedCommand) => unknown }).addCommand;
    (base as unknown as { addCommand: (command: TimedCommand) => unknown }).addCommand = function (this: BaseConnection, command: TimedCommand): unknown {
      // Armed before the command is added: one that can finish at once (a Prepare answered from
      // mysql2's statement cache) ends inside addCommand, and its 'end' must not be missed.
      if (TIMED_COMMANDS.has(command._commandName ?? command.constructor.name)) {
        const timer = setTimeout(() => {
          if (dead(connection)) return;
          const threadId = base.threadId;
          if (threadId !== null) void stopStatement(connection, threadId);
          hardClose(connection, new QueryTimeoutError(timeoutMs, command.sql ?? command.query));
        }, timeoutMs);
        timer.unref();
        command.once('end', () => clearTimeout(timer));
      }
      return addCommand.call(this, command);
    };
  };

  const adapter: Adapter<PromiseConnection> = {
    async create({ signal, evict }) {
      signal.throwIfAborted();
      const base = mysql.createConnection(options) as unknown as BaseConnection;
      const connection = base.promise();
      const connectionState = track(connection, base);
      // For the connection's whole life: a server that goes away emits 'error' on an idle
      // connection, which without a listener would crash the process.
      base.on('error', (error: unknown) => {
        connectionState.broken = true;
        connectionState.lastError ??= error;
        evict();
      });
      base.stream.once('close', () => {
        connectionState.broken = true;
        evict();
      });
      const onAbort = (): void => hardClose(connection);
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await new Promise<void>((resolve, reject) => {
          (base as unknown as { connect(cb: (error: Error | null) => void): void }).connect((error) => (error ? reject(error) : resolve()));
        });
      } catch (error) {
        hardClose(connection);
        throw signal.aborted ? signal.reason : error;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
      if (signal.aborted) {
        hardClose(connection);
        throw signal.reason;
      }
      connectionState.status = base._handshakePacket?.statusFlags ?? connectionState.status;
      boundStatements(connection, base);
      recordListeners(connection);
      live.add(connection);
      return connection;
    },

    async destroy(connection, signal) {
      const base = baseOf(connection);
      idle.delete(connection);
      live.delete(connection);
      // A statement still running holds its locks until it ends: stop it on the server, then cut.
      if (!dead(connection) && busy(connection)) {
        const threadId = base.threadId;
        hardClose(connection);
        if (threadId !== null) await stopStatement(connection, threadId);
        return;
      }
      if (dead(connection)) {
        hardClose(connection);
        return;
      }
      state(connection).broken = true;
      // COM_QUIT, then the server closes; past destroyTimeoutMs the socket is cut.
      const onAbort = (): void => hardClose(connection);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await new Promise<void>((resolve) => {
          base.stream.once('close', () => resolve());
          base.end(() => base.stream.destroy());
        });
      } catch {
        hardClose(connection);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },

    isBroken(connection) {
      restoreListeners(connection);
      if (dead(connection) || busy(connection)) return true;
      return !rollbackDirty && (inTransaction(connection) || autocommitOff(connection));
    },

    async ping(connection, signal) {
      const base = baseOf(connection);
      await bounded(connection, signal, (done) => base.ping(done));
    },

    isRetryable: isRetryableConnectError,

    isFatal(error, connection) {
      return dead(connection) || isConnectionFatal(error);
    },

    ref(connection, active) {
      restoreListeners(connection);
      refSocket(connection, active);
      if (active) idle.delete(connection);
      else idle.add(connection);
    },

    probe(signal) {
      // A TCP connect to the server (or its socket): refused at once while it is down.
      return new Promise<void>((resolve, reject) => {
        const socket = options.socketPath !== undefined ? tcpConnect(options.socketPath) : tcpConnect(options.port ?? 3306, options.host ?? 'localhost');
        const finish = (error?: unknown): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          socket.destroy();
          if (error === undefined) resolve();
          else reject(error);
        };
        const onAbort = (): void => finish(signal.reason);
        const timer = setTimeout(() => finish(new Error('probe: no answer within 5000 ms')), 5000);
        signal.addEventListener('abort', onAbort, { once: true });
        socket.once('connect', () => finish());
        socket.once('error', (error) => finish(error));
      });
    },
  };

  if (rollbackDirty) {
    adapter.reset = async (connection, signal) => {
      restoreListeners(connection);
      const base = baseOf(connection);
      if (policy.resetOnRelease === 'reset') {
        // COM_RESET_CONNECTION answers OK even where mysql2 misreads an error, so old servers take COM_CHANGE_USER.
        if (supportsResetConnection(serverVersion(connection))) await bounded(connection, signal, (done) => base.reset(done));
        else await bounded(connection, signal, (done) => base.changeUser({}, done));
        sessionReset(connection);
        return;
      }
      const autocommitWasOff = autocommitOff(connection);
      if (inTransaction(connection) || autocommitWasOff) await bounded(connection, signal, statement(base, 'ROLLBACK'));
      if (autocommitWasOff) await bounded(connection, signal, statement(base, 'SET autocommit = 1'));
    };
  }
  return adapter;
}
