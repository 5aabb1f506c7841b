// lifeguard/mysql on a real MariaDB: query and execute, the pool's bounds on server sessions,
// ping after idle, close, and scripts that use the pool ending by themselves.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createMysqlPool, type MysqlPool, type MysqlPoolConfig } from '../../src/adapters/mysql/index.js';
import { AcquireTimeoutError } from '../../src/index.js';
import { rejectionOf, sleep, useMariaDb, waitFor, type Account } from './harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const db = useMariaDb();
const pools: MysqlPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

async function poolFor(label: string, options: Partial<MysqlPoolConfig> = {}): Promise<{ pool: MysqlPool; account: Account }> {
  const account = await db.user(label);
  const pool = createMysqlPool({ ...db.connection(account), ...options });
  pools.push(pool);
  return { pool, account };
}

describe('query and execute', () => {
  it('query escapes ? placeholders client-side; execute prepares; both answer mysql2 [rows, fields]', async () => {
    const { pool } = await poolFor('basics');
    const [rows, fields] = await pool.query<{ one: number; s: string }[] & import('mysql2').RowDataPacket[]>('SELECT 1 AS one, ? AS s', ["it's"]);
    expect(rows).toEqual([{ one: 1, s: "it's" }]);
    expect(fields.map((f) => f.name)).toEqual(['one', 's']);
    const [prepared] = await pool.execute<import('mysql2').RowDataPacket[]>('SELECT ? + 1 AS n', [41]);
    expect(prepared).toEqual([{ n: 42 }]);
    const [options] = await pool.query<import('mysql2').RowDataPacket[]>({ sql: 'SELECT ? AS a', values: [7], rowsAsArray: true });
    expect(options).toEqual([[7]]);
  });

  it('refuses what is not SQL, and a callback, with a clear error', async () => {
    const { pool } = await poolFor('misuse');
    await expect(pool.query(42 as unknown as string)).rejects.toThrow(/pool.query expects SQL text or a \{ sql, values \} object, got number/);
    await expect(pool.execute('SELECT 1', (() => {}) as unknown as unknown[])).rejects.toThrow(/takes no callback/);
    await expect(pool.query('SELEC 1')).rejects.toMatchObject({ errno: 1064, code: 'ER_PARSE_ERROR' });
    // A query error leaves the connection healthy: it is reused, not destroyed.
    expect(pool.stats().destroyed).toBe(0);
  });

  it('200 concurrent queries on max 4: never more than 4 server sessions; 0 after close', async () => {
    const { pool, account } = await poolFor('bounded', { max: 4 });
    const sampler = (async () => {
      let most = 0;
      for (let i = 0; i < 20; i++) {
        most = Math.max(most, await db.sessions(account.user));
        await sleep(10);
      }
      return most;
    })();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => pool.query<import('mysql2').RowDataPacket[]>('SELECT ? AS i, SLEEP(0.001) AS z', [i])));
    expect(results.map(([rows]) => rows[0]?.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(await sampler).toBeLessThanOrEqual(4);
    expect(pool.stats()).toMatchObject({ size: 4, acquired: 200, timedOut: 0 });
    await pool.close();
    await waitFor('the pool sessions to leave the server', async () => (await db.sessions(account.user)) === 0);
  });

  it('pings a connection idle longer than pingIfIdleMs, and replaces one the server killed while idle', async () => {
    const { pool, account } = await poolFor('idle', { max: 1, pingIfIdleMs: 0 });
    await pool.query('SELECT 1');
    const [first] = await db.sessionIds(account.user);
    await db.killConnection(first!);
    // The pool hears of the death (the socket closes) or finds it by the ping: either way the caller never sees it.
    const [rows] = await pool.query<import('mysql2').RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    expect(rows[0]?.id).not.toBe(first);
    expect(pool.stats().destroyed).toBe(1);
  });

  it('an acquire that cannot be served ends at its deadline with AcquireTimeoutError', async () => {
    const { pool } = await poolFor('deadline', { max: 1 });
    const held = await pool.acquire();
    const started = performance.now();
    const timeout = await rejectionOf(pool.withConnection(async () => {}, { timeoutMs: 200 }));
    expect(timeout).toBeInstanceOf(AcquireTimeoutError);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    await held.release();
  });
});

describe('scripts that use the pool', () => {
  const script = (body: string): { status: number | null; stdout: string; stderr: string; ms: number } => {
    const started = performance.now();
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', `import { createMysqlPool } from 'lifeguard/mysql';\n${body}`], {
      cwd: ROOT,
      env: { ...process.env, MYSQL_URL: db.url },
      encoding: 'utf8',
      timeout: 20_000,
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, ms: performance.now() - started };
  };

  it('a script that queries and never closes the pool exits 0 by itself (an idle pool holds no process open)', () => {
    const run = script("const pool = createMysqlPool(process.env.MYSQL_URL); const [rows] = await pool.query('SELECT 40 + 2 AS n'); console.log(rows[0].n);");
    expect(run, run.stderr).toMatchObject({ status: 0, stdout: '42\n' });
  });

  it('an unreachable server: the script fails at its deadline with AcquireTimeoutError (cause ECONNREFUSED) and no password printed', () => {
    const run = script(
      "const pool = createMysqlPool({ uri: 'mysql://app:Sup3rSecret@127.0.0.1:1/x', acquireTimeoutMs: 800 });" +
        "try { await pool.query('SELECT 1'); } catch (e) { console.log(e.name, e.cause?.code); process.exitCode = 1; } await pool.close();",
    );
    expect(run.status, run.stderr).toBe(1);
    expect(run.stdout).toBe('AcquireTimeoutError ECONNREFUSED\n');
    expect(run.stdout + run.stderr).not.toContain('Sup3rSecret');
  });
});
