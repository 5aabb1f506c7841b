// Prisma on lifeguard/pg, through its driver adapter for pg: `new PrismaPg(pool)`. PrismaPg
// uses a pool it is given only when it is `instanceof pg.Pool` (anything else it takes as a
// config and builds its own pg.Pool from, silently); lifeguard's Pool is one. The client is
// Prisma 7's `prisma-client` generator's, generated here before the tests (it needs no engine
// binary). $disconnect() leaves a pool it was given open unless `disposeExternalPool`.
import { fileURLToPath } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { Pool } from '../../src/adapters/pg/index.js';
import { prismaGenerate } from '../support/prisma-generate.js';
import { usePostgres, waitFor } from './harness.js';
import { ormScenarios, type OrmTransaction, type Row } from './orm-scenarios.js';

// The generated client's types exist only after generate: its module is loaded dynamically.
type PrismaClientLike = {
  account: { create(args: { data: { name: string } }): Promise<unknown>; findMany(args: object): Promise<{ name: string }[]> };
  $queryRawUnsafe<T = unknown>(sql: string): Promise<T>;
  $transaction<R>(fn: (tx: PrismaClientLike) => Promise<R>, options?: object): Promise<R>;
  $disconnect(): Promise<void>;
};
let PrismaClient: new (options: { adapter: PrismaPg }) => PrismaClientLike;

const db = usePostgres();

beforeAll(async () => {
  await prismaGenerate(fileURLToPath(new URL('./prisma/schema.prisma', import.meta.url)));
  const generated = './prisma/generated/client.js';
  ({ PrismaClient } = (await import(/* @vite-ignore */ generated)) as { PrismaClient: typeof PrismaClient });
}, 90_000);

function handle(prisma: PrismaClientLike): OrmTransaction {
  return {
    async insert(name) {
      await prisma.account.create({ data: { name } });
    },
    raw: (text) => prisma.$queryRawUnsafe<Row[]>(text),
  };
}

describe('PrismaPg and lifeguard/pg', () => {
  it('takes lifeguard\'s Pool as the pool to use, not as a config to build its own from', async () => {
    const pool = new Pool({ ...db.connection(), max: 1 });
    try {
      const adapter = await new PrismaPg(pool).connect();
      expect(adapter.underlyingDriver()).toBe(pool);
      expect((await adapter.queryRaw({ sql: 'SELECT 42::int AS n', args: [], argTypes: [] })).rows).toEqual([[42]]);
      expect(pool.stats().acquired).toBe(1);
      await adapter.dispose();
      expect(pool.ended).toBe(false);
    } finally {
      await pool.end();
    }
  });

  it('with disposeExternalPool, $disconnect() ends the pool it was given', async () => {
    const app = db.appName('prisma-dispose');
    const pool = new Pool({ ...db.connection(), application_name: app, max: 1 });
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
    expect(await prisma.$queryRawUnsafe('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await prisma.$disconnect();
    expect(pool.ended).toBe(true);
    await waitFor('no session of the pool left on the server', async () => (await db.sessions(app)) === 0, { timeoutMs: 3000 });
  });
});

ormScenarios(db, {
  name: 'prisma',
  shutdownEndsPool: false,
  async open({ config, schema, flavour }) {
    const pool = flavour === 'lifeguard' ? new Pool(config) : new pg.Pool(config as pg.PoolConfig);
    // Prisma qualifies its tables with a schema name (default "public") instead of following search_path.
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { schema }) });
    return {
      pool,
      ...handle(prisma),
      async names() {
        return (await prisma.account.findMany({ select: { name: true }, orderBy: { id: 'asc' } })).map((r) => r.name);
      },
      transaction: (fn) => prisma.$transaction((tx) => fn(handle(tx))),
      async close() {
        await prisma.$disconnect();
        await pool.end();
      },
    };
  },
});
