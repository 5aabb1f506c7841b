// Drizzle on lifeguard/mysql2: `drizzle(pool)` from drizzle-orm/mysql2 with lifeguard's
// promise pool, as with mysql2's createPool (Drizzle takes a promise pool as it is).
import { asc, sql } from 'drizzle-orm';
import { int, mysqlTable, varchar } from 'drizzle-orm/mysql-core';
import { drizzle, type MySql2Database } from 'drizzle-orm/mysql2';
import { describe, expect, it } from 'vitest';
import { createPool } from '../../src/adapters/mysql2/index.js';
import { useMariaDb } from './harness.js';
import { makePool, ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

const account = mysqlTable('account', {
  id: int('id').primaryKey().autoincrement(),
  name: varchar('name', { length: 100 }).notNull(),
});

const db = useMariaDb();

type Db = MySql2Database<Record<string, never>>;
type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

function handle(d: Db | Tx): OrmTransaction {
  return {
    async insert(name) {
      await d.insert(account).values({ name });
    },
    async raw(text) {
      const [rows] = (await d.execute(sql.raw(text))) as unknown as [Row[]];
      return rows;
    },
  };
}

ormScenarios(db, {
  name: 'drizzle',
  shutdownEndsPool: false,
  async open(config, flavour) {
    const pool = makePool(config, flavour);
    const orm = drizzle(pool);
    return {
      pool,
      ...handle(orm),
      async names() {
        return (await orm.select({ name: account.name }).from(account).orderBy(asc(account.id))).map((r) => r.name);
      },
      transaction: (fn) => orm.transaction((tx) => fn(handle(tx))),
      // Drizzle has no shutdown of its own: the application ends the pool.
      close: () => pool.end(),
    };
  },
});

describe('Drizzle and lifeguard/mysql2: iterator', () => {
  it('iterator() streams rows on a leased connection and gives it back (through the connection end() Drizzle calls)', async () => {
    const pool = createPool({ ...db.connection(), connectionLimit: 1 });
    const orm = drizzle(pool);
    try {
      await orm.execute(sql`CREATE TABLE IF NOT EXISTS account (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL)`);
      await orm.insert(account).values([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
      const names: string[] = [];
      for await (const row of orm.select({ name: account.name }).from(account).orderBy(asc(account.id)).iterator()) names.push(row.name);
      expect(names.slice(-3)).toEqual(['a', 'b', 'c']);
      expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 0 });
      // The same connection serves the next query: end() released it, it did not close it.
      await expect(orm.execute(sql`SELECT 1`)).resolves.toBeDefined();
      expect(pool.stats().created).toBe(1);
    } finally {
      await pool.end();
    }
  });
});
