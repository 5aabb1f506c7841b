/**
 * Stopping a statement on the server. Closing a MySQL connection does not stop the statement
 * it was running: the server notices the closed socket only when it next writes to it, so a
 * long UPDATE goes on holding its locks. `KILL QUERY <thread id>`, sent on a short-lived
 * second connection as the same user (a user may always kill its own threads), stops it now.
 */
import mysql, { type ConnectionOptions } from 'mysql2';

/** Bound on the whole kill: connect, login, KILL QUERY, quit. */
const KILL_TIMEOUT_MS = 2000;

/**
 * Send `KILL QUERY threadId` from a new connection. Resolves whether or not it worked: a
 * kill that cannot be sent (the server is gone) has nothing left to stop.
 */
export function killQuery(options: ConnectionOptions, threadId: number): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const side = mysql.createConnection({ ...options, connectTimeout: KILL_TIMEOUT_MS, multipleStatements: false });
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      side.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), KILL_TIMEOUT_MS);
    timer.unref();
    side.on('error', () => finish(false));
    side.query(`KILL QUERY ${Math.trunc(threadId)}`, (error) => finish(error == null));
  });
}
