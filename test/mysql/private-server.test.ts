// test/support/mariadb.ts on its own (startMariaDb, the private mariadbd behind the `private`
// provider): its options, session counting by marker, a failed start that reports the server
// log and leaves nothing behind, and a teardown that removes the process and the directory.
// Runs when the private provider is in use (LIFEGUARD_TEST_MYSQL=private, or unset with
// mariadbd installed; where no provider is usable it fails like every MySQL file); skipped with
// the other providers, which do not use this module.
import { existsSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { startMariaDb } from '../support/mariadb.js';
import { rejectionOf, waitFor } from '../support/wait.js';
import { PROVIDER } from './providers.js';

describe.runIf(PROVIDER.name === 'private')('startMariaDb()', () => {
  it('applies the options, counts sessions by user and by marker, and tears down completely', async () => {
    const server = await startMariaDb({ maxConnections: 17, database: 'opts', settings: { wait_timeout: 123 } });
    const pid = server.pid!;
    const dir = server.dir;
    try {
      expect(server.version).toMatch(/MariaDB/);
      expect(await server.admin('SELECT @@max_connections AS m, @@wait_timeout AS w, DATABASE() AS d')).toEqual([{ m: 17, w: 123, d: 'opts' }]);
      await server.createUser('marked', 'pw-1', ['ALL ON opts.*']);
      const conn = await mysql.createConnection({ host: server.host, port: server.port, user: 'marked', password: 'pw-1', database: 'opts' });
      try {
        expect(await server.connectionsOf('marked')).toBe(1);
        expect(await server.connectionsOf({ db: 'opts' })).toBe(1);
        const marker = `lg-marker-${process.pid}`;
        const slow = conn.query(`SELECT SLEEP(5) /* ${marker} */`).catch((error: unknown) => error);
        await waitFor('the marked statement', async () => (await server.connectionsOf({ info: marker })) === 1);
        const [row] = await server.admin<{ id: number }[]>('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', ['marked']);
        await server.killQuery(row!.id);
        expect((await slow) as { code?: string }).toMatchObject({ code: 'ER_QUERY_INTERRUPTED' });
        expect(await server.connectionsOf({ info: marker })).toBe(0);
      } finally {
        conn.destroy();
      }
    } finally {
      await server.teardown();
    }
    await server.teardown(); // idempotent
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
  });

  it('a server that cannot start fails with its log tail and leaves no directory or process', async () => {
    const error = await rejectionOf(startMariaDb({ settings: { no_such_variable: 1 } }));
    expect(error.message).toMatch(/mariadbd exited during startup/);
    expect(error.message).toMatch(/server log \(last lines\)[\s\S]*unknown variable 'no-such-variable=1'/);
    const dir = error.message.match(/^MariaDB \((\S+)\)/)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    expect(error.message).not.toMatch(/IDENTIFIED BY/);
  });
});
