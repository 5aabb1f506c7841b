// knex on lifeguard's pool: knex 3.3's `connectionPool` option takes a pg.Pool, and `Pool`
// from lifeguard/pg is one. A small ledger: two accounts, a transfer in a transaction, one
// refused by the database and rolled back, a read inside a request scope, a slow query
// stopped by queryTimeoutMs. Prints what happened and exits 0.
//
//   npm run build                                  # examples import the built package
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/orm-knex.mjs
import knex from 'knex';
import { Pool } from 'lifeguard/pg';

const table = 'lifeguard_example_knex_account';

// pg.Pool's config with pg-pool's meanings, and lifeguard's options beside it.
const pool = new Pool({
  connectionString: process.env.DATABASE_URL, // unset: pg reads the PG* variables
  application_name: 'lifeguard-example-knex',
  max: 5,
  connectionTimeoutMillis: 5_000, // how long a query may wait for a connection
  queryTimeoutMs: 500, // a query running longer fails, and the server stops running it
});
// `connectionPool` instead of `connection` (the two exclude each other): knex then makes no
// pool of its own, and its `pool` settings do not apply.
const db = knex({ client: 'pg', connectionPool: pool });

/** The SQLSTATE of a database error, however it was wrapped. */
function sqlState(error) {
  for (let e = error; e; e = e.cause) if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  return 'no SQLSTATE';
}

function transfer(from, to, amount) {
  return db.transaction(async (trx) => {
    await trx(table).where({ name: from }).decrement('balance', amount);
    await trx(table).where({ name: to }).increment('balance', amount);
  });
}

try {
  await db.schema.dropTableIfExists(table);
  await db.schema.createTable(table, (t) => {
    t.increments('id');
    t.text('name').notNullable().unique();
    t.integer('balance').notNullable();
    t.check('balance >= 0');
  });
  await db(table).insert([{ name: 'alice', balance: 100 }, { name: 'bob', balance: 100 }]);
  console.log(`table ${table} created with alice=100 bob=100`);

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
    console.log('transfer alice -> bob 500: committed (unexpected)');
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${sqlState(error)})`);
  }

  // A request scope: the connections knex takes inside share the request's 2 s budget.
  const rows = await pool.run({ timeoutMs: 2_000 }, () => db(table).select('name', 'balance').orderBy('name'));
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await db.raw('SELECT pg_sleep(10)');
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${error.message}`);
  }

  await db.schema.dropTable(table);
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await db.destroy(); // leaves a pool it was given alone:
  await pool.end();
}
console.log(`done (pool ended: ${pool.ended})`);
