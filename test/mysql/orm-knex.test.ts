// knex on lifeguard/mysql2: knex 3.3's `connectionPool` takes a native mysql2 pool (its
// mysql2 dialect's wrapNativePool uses the promise pool's `.pool`: getConnection(cb) to check
// out, release() to give back, destroy() for a connection knex saw fail). knex then owns no
// pool: `knex.destroy()` leaves it alone, and the application ends it.
import knex, { type Knex } from 'knex';
import { useMariaDb } from './harness.js';
import { makePool, ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

const db = useMariaDb();

function handle(k: Knex | Knex.Transaction): OrmTransaction {
  return {
    async insert(name) {
      await k('account').insert({ name });
    },
    async raw(text) {
      const [rows] = (await k.raw(text)) as [Row[]];
      return rows;
    },
  };
}

ormScenarios(db, {
  name: 'knex',
  shutdownEndsPool: false,
  async open(config, flavour) {
    const pool = makePool(config, flavour);
    const orm = knex({
      client: 'mysql2',
      connectionPool: pool,
      // knex logs every failed acquire as a warning; the scenarios make them on purpose.
      log: { warn() {} },
    });
    return {
      pool,
      ...handle(orm),
      async names() {
        return (await orm('account').select<{ name: string }[]>('name').orderBy('id')).map((r) => r.name);
      },
      transaction: (fn) => orm.transaction((trx) => fn(handle(trx))),
      async close() {
        await orm.destroy();
        await pool.end();
      },
    };
  },
});
