// Kysely on lifeguard's mysql2 drop-in: `new MysqlDialect({ pool: pool.pool })`, the
// callback-style pool as mysql2's promise pool has it (or `createCallbackPool(config)`).
// A small ledger: two accounts, a transfer in a transaction, one refused by the database and
// rolled back, a read inside a request scope, a slow query stopped by queryTimeoutMs.
// Prints what happened and exits 0.
//
//   npm run build                                  # examples import the built package
//   MYSQL_URL=mysql://user:pass@host:3306/db node examples/orm-kysely-mysql.mjs
import { Kysely, MysqlDialect, sql } from 'kysely';
import { createPool } from 'lifeguard/mysql2';

const table = 'lifeguard_example_kysely_mysql_account';

const pool = createPool({
  uri: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test',
  connectionLimit: 5,
  queryTimeoutMs: 500,
});
const db = new Kysely({ dialect: new MysqlDialect({ pool: pool.pool }) });

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
    .addColumn('name', 'varchar(20)', (c) => c.primaryKey())
    .addColumn('balance', sql`int unsigned`, (c) => c.notNull())
    .execute();
  await db.insertInto(table).values([{ name: 'alice', balance: 100 }, { name: 'bob', balance: 100 }]).execute();
  console.log(`table ${table} created with alice=100 bob=100`);

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
    console.log('transfer alice -> bob 500: committed (unexpected)');
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${error.code})`);
  }

  // A request scope: the connections Kysely takes inside share the request's 2 s budget.
  const rows = await pool.run({ timeoutMs: 2_000 }, () => db.selectFrom(table).select(['name', 'balance']).orderBy('name').execute());
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await sql`SELECT SLEEP(10)`.execute(db);
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${error.message.slice(0, 40)}...`);
  }

  await db.schema.dropTable(table).execute();
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await db.destroy(); // Kysely ends the pool it was given
}
console.log(`done (pool closed: ${pool.closed})`);
