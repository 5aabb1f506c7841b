// MikroORM on lifeguard/pg. MikroORM 7 runs on Kysely and takes a Kysely dialect (or Kysely
// instance) in `driverOptions` instead of building its own pg.Pool: `driverOptions: new
// PostgresDialect({ pool })`. orm.close() destroys that Kysely, which ends the pool.
//
// MikroORM sets its type parsers (dates, timestamps and intervals as the server's text) only
// on a pool it builds itself: a pool given through a dialect needs them passed as its `types`,
// or `date` columns come back as Date objects and intervals as zero (MikroORM 7.2).
//
// MikroORM 7 needs Node >= 22.17; on older Node this file has nothing to run. MikroORM 6 (the
// last for Node 20) cannot be given a pool: it builds knex 3.2 (an exact dependency), whose
// only pool is the one it makes from a connection config.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { parse as parseArray } from 'postgres-array';
import { describe, expect, it } from 'vitest';
import { Pool, type PoolConfig } from '../../src/adapters/pg/index.js';
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

  /** MikroORM's own type parsers, as it sets them on the pools it builds. */
  const mikroTypes = (): pg.CustomTypesConfig => {
    const types = new pg.TypeOverrides();
    for (const [oid, parser] of Object.entries(mikro.createPostgreSqlTypeParsers((text) => parseArray(text)))) {
      types.setTypeParser(Number(oid), parser as (text: string) => unknown);
    }
    return types;
  };

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
    // MikroORM 7.2.5 pins Kysely 0.29.6, whose ControlledTransaction (MikroORM's transactions)
    // releases its connection only after a ROLLBACK that succeeded (fixed in Kysely 0.29.7);
    // em.transactional() logs the failed ROLLBACK and rethrows, so a connection that died
    // inside the transaction stays checked out for good (with pg.Pool too, whose end() then
    // never resolves). A MikroORM on Kysely >= 0.29.7 gives it back, and this fails: drop it.
    keepsConnectionAfterFailedRollback: 'Kysely 0.29.6: a controlled transaction releases only after a successful ROLLBACK',
    async open({ config, flavour }) {
      const withTypes: PoolConfig = { ...config, types: mikroTypes() };
      const pool = flavour === 'lifeguard' ? new Pool(withTypes) : new pg.Pool(withTypes as pg.PoolConfig);
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

  describe('MikroORM 7 and lifeguard/pg: types', () => {
    it("with MikroORM's type parsers on the Pool, dates, timestamps and intervals read back as written", async () => {
      const table = db.table('mikro_event');
      await db.admin(`CREATE TABLE ${table} (id serial PRIMARY KEY, at timestamptz NOT NULL, day date NOT NULL, span interval NOT NULL)`);
      const Event = new mikro.EntitySchema<{ id: number; at: Date; day: string; span: string }>({
        name: 'Event',
        tableName: table,
        properties: { id: { type: 'number', primary: true }, at: { type: 'datetime' }, day: { type: 'date' }, span: { type: 'interval' } },
      });
      const pool = new Pool({ ...db.connection(), types: mikroTypes() });
      const orm = await mikro.MikroORM.init({ entities: [Event], dbName: db.database, driverOptions: new PostgresDialect({ pool }) });
      try {
        const at = new Date('2024-03-01T12:34:56.789Z');
        const em = orm.em.fork();
        em.create(Event, { at, day: '2024-03-01', span: '1 hour' });
        await em.flush();
        const [event] = await orm.em.fork().find(Event, {});
        expect(event!.at).toEqual(at);
        expect(event!.day).toBe('2024-03-01');
        expect(event!.span).toMatchObject({ hours: 1 });
      } finally {
        await orm.close();
      }
      expect(pool.ended).toBe(true);
    });
  });
}
