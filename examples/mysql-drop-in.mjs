// Code written for mysql2's pool, on lifeguard: the only change is the import
// (`import mysql from 'mysql2/promise'` became `import mysql from 'lifeguard/mysql2'`).
// A small ledger: two accounts, a transfer in a transaction, one refused by the database and
// rolled back, a transaction left open by mistake (lifeguard destroys that connection
// instead of handing the open transaction to the next caller), a slow query stopped by
// queryTimeoutMs, a checkout that waits too long. Prints what happened and exits 0.
//
//   npm run build                                  # examples import the built package
//   MYSQL_URL=mysql://user:pass@host:3306/db node examples/mysql-drop-in.mjs
import mysql from 'lifeguard/mysql2';

const table = 'lifeguard_example_mysql2_account';

// mysql2's pool options with mysql2's meanings, and lifeguard's options beside them.
const pool = mysql.createPool({
  uri: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test',
  connectionLimit: 3,
  acquireTimeoutMs: 1_000, // how long a checkout may wait for a connection (mysql2 would wait forever)
  queryTimeoutMs: 500, // a statement running longer fails, and KILL QUERY stops it on the server
});
// mysql2's events, as its pool emits them.
pool.on('connection', (connection) => connection.query("SET SESSION time_zone = '+00:00'"));

async function transfer(from, to, amount) {
  const connection = await pool.getConnection();
  try {
    await connection.beginTransaction();
    await connection.execute(`UPDATE ${table} SET balance = balance - ? WHERE name = ?`, [amount, from]);
    await connection.execute(`UPDATE ${table} SET balance = balance + ? WHERE name = ?`, [amount, to]);
    await connection.commit();
  } catch (error) {
    await connection.rollback();
    throw error;
  } finally {
    connection.release();
  }
}

try {
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  await pool.query(`CREATE TABLE ${table} (name VARCHAR(20) PRIMARY KEY, balance INT UNSIGNED NOT NULL) ENGINE=InnoDB`);
  await pool.query(`INSERT INTO ${table} VALUES ('alice', 100), ('bob', 100)`);
  console.log(`table ${table} created with alice=100 bob=100`);

  await transfer('alice', 'bob', 30);
  console.log('transfer alice -> bob 30: committed');
  try {
    await transfer('alice', 'bob', 500);
  } catch (error) {
    console.log(`transfer alice -> bob 500: rolled back (${error.code})`);
  }

  // A bug: BEGIN, an update, and the connection released without COMMIT or ROLLBACK.
  const careless = await pool.getConnection();
  await careless.query('BEGIN');
  await careless.query(`UPDATE ${table} SET balance = 0 WHERE name = 'bob'`);
  careless.release();
  const [[{ open }]] = await pool.query('SELECT @@in_transaction AS open');
  console.log(`after a release inside BEGIN, the next query is in a transaction: ${open === 1} (destroyed: ${pool.stats().destroyedByReason.broken})`);

  const [rows] = await pool.execute(`SELECT name, balance FROM ${table} ORDER BY name`);
  console.log(`balances: ${rows.map((r) => `${r.name}=${r.balance}`).join(' ')}`);

  const started = performance.now();
  try {
    await pool.query('SELECT SLEEP(10)');
  } catch (error) {
    console.log(`slow query stopped after ${Math.round(performance.now() - started)} ms: ${error.message.slice(0, 40)}...`);
  }

  const held = await Promise.all([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    console.log(`a fourth checkout gave up after its deadline: ${error.name}`);
  } finally {
    for (const connection of held) connection.release();
  }

  await pool.query(`DROP TABLE ${table}`);
  const { acquired, created, destroyed } = pool.stats();
  console.log(`pool: ${JSON.stringify({ acquired, created, destroyed })}`);
} finally {
  await pool.end();
}
console.log(`done (pool closed: ${pool.closed})`);
