/**
 * Side connections to the server that are not sessions: the CancelRequest that stops a query
 * the pool let go of, and the reachability probe the core runs while creates back off. Both
 * go where pg itself connects: a TCP host and port, or a Unix socket (`host` starting with
 * '/' means the socket `${host}/.s.PGSQL.${port}`, as in libpq and pg).
 */
import net from 'node:net';
import pg from 'pg';
import { internals } from './client-state.js';

/** Where a client connects: `{ path }` for a Unix socket, else `{ host, port }`. */
export type ServerAddress = { readonly path: string } | { readonly host: string; readonly port: number };

export function serverAddress(host: string | undefined, port: number | undefined): ServerAddress | undefined {
  if (host === undefined || host === '') return undefined;
  const p = port ?? 5432;
  return host.startsWith('/') ? { path: `${host}/.s.PGSQL.${p}` } : { host, port: p };
}

/**
 * The address `clientConfig` resolves to, as pg resolves it (explicit > URL > `PG*` env >
 * defaults): read from a client that is constructed but never connected (no I/O).
 */
export function resolvedAddress(clientConfig: pg.ClientConfig): ServerAddress | undefined {
  const client = internals(new pg.Client(clientConfig));
  return serverAddress(client.host, client.port);
}

function connectTo(address: ServerAddress, onConnect: () => void): net.Socket {
  return 'path' in address ? net.connect({ path: address.path }, onConnect) : net.connect(address.port, address.host, onConnect);
}

/**
 * Ask the server to cancel what `client` is running (a CancelRequest on a new connection,
 * over TCP or the Unix socket alike); best effort, bounded by 1 s. Without `force`, only
 * when pg has a query in flight.
 */
export function cancelRunning(client: pg.Client, force = false): Promise<void> {
  const c = internals(client);
  if ((!force && c._activeQuery == null) || !c.processID || c.secretKey === undefined || c.secretKey === null) return Promise.resolve();
  const address = serverAddress(c.host, c.port);
  if (address === undefined) return Promise.resolve();
  const processID = c.processID;
  const secretKey = c.secretKey;
  return new Promise<void>((resolve) => {
    const message = Buffer.alloc(16);
    message.writeInt32BE(16, 0);
    message.writeInt32BE(80877102, 4);
    message.writeInt32BE(processID, 8);
    message.writeInt32BE(secretKey | 0, 12);
    const socket = connectTo(address, () => socket.end(message));
    const timer = setTimeout(() => socket.destroy(), 1000).unref();
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** An SSLRequest: the one message every PostgreSQL (and PgBouncer) answers before any login. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * Is a PostgreSQL server answering? Connects, sends an SSLRequest and waits for its one-byte
 * answer ('S' or 'N'), then closes: no startup message, so no session and no login. A TCP
 * accept alone is not enough: a proxy in front of a stopped server (docker's port
 * forwarding, a load balancer) accepts and then closes, and a frozen server accepts but
 * never answers. Rejects on refusal, on a close before the answer, when `timeoutMs`
 * passes, or with `signal.reason` as soon as `signal` aborts.
 */
export function probeServer(address: ServerAddress, signal: AbortSignal, timeoutMs: number): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const where = 'path' in address ? address.path : `${address.host}:${address.port}`;
    const finish = (error?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error === undefined) resolve();
      else reject(error);
    };
    const onAbort = (): void => finish(signal.reason);
    const socket = connectTo(address, () => socket.write(SSL_REQUEST));
    socket.once('data', () => finish());
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(Object.assign(new Error(`probe: ${where} closed the connection before answering`), { code: 'ECONNRESET' })));
    const timer = setTimeout(() => finish(Object.assign(new Error(`probe: no answer from ${where} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    // The socket (bounded by the timer) may hold the process for a moment; the timer alone never does.
    timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
