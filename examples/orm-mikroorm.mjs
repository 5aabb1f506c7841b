// MikroORM 7 on lifeguard's pool. MikroORM 7 runs on Kysely and takes a Kysely dialect in
// `driverOptions` in place of the pg.Pool it would build: `new PostgresDialect({ pool })`
// with `Pool` from lifeguard/pg. A small ledger: two accounts, a transfer in a transaction,
// one refused by the database and rolled back, a read inside a request scope, a slow query
// stopped by queryTimeoutMs. Prints what happened and exits 0. MikroORM 7 needs Node >= 22.17.
//
//   npm run build                                  # examples import the built package
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/orm-mikroorm.mjs
import { createPostgreSqlTypeParsers, EntitySchema, MikroORM } from '@mikro-orm/postgresql';
import { PostgresDialect } from 'kysely';
import pg, { Pool } from 'lifeguard/pg';
import { parse as parseArray } from 'postgres-array';

const Account = new EntitySchema({
  name: 'Account',
  tableName: 'lifeguard_example_mikroorm_account',
  properties: {
    id: { type: 'number', primary: true },
    name: { type: 'string', unique: true },
    balance: { type: 'number' },
  },
});

// MikroORM sets these type parsers (dates, timestamps, intervals as the server's text) only on
// a pool it builds: give them to this one, or `date` and `interval` columns read back wrong.
const types = new pg.TypeOverrides();
for (const [oid, parse] of Object.entries(createPostgreSqlTypeParsers(parseArray))) types.setTypeParser(Number(oid), parse);

// pg.Pool's config with pg-pool's meanings, and lifeguard's options beside it.
const pool = new Pool({
  types,
  connectionString: process.env.DATABASE_URL, // unset: pg reads the PG* variables
  application_name: 'lifeguard-example-mikroorm',
  max: 5,
  connectionTimeoutMillis: 5_000, // how long a query may wait for a connection
  queryTimeoutMs: 500, // a query running longer fails, and the server stops running it
});
const orm = await MikroORM.init({
  entities: [Account],
  // MikroORM still wants the database's name, for its schema tools.
  ...(process.env.DATABASE_URL ? { clientUrl: process.env.DATABASE_URL } : { dbName: process.env.PGDATABASE ?? 'postgres' }),
  driverOptions: new PostgresDialect({ pool }),
});

/** The SQLSTATE of a database error, however it was wrapped. */
function sqlState(error) {
  for (let e = error; e; e = e.cause) if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  return 'no SQLSTATE';
}

function transfer(from, to, amount) {
  return orm.em.fork().transactional(async (em) => {
    const [a, b] = await Promise.all([em.findOneOrFail(Account, { name: from }), em.findOneOrFail(Account, { name: to })]);
    a.balance -= amount;
    b.balance += amount;
  });
}

try {
  const em = orm.em.fork();
  await em.execute('DROP TABLE IF EXISTS lifeguard_example_mikroorm_account');
  await em.execute('CREATE TABLE lifeguard_example_mikroorm_account (id serial PRIMARY KEY, name text NOT NULL UNIQUE, balance integer NOT NULL CHECK (balance >= 0))');
  em.create(Account, { name: 'alice', balance: 100 });
  em.create(Account, { name: 'bob', balance: 100 });
  await em.flush();
  console.log('table lifeguard_example_mikroorm_account created with alice=100 bob=100');

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
    console.log('transfer alice -> bob 500: committed (unexpected)');
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${sqlState(error)})`);
  }

  // A request scope: the connections MikroORM takes inside share the request's 2 s budget.
  const rows = await pool.run({ timeoutMs: 2_000 }, () => orm.em.fork().find(Account, {}, { orderBy: { name: 'asc' } }));
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await orm.em.fork().execute('SELECT pg_sleep(10)');
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${error.message}`);
  }

  await orm.em.fork().execute('DROP TABLE lifeguard_example_mikroorm_account');
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await orm.close(); // destroys its Kysely, which ends the pool
}
console.log(`done (pool ended: ${pool.ended})`);
