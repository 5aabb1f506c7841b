/**
 * Stopping a statement on the server. Closing a MySQL connection does not stop the statement
 * it was running: the server notices the closed socket only when it next writes to it, so a
 * long UPDATE goes on holding its locks. `KILL QUERY <thread id>`, sent on a short-lived
 * second connection as the same user (a user may always kill its own threads), stops it now.
 * When the server refuses that connection because the user is at its connection limit (often
 * set to the pool's max), the kill goes over another connection of the same pool instead.
 */
import mysql, { type ConnectionOptions } from 'mysql2';
import type { Connection as PromiseConnection } from 'mysql2/promise';
import { baseOf, dead } from './connection-state.js';

/** Bound on the whole kill: connect, login, KILL QUERY, quit. */
const KILL_TIMEOUT_MS = 2000;
/** Too many connections (1040), for the user (1203 max_user_connections, 1226 MAX_USER_CONNECTIONS). */
const LIMIT_ERRNOS = new Set([1040, 1203, 1226]);

/** What became of a kill: sent (the thread may have finished already), or why not. */
export type KillOutcome = { readonly sent: true } | { readonly sent: false; readonly error: unknown };

const killSql = (threadId: number): string => `KILL QUERY ${Math.trunc(threadId)}`;

/** The server's answer to a KILL: 1094 (unknown thread) means the statement and its session ended before it arrived. */
const answered = (error: Error | null): KillOutcome =>
  error == null || (error as { errno?: number }).errno === 1094 ? { sent: true } : { sent: false, error };
const noAnswer = (): KillOutcome => ({ sent: false, error: new Error(`no answer within ${KILL_TIMEOUT_MS} ms`) });

/** Send `KILL QUERY threadId` from a new connection, bounded. */
function killFromNewConnection(options: ConnectionOptions, threadId: number): Promise<KillOutcome> {
  return new Promise((resolve) => {
    let done = false;
    const side = mysql.createConnection({ ...options, connectTimeout: KILL_TIMEOUT_MS, multipleStatements: false });
    const finish = (outcome: KillOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      side.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish(noAnswer()), KILL_TIMEOUT_MS);
    timer.unref();
    side.on('error', (error) => finish({ sent: false, error }));
    side.query(killSql(threadId), (error) => finish(answered(error)));
  });
}

/** Send `KILL QUERY threadId` on `via`, a live connection of the pool, bounded. */
function killOver(via: PromiseConnection, threadId: number): Promise<KillOutcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(noAnswer()), KILL_TIMEOUT_MS);
    timer.unref();
    baseOf(via).query(killSql(threadId), (error) => {
      clearTimeout(timer);
      resolve(answered(error));
    });
  });
}

/**
 * Stop `threadId`'s statement: from a new connection, or, when the user's connection limit
 * refuses one, over the first of `others` (the pool's other live connections, idle ones first).
 */
export async function killQuery(options: ConnectionOptions, threadId: number, others: () => readonly PromiseConnection[] = () => []): Promise<KillOutcome> {
  const outcome = await killFromNewConnection(options, threadId);
  if (outcome.sent || !LIMIT_ERRNOS.has((outcome.error as { errno?: number } | undefined)?.errno ?? 0)) return outcome;
  const via = others().find((connection) => !dead(connection));
  return via === undefined ? outcome : killOver(via, threadId);
}
