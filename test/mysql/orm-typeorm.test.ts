// TypeORM on lifeguard/mysql2. TypeORM builds its pool itself (`driver.createPool(options)`,
// callback style), so lifeguard goes in through its `driver` option: `mysql2Callback`, mysql2
// with its createPool replaced. Pool options, lifeguard's included, go in `extra`; the pool is
// `dataSource.driver.pool` (its `.promise()` has lifeguard's API), and dataSource.destroy() ends it.
import mysql2 from 'mysql2';
import { DataSource, EntitySchema, type EntityManager } from 'typeorm';
import type { MysqlDriver } from 'typeorm/driver/mysql/MysqlDriver.js';
import { describe, expect, it } from 'vitest';
import { mysql2Callback, type LifeguardCallbackPool, type Pool } from '../../src/adapters/mysql2/index.js';
import { toPrometheusText } from '../../src/index.js';
import { useMariaDb } from './harness.js';
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

const db = useMariaDb();

function handle(manager: EntityManager): OrmTransaction {
  return {
    async insert(name) {
      await manager.insert(AccountEntity, { name });
    },
    async raw(text) {
      // TypeORM turns on bigNumberStrings: COUNT(*) and @@in_transaction come back as strings.
      const result: unknown = await manager.query(text);
      // A statement without rows (BEGIN, INSERT) resolves with mysql2's OK packet.
      if (!Array.isArray(result)) return [];
      return (result as Row[]).map((row) =>
        Object.fromEntries(Object.entries(row).map(([key, value]) => [key, typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value])),
      );
    },
  };
}

ormScenarios(db, {
  name: 'typeorm',
  shutdownEndsPool: true,
  async open(config, flavour) {
    const dataSource = new DataSource({
      type: 'mariadb',
      driver: flavour === 'lifeguard' ? mysql2Callback : mysql2,
      // Everything for the pool (connection fields, connectionLimit, acquireTimeoutMs, queryTimeoutMs, …).
      extra: config,
      entities: [AccountEntity],
    });
    await dataSource.initialize();
    const pool = (dataSource.driver as MysqlDriver).pool as mysql2.Pool;
    return {
      pool: pool.promise(),
      ...handle(dataSource.manager),
      async names() {
        return (await dataSource.getRepository(AccountEntity).find({ order: { id: 'ASC' } })).map((r) => r.name);
      },
      transaction: (fn) => dataSource.transaction((manager) => fn(handle(manager))),
      close: () => dataSource.destroy(),
    };
  },
});

describe('TypeORM and lifeguard/mysql2: the pool TypeORM built', () => {
  it('takes toPrometheusText and health() as it is, and its promise() has lifeguard\'s API', async () => {
    const dataSource = new DataSource({ type: 'mariadb', driver: mysql2Callback, extra: { ...db.connection(), connectionLimit: 2 }, entities: [AccountEntity] });
    await dataSource.initialize();
    try {
      await dataSource.query('SELECT 1');
      const pool = (dataSource.driver as MysqlDriver).pool as LifeguardCallbackPool;
      expect(pool.health().status).toBe('ok');
      expect(toPrometheusText([{ pool, name: 'typeorm' }])).toMatch(/pool_name="typeorm"/);
      expect(pool.config.connectionLimit).toBe(2);
      expect((pool.promise() as unknown as Pool).stats().acquired).toBeGreaterThanOrEqual(1);
    } finally {
      await dataSource.destroy();
    }
    expect(((dataSource.driver as MysqlDriver).pool as LifeguardCallbackPool | undefined)?.closed ?? true).toBe(true);
  });
});
