// TypeORM on lifeguard's pool. TypeORM builds its pool itself, with `new driver.Pool(...)`:
// give it lifeguard/pg's default export (pg, with lifeguard's Pool in place of pg's) as
// `driver`, and lifeguard's options in `extra`. A small ledger: two accounts, a transfer in
// a transaction, one refused by the database and rolled back, a read inside a request
// scope, a slow query stopped by queryTimeoutMs. Prints what happened and exits 0.
//
//   npm run build                                  # examples import the built package
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/orm-typeorm.mjs
import pg from 'lifeguard/pg';
import { DataSource, EntitySchema } from 'typeorm';

const Account = new EntitySchema({
  name: 'Account',
  tableName: 'lifeguard_example_typeorm_account',
  columns: {
    id: { type: Number, primary: true, generated: true },
    name: { type: String, unique: true },
    balance: { type: Number },
  },
  checks: [{ expression: 'balance >= 0' }],
});

const dataSource = new DataSource({
  type: 'postgres',
  driver: pg,
  url: process.env.DATABASE_URL, // unset: pg reads the PG* variables
  applicationName: 'lifeguard-example-typeorm',
  poolSize: 5, // the pool's max
  connectTimeoutMS: 5_000, // pg-pool's connectionTimeoutMillis: how long a query may wait for a connection
  extra: { queryTimeoutMs: 500 }, // lifeguard's: a query running longer fails, and the server stops running it
  entities: [Account],
  synchronize: true, // creates the table (and its check constraint) at initialize()
});

/** The SQLSTATE of a database error, however it was wrapped. */
function sqlState(error) {
  for (let e = error; e; e = e.cause ?? e.driverError) if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  return 'no SQLSTATE';
}

function transfer(from, to, amount) {
  return dataSource.transaction(async (manager) => {
    await manager.decrement(Account, { name: from }, 'balance', amount);
    await manager.increment(Account, { name: to }, 'balance', amount);
  });
}

await dataSource.initialize();
// The lifeguard pool TypeORM built: stats(), health(), run() and the rest are there.
const pool = dataSource.driver.master;
try {
  const accounts = dataSource.getRepository(Account);
  await accounts.clear();
  await accounts.insert([{ name: 'alice', balance: 100 }, { name: 'bob', balance: 100 }]);
  console.log('table lifeguard_example_typeorm_account created with alice=100 bob=100');

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
    console.log('transfer alice -> bob 500: committed (unexpected)');
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${sqlState(error)})`);
  }

  // A request scope: the connections TypeORM takes inside share the request's 2 s budget.
  const rows = await pool.run({ timeoutMs: 2_000 }, () => accounts.find({ order: { name: 'ASC' } }));
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await dataSource.query('SELECT pg_sleep(10)');
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${error.message}`);
  }

  await dataSource.query('DROP TABLE lifeguard_example_typeorm_account');
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await dataSource.destroy(); // ends the pool
}
console.log(`done (pool ended: ${pool.ended})`);
