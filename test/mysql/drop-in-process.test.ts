// Scripts written for mysql2's pool, run the way users run them (a fresh node on the built
// package, test/support/child-process.ts) against a real MariaDB: the process exits after
// end(), and also when the pool is idle and never ended (mysql2's own pool keeps such a
// process alive until its idle connections close, or forever with the default maxIdle).
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { describeChild, runNode } from '../support/child-process.js';
import { useMariaDb, waitFor } from './harness.js';

const db = useMariaDb();
const LIFEGUARD_MYSQL2 = new URL('../../dist/adapters/mysql2/index.js', import.meta.url).href;

function run(script: string, env: Record<string, string> = {}) {
  return runNode(`const mysql = (await import(process.env.LIFEGUARD_MYSQL2)).default;\n${script}`, {
    env: { LIFEGUARD_MYSQL2, DB_URL: db.url, ...env },
    timeoutMs: 15_000,
  });
}

describe('a mysql2 script on lifeguard/mysql2', () => {
  it('exits 0 after end(), with no session of its pool left on the server', async () => {
    const account = await db.user('proc_end');
    const result = run(
      `
      const pool = mysql.createPool({ uri: process.env.DB_URL, user: process.env.DB_USER, password: process.env.DB_PASSWORD, connectionLimit: 4 });
      const results = await Promise.all([1, 2, 3].map((n) => pool.query('SELECT SLEEP(0.05), ? AS n', [n])));
      const connection = await pool.getConnection();
      await connection.query('SELECT 1');
      connection.release();
      await pool.end();
      console.log('DONE', results.map(([rows]) => rows[0].n).join(','));
    `,
      { DB_USER: account.user, DB_PASSWORD: account.password },
    );
    expect(result.status, describeChild(result)).toBe(0);
    expect(result.stdout).toContain('DONE 1,2,3');
    await waitFor('no session of the pool left on the server', async () => (await db.sessions(account.user)) === 0, { timeoutMs: 3000 });
  });

  it('that leaves its pool idle and never ends it exits 0 by itself (mysql2 closes idle connections after 60 s)', () => {
    const result = run(`
      const pool = mysql.createPool(process.env.DB_URL);
      const [rows] = await pool.query('SELECT 41 + 1 AS answer');
      const connection = await pool.getConnection();
      connection.release();
      await new Promise((resolve, reject) => pool.pool.query('SELECT 1 AS one', (error) => (error ? reject(error) : resolve())));
      console.log('ANSWER', rows[0].answer, pool.stats().size);
    `);
    expect(result.status, describeChild(result)).toBe(0);
    expect(result.stdout).toMatch(/ANSWER 42 1\b/);
    // Well before the pool's idle timeout or keepalive could have ended it.
    expect(result.ms).toBeLessThan(8000);
  });

  it("the same script on mysql2's own pool is still running seconds later (its idle connection holds the process)", () => {
    const result = runNode(
      `
      const mysql = (await import('mysql2/promise')).default;
      const pool = mysql.createPool(process.env.DB_URL);
      await pool.query('SELECT 1');
      console.log('QUERIED');
    `,
      { env: { DB_URL: db.url }, timeoutMs: 3000 },
    );
    expect(result.stdout).toContain('QUERIED');
    expect(result.signal, describeChild(result)).toBe('SIGKILL');
  });

  it('a query against an unreachable server ends non-zero with the pool error at its deadline, the password not shown', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const result = run(`
      const pool = mysql.createPool({ host: '127.0.0.1', port: ${port}, user: 'app', password: 'pw-not-shown', acquireTimeoutMs: 1500 });
      await pool.query('SELECT 1');
      console.log('UNREACHABLE');
    `);
    expect(result.status, describeChild(result)).toBe(1);
    expect(result.stdout).not.toContain('UNREACHABLE');
    expect(result.stderr).toContain('AcquireTimeoutError');
    expect(result.stderr).toContain('ECONNREFUSED');
    expect(result.stderr).not.toContain('pw-not-shown');
    expect(result.ms).toBeGreaterThanOrEqual(1500);
  });
});
