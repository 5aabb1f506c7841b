// Kysely on lifeguard/pg: `new PostgresDialect({ pool })` with lifeguard's Pool, as with pg.Pool.
import { Kysely, PostgresDialect, sql, type Generated, type Transaction } from 'kysely';
import pg from 'pg';
import { Pool } from '../../src/adapters/pg/index.js';
import { usePostgres } from './harness.js';
import { ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

interface Database {
  account: { id: Generated<number>; name: string };
}

const db = usePostgres();

function handle(k: Kysely<Database> | Transaction<Database>): OrmTransaction {
  return {
    async insert(name) {
      await k.insertInto('account').values({ name }).execute();
    },
    async raw(text) {
      return (await sql.raw<Row>(text).execute(k)).rows;
    },
  };
}

ormScenarios(db, {
  name: 'kysely',
  shutdownEndsPool: true,
  async open({ config, flavour }) {
    const pool = flavour === 'lifeguard' ? new Pool(config) : new pg.Pool(config as pg.PoolConfig);
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return {
      pool,
      ...handle(kysely),
      async names() {
        return (await kysely.selectFrom('account').select('name').orderBy('id').execute()).map((r) => r.name);
      },
      transaction: (fn) => kysely.transaction().execute((trx) => fn(handle(trx))),
      // Kysely's destroy() ends the pool it was given.
      close: () => kysely.destroy(),
    };
  },
});
