// Drizzle on lifeguard's pool: `drizzle({ client: pool })` with `Pool` from lifeguard/pg
// instead of pg. A small ledger: two accounts, a transfer in a transaction, one refused by
// the database and rolled back, a read inside a request scope, a slow query stopped by
// queryTimeoutMs. Prints what happened and exits 0.
//
//   npm run build                                  # examples import the built package
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/orm-drizzle.mjs
import { asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { Pool } from 'lifeguard/pg';

const account = pgTable('lifeguard_example_drizzle_account', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  balance: integer('balance').notNull(),
});

// pg.Pool's config with pg-pool's meanings, and lifeguard's options beside it.
const pool = new Pool({
  connectionString: process.env.DATABASE_URL, // unset: pg reads the PG* variables
  application_name: 'lifeguard-example-drizzle',
  max: 5,
  connectionTimeoutMillis: 5_000, // how long a query may wait for a connection
  queryTimeoutMs: 500, // a query running longer fails, and the server stops running it
});
// Give Drizzle the pool: drizzle(url) or drizzle({ connection }) would build a pg.Pool of its own.
const db = drizzle({ client: pool });

/** The SQLSTATE of a database error, however it was wrapped (Drizzle puts pg's error in `cause`). */
function sqlState(error) {
  for (let e = error; e; e = e.cause) if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  return 'no SQLSTATE';
}

function transfer(from, to, amount) {
  return db.transaction(async (tx) => {
    await tx.update(account).set({ balance: sql`${account.balance} - ${amount}` }).where(eq(account.name, from));
    await tx.update(account).set({ balance: sql`${account.balance} + ${amount}` }).where(eq(account.name, to));
  });
}

try {
  await db.execute(sql`DROP TABLE IF EXISTS ${account}`);
  await db.execute(sql`CREATE TABLE ${account} (id serial PRIMARY KEY, name text NOT NULL UNIQUE, balance integer NOT NULL CHECK (balance >= 0))`);
  await db.insert(account).values([{ name: 'alice', balance: 100 }, { name: 'bob', balance: 100 }]);
  console.log('table lifeguard_example_drizzle_account created with alice=100 bob=100');

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
    console.log('transfer alice -> bob 500: committed (unexpected)');
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${sqlState(error)})`);
  }

  // A request scope: the connections Drizzle takes inside share the request's 2 s budget.
  const rows = await pool.run({ timeoutMs: 2_000 }, () => db.select({ name: account.name, balance: account.balance }).from(account).orderBy(asc(account.name)));
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await db.execute(sql`SELECT pg_sleep(10)`);
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${(error.cause ?? error).message}`);
  }

  await db.execute(sql`DROP TABLE ${account}`);
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await pool.end(); // Drizzle does not own the pool it was given
}
console.log(`done (pool ended: ${pool.ended})`);
