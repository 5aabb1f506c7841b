// MikroORM on lifeguard/pg. MikroORM 7 runs on Kysely and takes a Kysely dialect (or Kysely
// instance) in `driverOptions` instead of building its own pg.Pool: `driverOptions: new
// PostgresDialect({ pool })`. orm.close() destroys that Kysely, which ends the pool.
//
// MikroORM 7 needs Node >= 22.17; on older Node this file has nothing to run. MikroORM 6 (the
// last for Node 20) cannot be given a pool: it builds knex 3.2 (an exact dependency), whose
// only pool is the one it makes from a connection config.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'vitest';
import { Pool } from '../../src/adapters/pg/index.js';
import { usePostgres } from './harness.js';
import { ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const SUPPORTED = major > 22 || (major === 22 && minor >= 17);

if (!SUPPORTED) {
  describe('MikroORM 7 on lifeguard/pg', () => {
    it.skip(`needs Node >= 22.17 (MikroORM 7's engines); this is Node ${process.versions.node}`, () => {});
  });
} else {
  const db = usePostgres();
  // Loaded only where it runs: MikroORM 7 and the Kysely it requires are for Node >= 22.
  const mikro = await import('@mikro-orm/postgresql');
  // The dialect from the Kysely MikroORM runs on (0.29, nested under it: this repository's
  // own kysely devDependency is 0.28, the last for Node 20). An application has one kysely.
  const require = createRequire(import.meta.url);
  const kyselyPath = createRequire(require.resolve('@mikro-orm/postgresql')).resolve('kysely');
  const { PostgresDialect } = (await import(pathToFileURL(kyselyPath).href)) as typeof import('kysely');

  interface Account {
    id: number;
    name: string;
  }
  const AccountEntity = new mikro.EntitySchema<Account>({
    name: 'Account',
    tableName: 'account',
    properties: { id: { type: 'number', primary: true }, name: { type: 'string' } },
  });

  const handle = (em: InstanceType<typeof mikro.EntityManager>): OrmTransaction => ({
    async insert(name) {
      em.create(AccountEntity, { name });
      await em.flush();
    },
    raw: (text) => em.execute<Row[]>(text),
  });

  ormScenarios(db, {
    name: 'mikroorm',
    shutdownEndsPool: true,
    // Kysely 0.29's ControlledTransaction (MikroORM's transactions) releases its connection only
    // after a ROLLBACK or COMMIT that succeeded; em.transactional() logs a failed ROLLBACK and
    // rethrows, so a connection that died inside the transaction stays checked out for good
    // (with pg.Pool too, whose end() then never resolves).
    keepsConnectionAfterFailedRollback: "Kysely's ControlledTransaction releases only after a successful ROLLBACK",
    async open({ config, flavour }) {
      const pg = (await import('pg')).default;
      const pool = flavour === 'lifeguard' ? new Pool(config) : new pg.Pool(config as import('pg').PoolConfig);
      const orm = await mikro.MikroORM.init({
        entities: [AccountEntity],
        dbName: config.database!,
        driverOptions: new PostgresDialect({ pool }),
        // No schema checks at start-up: the table exists, made by the scenarios.
        ensureDatabase: false,
      });
      return {
        pool,
        ...handle(orm.em.fork()),
        async names() {
          return (await orm.em.fork().find(AccountEntity, {}, { orderBy: { id: 'asc' } })).map((r) => r.name);
        },
        transaction: (fn) => orm.em.fork().transactional((em) => fn(handle(em))),
        close: () => orm.close(),
      };
    },
  });
}
