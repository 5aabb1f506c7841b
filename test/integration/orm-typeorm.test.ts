// TypeORM on lifeguard/pg. TypeORM builds its pool itself (`new driver.Pool(options)`), so
// lifeguard goes in through its `driver` option: pg with its Pool replaced, which is the
// default export of lifeguard/pg. Pool options, lifeguard's included, go in `extra`; the
// pool is `dataSource.driver.master`, and dataSource.destroy() ends it.
import pg from 'pg';
import { DataSource, EntitySchema, type EntityManager } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';
import lifeguardPg from '../../src/adapters/pg/index.js';
import { usePostgres } from './harness.js';
import { ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

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
