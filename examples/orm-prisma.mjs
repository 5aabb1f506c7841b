// Prisma on lifeguard's pool, through Prisma's driver adapter for pg: `new PrismaPg(pool)`.
// PrismaPg uses a pool it is given only if it is `instanceof pg.Pool` (anything else it takes
// as a config, building a pg.Pool of its own without a word); lifeguard/pg's Pool is one. A
// small ledger: two accounts, a transfer in a transaction, one refused by the database and
// rolled back, a read inside a request scope, a slow query stopped by queryTimeoutMs.
// Prints what happened and exits 0.
//
//   npm run build                                  # examples import the built package
//   npx prisma generate --schema examples/prisma/schema.prisma
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/orm-prisma.mjs
import { PrismaPg } from '@prisma/adapter-pg';
import { Pool } from 'lifeguard/pg';
import { PrismaClient } from './prisma/generated/index.js';

const table = 'lifeguard_example_prisma_account';

// pg.Pool's config with pg-pool's meanings, and lifeguard's options beside it.
const pool = new Pool({
  connectionString: process.env.DATABASE_URL, // unset: pg reads the PG* variables
  application_name: 'lifeguard-example-prisma',
  max: 5,
  connectionTimeoutMillis: 5_000, // how long a query may wait for a connection
  queryTimeoutMs: 500, // a query running longer fails, and the server stops running it
});
const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });

/** The SQLSTATE of a database error: Prisma keeps the driver's code in the error's meta. */
function sqlState(error) {
  const code = error?.meta?.driverAdapterError?.cause?.originalCode ?? error?.meta?.code;
  return typeof code === 'string' ? code : `no SQLSTATE (${error?.code ?? error?.name})`;
}

function transfer(from, to, amount) {
  return prisma.$transaction(async (tx) => {
    await tx.account.update({ where: { name: from }, data: { balance: { decrement: amount } } });
    await tx.account.update({ where: { name: to }, data: { balance: { increment: amount } } });
  });
}

try {
  // The table is made with plain SQL: `prisma migrate` or `db push` would do it in a project.
  await prisma.$executeRawUnsafe(`DROP TABLE IF EXISTS ${table}`);
  await prisma.$executeRawUnsafe(`CREATE TABLE ${table} (id serial PRIMARY KEY, name text NOT NULL UNIQUE, balance integer NOT NULL CHECK (balance >= 0))`);
  await prisma.account.createMany({ data: [{ name: 'alice', balance: 100 }, { name: 'bob', balance: 100 }] });
  console.log(`table ${table} created with alice=100 bob=100`);

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
    console.log('transfer alice -> bob 500: committed (unexpected)');
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${sqlState(error)})`);
  }

  // A request scope: the connections Prisma takes inside share the request's 2 s budget.
  const rows = await pool.run({ timeoutMs: 2_000 }, () => prisma.account.findMany({ orderBy: { name: 'asc' } }));
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await prisma.$queryRawUnsafe('SELECT pg_sleep(10)');
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${error.message.trim().split('\n').at(-1)}`);
  }

  await prisma.$executeRawUnsafe(`DROP TABLE ${table}`);
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await prisma.$disconnect(); // leaves a pool it was given open (unless PrismaPg's disposeExternalPool):
  await pool.end();
}
console.log(`done (pool ended: ${pool.ended})`);
