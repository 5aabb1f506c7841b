// knex on lifeguard/pg: knex 3.3's `connectionPool` takes a native pg.Pool (its
// `wrapNativePool` checks out with pool.connect() and gives back with release(), destroying
// with release(true) a connection knex saw fail). knex then owns no pool: `knex.destroy()`
// leaves it alone, and the application ends it.
import knex, { type Knex } from 'knex';
import pg from 'pg';
import { Pool } from '../../src/adapters/pg/index.js';
import { usePostgres } from './harness.js';
import { ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

const db = usePostgres();

function handle(k: Knex | Knex.Transaction): OrmTransaction {
  return {
    async insert(name) {
      await k('account').insert({ name });
    },
    async raw(text) {
      return ((await k.raw(text)) as pg.QueryResult<Row>).rows;
    },
  };
}

ormScenarios(db, {
  name: 'knex',
  shutdownEndsPool: false,
  async open({ config, flavour }) {
    const pool = flavour === 'lifeguard' ? new Pool(config) : new pg.Pool(config as pg.PoolConfig);
    const orm = knex({
      client: 'pg',
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
