/**
 * How a PostgreSQL or socket error affects the pool (FAULTS.md §4): may a failed connect
 * be retried, and does an error mean the connection is dead? SQLSTATE classes first,
 * then Node errno codes, then the few messages `pg` raises without a code.
 */

const RETRYABLE_ERRNO = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'EHOSTDOWN', 'ENETDOWN',
]);

// TLS verification failures are configuration: retrying cannot fix them.
const TLS_CONFIG_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_NOT_YET_VALID',
]);

/** SQLSTATEs after which a session is gone: admin shutdown, crash, cannot connect now, idle timeouts. */
// 25006 (read-only transaction) on a connection that should write: the endpoint became a
// standby (a failover); the connection is useless for writing (FAULTS.md §4).
const FATAL_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57P05', '25P03', '25P04', '25006']);

const CONNECTION_LOST = [
  'Connection terminated',
  'Query read timeout',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'Connection terminated due to connection timeout',
];

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : '';
}

/**
 * SQLSTATE classes that, answered to a startup packet, mean the configuration is wrong; a
 * retry sends the same packet and gets the same answer. Seen from PostgreSQL 17:
 * 22xxx data exception (22023 `-c statement_timeout=abc`, `statement_timeout` above
 * 2^31-1 ms, `replication=bogus`); 42xxx (42704 unknown setting in `options`, 42601 a
 * malformed `options` such as `-c` or `--x`, 42501 no CONNECT privilege or a superuser-only
 * setting); 0Axxx feature not supported (e.g. an unsupported protocol version).
 */
const CONFIG_SQLSTATE_CLASSES = ['22', '42', '0A'];
/** 55P02: a postmaster-only setting in `options` (`-c shared_buffers=…`). */
const CONFIG_SQLSTATES = new Set(['3D000', '55P02']);
/**
 * 08P01 (protocol violation) is also what PgBouncer answers to transient trouble (no server
 * connection, `max_client_conn`), so only the startup-packet complaints are configuration:
 * PostgreSQL's "invalid startup packet layout" (a NUL in a parameter) and PgBouncer's
 * "unsupported startup parameter" (`options`, `statement_timeout` … behind a pooler).
 */
const CONFIG_PROTOCOL_VIOLATION = /startup packet|unsupported startup parameter|unsupported frontend protocol/i;
/** Client-side errors at connect that a retry reproduces: a password function's bad result, pg's own config checks. */
const CONFIG_MESSAGES = [
  'does not support SSL',
  'self-signed certificate',
  'Password must be a string',
  'client password must be a string',
  'Invalid sslnegotiation value',
  'requires SSL to be enabled',
];

/**
 * May a failed connect be retried? No for authentication (28xxx), unknown database
 * (3D000), a startup parameter the server refuses (22xxx, 42xxx, 0Axxx, 55P02, 08P01 about
 * the startup packet), unknown host (ENOTFOUND) and TLS configuration; yes for the other
 * connection-class errors (08xxx), shutdown/starting up (57P0x), a database not accepting
 * connections (55000), too many connections (53300), socket errors and timeouts.
 */
export function isRetryableConnectError(error: unknown): boolean {
  const code = codeOf(error);
  const message = messageOf(error);
  if (code !== undefined) {
    if (code.startsWith('28') || CONFIG_SQLSTATES.has(code) || code === 'ENOTFOUND') return false;
    if (CONFIG_SQLSTATE_CLASSES.some((prefix) => code.startsWith(prefix))) return false;
    if (code === '08P01' && CONFIG_PROTOCOL_VIOLATION.test(message)) return false;
    if (TLS_CONFIG_CODES.has(code)) return false;
  }
  if (CONFIG_MESSAGES.some((fragment) => message.includes(fragment))) return false;
  return true;
}

/**
 * Does this error mean the connection is dead and must not be reused? Yes for
 * connection-class errors, admin shutdown, socket errors and a client-side query
 * timeout (the stuck query would block the next borrower); no for a server-side
 * statement timeout or cancel (57014), or any ordinary SQL error.
 */
export function isConnectionFatal(error: unknown): boolean {
  const code = codeOf(error);
  if (code !== undefined) {
    if (code === '57014') return false;
    if (code.startsWith('08') || FATAL_SQLSTATES.has(code) || RETRYABLE_ERRNO.has(code)) return true;
  }
  const message = messageOf(error);
  return CONNECTION_LOST.some((fragment) => message.includes(fragment));
}

/**
 * Serialization failure (40001) or deadlock (40P01): the whole transaction may be re-run.
 * Also a transaction rolled back at COMMIT (`POOL_TX_ROLLED_BACK`) because of one: the
 * callback caught the 40001, but the server had aborted the transaction all the same.
 */
export function isTransactionRetryable(error: unknown): boolean {
  const code = codeOf(error);
  if (code === 'POOL_TX_ROLLED_BACK') return isTransactionRetryable((error as { cause?: unknown }).cause);
  return code === '40001' || code === '40P01';
}
