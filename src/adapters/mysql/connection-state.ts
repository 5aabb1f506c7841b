/**
 * What lifeguard knows about each mysql2 connection: broken or not, a query in flight, and
 * the transaction state the server reported. MySQL has no ReadyForQuery status byte, but
 * every OK and EOF packet carries the server's status flags (SERVER_STATUS_IN_TRANS,
 * SERVER_STATUS_AUTOCOMMIT): a wrapper on the connection's packet handler reads them as
 * they pass, so knowing whether a released connection is inside a transaction costs no
 * round trip.
 */
import type { Socket } from 'node:net';
import type { Connection as PromiseConnection } from 'mysql2/promise';

/** Server status flags (include/mysql_com.h). */
const SERVER_STATUS_IN_TRANS = 0x0001;
const SERVER_STATUS_AUTOCOMMIT = 0x0002;
/** A deadlock rolls the whole transaction back (InnoDB); the ERR packet carries no status flags. */
const ER_LOCK_DEADLOCK = 1213;

/** The parts of mysql2's (untyped) base connection lifeguard reads. */
interface PacketLike {
  readonly buffer: Buffer;
  readonly offset: number;
  length(): number;
  isEOF(): boolean;
}
interface CommandLike {
  next?: unknown;
  readonly resultsetHeader?: unknown;
  readonly row?: unknown;
  onResult?: ((error: Error | null, ...rest: unknown[]) => void) | null;
}
export interface BaseConnection extends NodeJS.EventEmitter {
  readonly stream: Socket;
  threadId: number | null;
  _command: CommandLike | null;
  readonly _commands: { readonly length: number };
  _fatalError: unknown;
  _closing?: boolean;
  readonly _handshakePacket: { statusFlags?: number; serverVersion?: string } | null;
  handlePacket(packet: PacketLike | undefined): void;
  _handleFatalError(error: Error): void;
  reset(callback: (error: Error | null) => void): void;
  changeUser(options: object, callback: (error: Error | null) => void): void;
  ping(callback: (error: Error | null) => void): void;
  query(sql: string, callback: (error: Error | null) => void): void;
  destroy(): void;
  end(callback?: (error?: Error | null) => void): void;
  promise(): PromiseConnection;
}

export interface ConnectionState {
  /** Known unusable: the socket died, a timeout cut it, or the pool is closing it. */
  broken: boolean;
  /** The error the connection died of. */
  lastError?: unknown;
  /** The status flags of the last OK/EOF packet (or the handshake). */
  status: number;
  /** A deadlock (1213) rolled back the transaction since the last `transactionStart()`: its ERR packet. */
  rolledBackBy?: { errno: number; message: string } | undefined;
  /** Listeners present when the pool took the connection (a caller's are removed at release). */
  listeners?: Map<NodeJS.EventEmitter, Map<string | symbol, ((...args: unknown[]) => void)[]>>;
  /** A listener was added or removed since the snapshot. */
  listenersChanged?: boolean;
  /** restoreListeners is at work (its own changes do not count). */
  restoring?: boolean;
}

const states = new WeakMap<object, ConnectionState>();
const bases = new WeakMap<object, BaseConnection>();

export function baseOf(connection: PromiseConnection): BaseConnection {
  return bases.get(connection) ?? ((connection as unknown as { connection: BaseConnection }).connection);
}

export function state(connection: PromiseConnection): ConnectionState {
  let s = states.get(connection);
  if (s === undefined) {
    s = { broken: false, status: SERVER_STATUS_AUTOCOMMIT };
    states.set(connection, s);
  }
  return s;
}

/** A length-encoded integer's size in bytes (the first byte included). */
function lenencSize(first: number): number {
  if (first < 0xfb) return 1;
  if (first === 0xfc) return 3;
  if (first === 0xfd) return 4;
  return 9;
}

/**
 * Start reading status flags off `base`'s packets. Only packets whose kind is certain are
 * read: an OK where a result header is expected, an EOF where rows are (a row can start with
 * 0x00 or 0xfe too), and ERR packets for a deadlock's rollback.
 */
export function track(connection: PromiseConnection, base: BaseConnection): ConnectionState {
  bases.set(connection, base);
  const s = state(connection);
  s.status = base._handshakePacket?.statusFlags ?? SERVER_STATUS_AUTOCOMMIT;
  const handle = base.handlePacket;
  base.handlePacket = function (this: BaseConnection, packet: PacketLike | undefined): void {
    const command = this._command;
    if (packet !== undefined && command != null) {
      const at = packet.offset;
      const marker = packet.buffer[at];
      if (marker === 0x00 && command.next === command.resultsetHeader && command.resultsetHeader !== undefined) {
        // OK: 0x00, affected rows, last insert id (length-encoded), status flags.
        const afterRows = at + 1 + lenencSize(packet.buffer[at + 1] ?? 0);
        const statusAt = afterRows + lenencSize(packet.buffer[afterRows] ?? 0);
        if (statusAt + 2 <= at + packet.length()) s.status = packet.buffer.readUInt16LE(statusAt);
      } else if (marker === 0xfe && command.next === command.row && command.row !== undefined && packet.isEOF()) {
        s.status = packet.buffer.readUInt16LE(at + 3);
      } else if (marker === 0xff && packet.length() >= 3) {
        const errno = packet.buffer.readUInt16LE(at + 1);
        if (errno === ER_LOCK_DEADLOCK && (s.status & SERVER_STATUS_IN_TRANS) !== 0) {
          s.status &= ~SERVER_STATUS_IN_TRANS;
          s.rolledBackBy = { errno, message: 'Deadlock found when trying to get lock' };
        }
      }
    }
    handle.call(this, packet);
  };
  return s;
}

/** After a COM_RESET_CONNECTION or COM_CHANGE_USER: a fresh session, autocommit on. */
export function sessionReset(connection: PromiseConnection): void {
  state(connection).status = SERVER_STATUS_AUTOCOMMIT;
}

/** Inside a transaction (explicit, or implicit with autocommit off), by the server's last word. */
export function inTransaction(connection: PromiseConnection): boolean {
  return (state(connection).status & SERVER_STATUS_IN_TRANS) !== 0;
}

/** Autocommit turned off by the caller (`SET autocommit = 0`): every statement opens a transaction. */
export function autocommitOff(connection: PromiseConnection): boolean {
  return (state(connection).status & SERVER_STATUS_AUTOCOMMIT) === 0;
}

/** A command is running or queued: the connection is mid-query. */
export function busy(connection: PromiseConnection): boolean {
  const base = baseOf(connection);
  return base._command != null || base._commands.length > 0;
}

/** mysql2's own flags, and lifeguard's. */
export function dead(connection: PromiseConnection): boolean {
  const base = baseOf(connection);
  return state(connection).broken || base._fatalError != null || base._closing === true || base.stream.destroyed;
}

/** Cut the socket: every pending command fails, mysql2 marks the connection closed. */
export function hardClose(connection: PromiseConnection, error?: Error): void {
  const base = baseOf(connection);
  state(connection).broken = true;
  if (error !== undefined && base._fatalError == null) {
    try {
      base._handleFatalError(error);
    } catch {
      // Already closed: the socket is cut below anyway.
    }
  }
  base.stream.destroy();
}

/** Let an idle connection's socket not hold the process open. */
export function refSocket(connection: PromiseConnection, active: boolean): void {
  const stream = baseOf(connection).stream;
  if (active) stream.ref();
  else stream.unref();
}

type Listener = (...args: unknown[]) => void;

/**
 * Snapshot the listeners on the connection (and its base) as the pool's own, and watch for
 * changes, so that a borrow or return where nobody touched them costs one flag check.
 */
export function recordListeners(connection: PromiseConnection): void {
  const s = state(connection);
  const emitters = [connection as unknown as NodeJS.EventEmitter, baseOf(connection)];
  if (s.listeners === undefined) {
    const onChange = (): void => {
      if (!s.restoring) s.listenersChanged = true;
    };
    for (const emitter of emitters) {
      emitter.on('newListener', onChange);
      emitter.on('removeListener', onChange);
    }
  }
  s.listeners = new Map();
  for (const emitter of emitters) {
    const events = new Map<string | symbol, Listener[]>();
    for (const name of emitter.eventNames()) events.set(name, emitter.rawListeners(name) as Listener[]);
    s.listeners.set(emitter, events);
  }
  s.listenersChanged = false;
}

/**
 * Back to the pool's own listeners: remove every listener a caller added (it would hear the
 * next caller's events), and put back any of the pool's own a caller removed (its 'error'
 * listener keeps a connection that dies while idle from crashing the process).
 */
export function restoreListeners(connection: PromiseConnection): void {
  const s = state(connection);
  const recorded = s.listeners;
  if (!s.listenersChanged || recorded === undefined) return;
  s.restoring = true;
  try {
    for (const [emitter, own] of recorded) {
      for (const name of emitter.eventNames()) {
        const kept = own.get(name);
        for (const listener of emitter.rawListeners(name) as Listener[]) {
          if (kept === undefined || !kept.includes(listener)) emitter.removeListener(name, listener);
        }
      }
      for (const [name, listeners] of own) {
        const now = emitter.rawListeners(name);
        for (const listener of listeners) if (!now.includes(listener)) emitter.on(name, listener);
      }
    }
  } finally {
    s.restoring = false;
    s.listenersChanged = false;
  }
}

/** The server's version string from the handshake (e.g. `10.11.6-MariaDB-0+deb12u1`). */
export function serverVersion(connection: PromiseConnection): string {
  return baseOf(connection)._handshakePacket?.serverVersion ?? '';
}
