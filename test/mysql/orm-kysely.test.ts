// Kysely on lifeguard/mysql2: `new MysqlDialect({ pool: pool.pool })`, the callback-style pool
// Kysely drives (getConnection(cb), connection.query(sql, params, cb), release(), end(cb)).
import { Kysely, MysqlDialect, sql, type Generated, type Transaction } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createPool } from '../../src/adapters/mysql2/index.js';
import { useMariaDb } from './harness.js';
import { makePool, ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

interface Database {
  account: { id: Generated<number>; name: string };
}

const db = useMariaDb();

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
  async open(config, flavour) {
    const pool = makePool(config, flavour);
    const kysely = new Kysely<Database>({ dialect: new MysqlDialect({ pool: pool.pool }) });
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

describe('Kysely and lifeguard/mysql2: streaming', () => {
  it('stream() reads rows on a leased connection and gives it back when it ends or is abandoned', async () => {
    const pool = createPool({ ...db.connection(), connectionLimit: 1 });
    const kysely = new Kysely<{ seq: { n: number } }>({ dialect: new MysqlDialect({ pool: pool.pool }) });
    try {
      const query = () => kysely.selectFrom(sql<{ n: number }>`(SELECT seq AS n FROM seq_1_to_500)`.as('t')).select('t.n');
      const streamed: number[] = [];
      for await (const row of query().stream()) streamed.push(row.n);
      expect(streamed).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
      // Leaving the loop early releases the connection (one connection: the next query needs it).
      for await (const row of query().stream()) {
        if (row.n === 3) break;
      }
      expect(await sql<{ one: number }>`SELECT 1 AS one`.execute(kysely).then((r) => r.rows)).toEqual([{ one: 1 }]);
      expect(pool.stats().leased).toBe(0);
    } finally {
      await kysely.destroy();
    }
  });
});
