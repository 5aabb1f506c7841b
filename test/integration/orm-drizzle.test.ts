// Drizzle on lifeguard/pg: `drizzle({ client: pool })` with lifeguard's Pool, as with pg.Pool.
// Drizzle takes a client whose class is `instanceof pg.Pool` or named "…Pool" as a pool (a
// transaction on one checked-out connection); anything else it treats as one connection.
import { sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { pgTable, serial, text } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { Pool } from '../../src/adapters/pg/index.js';
import { usePostgres } from './harness.js';
import { ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

const account = pgTable('account', { id: serial('id').primaryKey(), name: text('name').notNull() });

const db = usePostgres();

type Db = Pick<NodePgDatabase, 'insert' | 'execute'>;

function handle(d: Db): OrmTransaction {
  return {
    async insert(name) {
      await d.insert(account).values({ name });
    },
    async raw(text) {
      return (await d.execute<Row>(sql.raw(text))).rows;
    },
  };
}

ormScenarios(db, {
  name: 'drizzle',
  shutdownEndsPool: false,
  async open({ config, flavour }) {
    const pool = flavour === 'lifeguard' ? new Pool(config) : new pg.Pool(config as pg.PoolConfig);
    const orm = drizzle({ client: pool });
    return {
      pool,
      ...handle(orm),
      async names() {
        return (await orm.select({ name: account.name }).from(account).orderBy(account.id)).map((r) => r.name);
      },
      transaction: (fn) => orm.transaction((tx) => fn(handle(tx))),
      // Drizzle does not own the pool it was given: the application ends it.
      close: () => pool.end(),
    };
  },
});
