// Kysely on lifeguard/pg: `new PostgresDialect({ pool })` with lifeguard's Pool, as with pg.Pool.
import { createRequire } from 'node:module';
import { Kysely, PostgresDialect, sql, type Generated, type PostgresCursorConstructor, type Transaction } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Pool } from '../../src/adapters/pg/index.js';
import { usePostgres } from './harness.js';
import { ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

interface Database {
  account: { id: Generated<number>; name: string };
}

// pg-cursor ships no types; Kysely only needs its constructor.
const Cursor = createRequire(import.meta.url)('pg-cursor') as PostgresCursorConstructor;

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

describe('Kysely and lifeguard/pg: streaming', () => {
  it('stream() runs a pg-cursor on a leased client and gives the client back when it ends or is abandoned', async () => {
    const pool = new Pool({ ...db.connection(), max: 1 });
    const kysely = new Kysely<{ n: { n: number } }>({ dialect: new PostgresDialect({ pool, cursor: Cursor }) });
    try {
      const streamed: number[] = [];
      for await (const row of kysely.selectFrom(sql<{ n: number }>`generate_series(1, 25)`.as('t')).select(sql<number>`t`.as('n')).stream(10)) {
        streamed.push(row.n);
      }
      expect(streamed).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      // Leaving the loop early closes the cursor and releases the connection (max 1: the next query needs it).
      for await (const row of kysely.selectFrom(sql<{ n: number }>`generate_series(1, 1000)`.as('t')).select(sql<number>`t`.as('n')).stream(10)) {
        if (row.n === 3) break;
      }
      expect((await sql<{ one: number }>`SELECT 1 AS one`.execute(kysely)).rows).toEqual([{ one: 1 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 0 });
    } finally {
      await kysely.destroy();
    }
  });
});
