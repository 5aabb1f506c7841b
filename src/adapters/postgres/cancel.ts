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
 * Where and as whom `clientConfig` connects, as pg resolves it (explicit > URL > `PG*` env >
 * defaults): read from a client that is constructed but never connected (no I/O).
 */
export function resolvedTarget(clientConfig: pg.ClientConfig): { address: ServerAddress | undefined; identity: ProbeIdentity } {
  const client = internals(new pg.Client(clientConfig)) as ReturnType<typeof internals> & { user?: string; database?: string };
  return {
    address: serverAddress(client.host, client.port),
    identity: { user: client.user ?? '', database: client.database ?? client.user ?? '' },
  };
}

function connectTo(address: ServerAddress, onConnect: () => void): net.Socket {
  return 'path' in address ? net.connect({ path: address.path }, onConnect) : net.connect(address.port, address.host, onConnect);
}

/**
 * Ask the server to cancel what `client` is running (a CancelRequest on a new connection,
 * over TCP or the Unix socket alike); best effort, bounded by 1 s: settles when the server
 * has closed the cancel connection, which it does once the cancel is handed on. Without
 * `force`, only when pg has a query in flight.
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
    // As libpq's PQcancel and pg do: write, then wait for the server to close. A FIN sent with
    // the message (socket.end) races PgBouncer 1.18's forwarding, which then crashes the whole
    // PgBouncer ("bad client state", fixed in 1.19.1) or drops the cancel.
    const socket = connectTo(address, () => socket.write(message));
    const timer = setTimeout(() => socket.destroy(), 1000).unref();
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Who the probe's StartupMessage names: the pool's own user and database. */
export interface ProbeIdentity {
  readonly user: string;
  readonly database: string;
}

function startupMessage(identity: ProbeIdentity): Buffer {
  const body = Buffer.from(`user\0${identity.user}\0database\0${identity.database}\0\0`, 'utf8');
  const header = Buffer.alloc(8);
  header.writeInt32BE(8 + body.length, 0);
  header.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([header, body]);
}

/** The SQLSTATE of an ErrorResponse body (its 'C' field). */
function sqlstate(body: Buffer): string | undefined {
  for (let i = 0; i < body.length && body[i] !== 0; ) {
    const end = body.indexOf(0, i + 1);
    if (end === -1) return undefined;
    if (body[i] === 0x43) return body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return undefined;
}

/**
 * Is the server ready for logins? Connects, sends a StartupMessage and reads the first
 * answer, then closes before authenticating: an authentication request (or any answer but
 * "not accepting connections") means ready; an ErrorResponse 57P03 (starting up, shutting
 * down, in recovery) means not yet. The server refuses that before authentication, and a
 * client that leaves at the password prompt is not logged, so a probe costs it a fork and
 * no login (unless `trust` lets it in at once). A TCP accept alone is not enough: a proxy
 * in front of a stopped server (docker's port forwarding, a load balancer) accepts, and a
 * frozen server accepts but never answers. Rejects on refusal, on a close or a 57P03 before
 * the answer, when `timeoutMs` passes, or with `signal.reason` as soon as `signal` aborts.
 */
export function probeServer(address: ServerAddress, identity: ProbeIdentity, signal: AbortSignal, timeoutMs: number): Promise<void> {
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
    let received = Buffer.alloc(0);
    const socket = connectTo(address, () => socket.write(startupMessage(identity)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received[0] !== 0x45) return finish(); // not an ErrorResponse: an authentication request, or the login went through
      if (received.length < 5 || received.length < 1 + received.readInt32BE(1)) return; // the rest of the ErrorResponse
      const code = sqlstate(received.subarray(5, 1 + received.readInt32BE(1)));
      if (code === '57P03') finish(Object.assign(new Error(`probe: ${where} is not accepting connections yet`), { code }));
      else finish(); // refused for another reason (pg_hba, an unknown role): the server is up
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(Object.assign(new Error(`probe: ${where} closed the connection before answering`), { code: 'ECONNRESET' })));
    const timer = setTimeout(() => finish(Object.assign(new Error(`probe: no answer from ${where} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    // The socket (bounded by the timer) may hold the process for a moment; the timer alone never does.
    timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
