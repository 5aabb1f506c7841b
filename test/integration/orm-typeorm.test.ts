// TypeORM on lifeguard/pg. TypeORM builds its pool itself (`new driver.Pool(options)`), so
// lifeguard goes in through its `driver` option: pg with its Pool replaced, which is the
// default export of lifeguard/pg. Pool options, lifeguard's included, go in `extra`; the
// pool is `dataSource.driver.master`, and dataSource.destroy() ends it.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { DataSource, EntitySchema, type EntityManager } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';
import lifeguardPg, { type Pool } from '../../src/adapters/pg/index.js';
import { rejectionOf, usePostgres, waitFor } from './harness.js';
import { hasCode, ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

interface Account {
  id: number;
  name: string;
}

const AccountEntity = new EntitySchema<Account>({
  name: 'Account',
  tableName: 'account',
  columns: { id: { type: Number, primary: true, generated: true }, name: { type: String } },
});

const db = usePostgres();

function handle(manager: EntityManager): OrmTransaction {
  return {
    async insert(name) {
      await manager.insert(AccountEntity, { name });
    },
    async raw(text) {
      return (await manager.query(text)) as Row[];
    },
  };
}

ormScenarios(db, {
  name: 'typeorm',
  shutdownEndsPool: true,
  async open({ config, flavour }) {
    const dataSource = new DataSource({
      type: 'postgres',
      driver: flavour === 'lifeguard' ? lifeguardPg : pg,
      // Everything for the pool (connection fields, max, connectionTimeoutMillis, queryTimeoutMs, …).
      extra: config,
      entities: [AccountEntity],
    });
    await dataSource.initialize();
    const pool = (dataSource.driver as PostgresDriver).master as pg.Pool;
    return {
      pool,
      ...handle(dataSource.manager),
      async names() {
        return (await dataSource.getRepository(AccountEntity).find({ order: { id: 'ASC' } })).map((r) => r.name);
      },
      transaction: (fn) => dataSource.transaction((manager) => fn(handle(manager))),
      close: () => dataSource.destroy(),
    };
  },
});

describe('TypeORM and lifeguard/pg: its own pool options', () => {
  it('url, applicationName, poolSize and connectTimeoutMS reach the lifeguard pool it builds', async () => {
    const app = db.appName('typeorm-options');
    const dataSource = new DataSource({
      type: 'postgres',
      driver: lifeguardPg,
      url: db.url,
      applicationName: app,
      poolSize: 2,
      // The checkout deadline: long enough for a first connect on a loaded CI machine (300 ms was not, once).
      connectTimeoutMS: 1500,
      entities: [AccountEntity],
    });
    await dataSource.initialize();
    try {
      const pool = (dataSource.driver as PostgresDriver).master as Pool;
      expect(pool.stats().max).toBe(2);
      expect((await dataSource.query('SHOW application_name'))[0].application_name).toBe(app);
      const held = [await pool.connect(), await pool.connect()];
      const started = performance.now();
      const error = await rejectionOf(dataSource.query('SELECT 1'));
      expect(hasCode(error, 'POOL_ACQUIRE_TIMEOUT')).toBe(true);
      expect(performance.now() - started).toBeLessThan(5000);
      for (const client of held) client.release();
    } finally {
      await dataSource.destroy();
    }
    await waitFor('no session of the pool left on the server', async () => (await db.sessions(app)) === 0, { timeoutMs: 3000 });
  });
});
