/**
 * How a MySQL/MariaDB or socket error affects the pool: may a failed connect be retried,
 * is the connection dead, may a transaction be re-run. By the server's error number
 * (`errno`) first, then mysql2's `code` for client-side and socket errors.
 */

const RETRYABLE_SOCKET_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'EHOSTDOWN', 'ENETDOWN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
]);

/**
 * Server errors at connect that the same attempt may not meet again: too many connections
 * (1040 ER_CON_COUNT_ERROR, 1203 ER_TOO_MANY_USER_CONNECTIONS, 1226 ER_USER_LIMIT_REACHED),
 * the server shutting down or starting (1053 ER_SERVER_SHUTDOWN, 1077 ER_NORMAL_SHUTDOWN,
 * 1079 ER_SHUTDOWN_COMPLETE), out of resources (1135 ER_CANT_CREATE_THREAD, 1041
 * ER_OUT_OF_RESOURCES), network trouble reported by the server (1152-1161), and a
 * connection killed while it logged in (1927 ER_CONNECTION_KILLED, MariaDB).
 */
const RETRYABLE_CONNECT_ERRNOS = new Set([1040, 1041, 1053, 1077, 1079, 1135, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161, 1203, 1226, 1927]);

/**
 * After these a session is gone or useless: the server shutting down (1053, 1077, 1079), the
 * connection killed (1927 MariaDB, 4031 ER_CLIENT_INTERACTION_TIMEOUT MySQL 8), and the
 * read-only errors a failover brings (1290 ER_OPTION_PREVENTS_STATEMENT: `--read-only`;
 * 1792 ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION; 1836 ER_READ_ONLY_MODE), on which mysql2's
 * own pool destroys the connection too: a connection to a demoted primary never writes again.
 */
const FATAL_ERRNOS = new Set([1053, 1077, 1079, 1927, 4031, 1290, 1792, 1836]);

/** 1213 ER_LOCK_DEADLOCK (the transaction was rolled back), 1205 ER_LOCK_WAIT_TIMEOUT. */
const TRANSACTION_RETRY_ERRNOS = new Set([1213, 1205]);

/** mysql2's client-side errors that a retry reproduces (configuration, TLS, authentication plugins). */
const CONFIG_CODES = new Set([
  'HANDSHAKE_NO_SSL_SUPPORT', 'HANDSHAKE_SSL_ERROR', 'AUTH_SWITCH_PLUGIN_ERROR', 'ER_NOT_SUPPORTED_AUTH_MODE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_NOT_YET_VALID', 'ENOENT', 'EACCES', 'ENOTDIR',
]);

function errnoOf(error: unknown): number | undefined {
  const errno = (error as { errno?: unknown } | null | undefined)?.errno;
  // Socket errors carry a negative errno from libuv; server errors a positive number.
  return typeof errno === 'number' && errno > 0 ? errno : undefined;
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * May a failed connect be retried? Yes for refused/reset/timed-out sockets, a full server
 * (1040) and a server shutting down or starting; no for access denied (1045, 1044, 1698),
 * an unknown database (1049), a host not allowed (1130) or blocked (1129), and client-side
 * configuration errors: retrying sends the same login and meets the same answer. Unknown
 * errors are retried (the breaker bounds the cost).
 */
export function isRetryableConnectError(error: unknown): boolean {
  const errno = errnoOf(error);
  if (errno !== undefined && errno >= 1000) return RETRYABLE_CONNECT_ERRNOS.has(errno);
  const code = codeOf(error);
  if (code !== undefined && RETRYABLE_SOCKET_CODES.has(code)) return true;
  if (code !== undefined && CONFIG_CODES.has(code)) return false;
  if (error instanceof TypeError || error instanceof RangeError) return false;
  return true;
}

/** Does this error mean the connection it came from is dead (or, after a failover, useless)? */
export function isConnectionFatal(error: unknown): boolean {
  if ((error as { fatal?: unknown } | null | undefined)?.fatal === true) return true;
  const errno = errnoOf(error);
  if (errno !== undefined && FATAL_ERRNOS.has(errno)) return true;
  const code = codeOf(error);
  return code !== undefined && (RETRYABLE_SOCKET_CODES.has(code) || code === 'POOL_QUERY_TIMEOUT');
}

/** May `withTransaction` re-run the whole transaction after this error (deadlock, lock wait timeout)? */
export function isTransactionRetryable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e != null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const errno = errnoOf(e);
    if (errno !== undefined && TRANSACTION_RETRY_ERRNOS.has(errno)) return true;
  }
  return false;
}
