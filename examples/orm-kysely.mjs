// Kysely on lifeguard's pool: `new PostgresDialect({ pool })` with `Pool` from lifeguard/pg
// instead of pg. A small ledger: two accounts, a transfer in a transaction, one refused by
// the database and rolled back, a read inside a request scope, a slow query stopped by
// queryTimeoutMs. Prints what happened and exits 0.
//
//   npm run build                                  # examples import the built package
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/orm-kysely.mjs
import { Kysely, PostgresDialect, sql } from 'kysely';
import { Pool } from 'lifeguard/pg';

const table = 'lifeguard_example_kysely_account';

// pg.Pool's config with pg-pool's meanings, and lifeguard's options beside it.
const pool = new Pool({
  connectionString: process.env.DATABASE_URL, // unset: pg reads the PG* variables
  application_name: 'lifeguard-example-kysely',
  max: 5,
  connectionTimeoutMillis: 5_000, // how long a query may wait for a connection
  queryTimeoutMs: 500, // a query running longer fails, and the server stops running it
});
const db = new Kysely({ dialect: new PostgresDialect({ pool }) });

/** The SQLSTATE of a database error, however it was wrapped. */
function sqlState(error) {
  for (let e = error; e; e = e.cause) if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  return 'no SQLSTATE';
}

function transfer(from, to, amount) {
  return db.transaction().execute(async (trx) => {
    await trx.updateTable(table).set({ balance: sql`balance - ${amount}` }).where('name', '=', from).execute();
    await trx.updateTable(table).set({ balance: sql`balance + ${amount}` }).where('name', '=', to).execute();
  });
}

try {
  await db.schema.dropTable(table).ifExists().execute();
  await db.schema
    .createTable(table)
    .addColumn('id', 'serial', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('balance', 'integer', (c) => c.notNull().check(sql`balance >= 0`))
    .execute();
  await db.insertInto(table).values([{ name: 'alice', balance: 100 }, { name: 'bob', balance: 100 }]).execute();
  console.log(`table ${table} created with alice=100 bob=100`);

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
    console.log('transfer alice -> bob 500: committed (unexpected)');
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${sqlState(error)})`);
  }

  // A request scope: the connections Kysely takes inside share the request's 2 s budget.
  const rows = await pool.run({ timeoutMs: 2_000 }, () => db.selectFrom(table).select(['name', 'balance']).orderBy('name').execute());
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await sql`SELECT pg_sleep(10)`.execute(db);
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${error.message}`);
  }

  await db.schema.dropTable(table).execute();
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await db.destroy(); // Kysely ends the pool it was given
}
console.log(`done (pool ended: ${pool.ended})`);
