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
 * May a failed connect be retried? No for authentication (28xxx), unknown database
 * (3D000), unknown host (ENOTFOUND) and TLS configuration; yes for connection-class
 * errors (08xxx), shutdown/starting up (57P0x), too many connections (53300), socket
 * errors and timeouts.
 */
export function isRetryableConnectError(error: unknown): boolean {
  const code = codeOf(error);
  if (code !== undefined) {
    if (code.startsWith('28') || code === '3D000' || code === 'ENOTFOUND') return false;
    if (TLS_CONFIG_CODES.has(code)) return false;
  }
  const message = messageOf(error);
  if (message.includes('does not support SSL') || message.includes('self-signed certificate')) return false;
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

/** Serialization failure (40001) or deadlock (40P01): the whole transaction may be re-run. */
export function isTransactionRetryable(error: unknown): boolean {
  const code = codeOf(error);
  return code === '40001' || code === '40P01';
}
