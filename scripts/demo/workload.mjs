// The workload: a small bank. ACCOUNTS accounts start with INITIAL each; workers move money
// between them in transactions (withTransaction) and read the total (withConnection). Every
// transfer also writes a ledger row in the same transaction, so at the end each balance
// must equal INITIAL plus its ledger movements (nothing half-applied), every transfer the
// pool acknowledged must be in the ledger (nothing lost), and no transfer that failed
// before its COMMIT may be (nothing applied behind the caller's back). The total never
// changes, which every read checks live: one statement sees one snapshot.

export const ACCOUNTS = 100;
export const INITIAL = 1000;
export const TOTAL = ACCOUNTS * INITIAL;

/** Transfer states, one byte per transfer id. */
const RUNNING = 0;
const COMMITTED = 1;
/** Failed before COMMIT was sent: must not be in the ledger. */
const FAILED = 2;
/** Failed at COMMIT (the connection died with it): either outcome is correct. */
const IN_DOUBT = 3;

/**
 * @typedef {object} Tables
 * @property {string} account
 * @property {string} transfer
 */

/**
 * @param {string} suffix  '' for a server of our own, a unique tag on a shared one
 * @returns {Tables}
 */
export function tableNames(suffix) {
  return { account: `demo_account${suffix}`, transfer: `demo_transfer${suffix}` };
}

/**
 * @param {{ query(text: string, values?: unknown[]): Promise<unknown> }} admin
 * @param {Tables} t
 * @param {string | undefined} grantTo  the pool's role, when it is not the admin
 */
export async function createSchema(admin, t, grantTo) {
  await admin.query(`CREATE TABLE ${t.account} (id int PRIMARY KEY, balance bigint NOT NULL)`);
  await admin.query(`INSERT INTO ${t.account} SELECT g, $1 FROM generate_series(1, $2) AS g`, [INITIAL, ACCOUNTS]);
  await admin.query(`CREATE TABLE ${t.transfer} (id bigint PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL, amount bigint NOT NULL)`);
  if (grantTo !== undefined) {
    await admin.query(`GRANT SELECT, UPDATE ON ${t.account} TO ${grantTo}`);
    await admin.query(`GRANT SELECT, INSERT ON ${t.transfer} TO ${grantTo}`);
  }
}

/** One byte per transfer id (1-based): RUNNING, COMMITTED, FAILED or IN_DOUBT. */
class TransferBook {
  #states = new Uint8Array(1 << 16);
  issued = 0;
  next() {
    const id = ++this.issued;
    if (id >= this.#states.length) {
      const grown = new Uint8Array(this.#states.length * 2);
      grown.set(this.#states);
      this.#states = grown;
    }
    return id;
  }
  /**
   * @param {number} id
   * @param {number} state
   */
  set(id, state) {
    this.#states[id] = state;
  }
  /** @param {number} id */
  get(id) {
    return this.#states[id];
  }
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @typedef {object} Workload
 * @property {TransferBook} book
 * @property {{ count: number, example: string | undefined }} readMismatches  reads whose total was wrong
 * @property {() => Promise<number>} nextCommit  resolves at the next transfer the pool acknowledges as committed, with performance.now()
 * @property {(timeoutMs: number) => Promise<number>} stop  stop the workers; resolves with the operations still unsettled after timeoutMs
 */

/**
 * Start `workers` loops. Each picks a transfer or a read at random, pauses 50–100 ms after a
 * failure (no spin while the server is gone) and thinks 0–thinkMs ms between operations.
 * @param {{ pool: import('../../dist/adapters/postgres/index.js').PostgresPool, recorder: import('./record.mjs').Recorder, tables: Tables, workers: number, thinkMs: number }} options
 * @returns {Workload}
 */
export function startWorkload({ pool, recorder, tables, workers, thinkMs }) {
  const book = new TransferBook();
  const readMismatches = { count: 0, example: /** @type {string | undefined} */ (undefined) };
  /** @type {((at: number) => void)[]} */
  let commitWaiters = [];
  const debit = `UPDATE ${tables.account} SET balance = balance + $2 WHERE id = $1`;
  const ledger = `INSERT INTO ${tables.transfer} (id, from_id, to_id, amount) VALUES ($1, $2, $3, $4)`;
  const totalSql = `SELECT sum(balance)::text AS total, count(*)::int AS n FROM ${tables.account}`;

  const transfer = async () => {
    const id = book.next();
    const from = 1 + Math.floor(Math.random() * ACCOUNTS);
    const to = 1 + ((from + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
    const amount = 1 + Math.floor(Math.random() * 50);
    // Rows are locked in id order, so two transfers never deadlock each other.
    const [first, second] = from < to ? [from, to] : [to, from];
    let bodyDone = false;
    try {
      await pool.withTransaction(
        async (client) => {
          bodyDone = false;
          await client.query(debit, [first, first === from ? -amount : amount]);
          await client.query(debit, [second, second === from ? -amount : amount]);
          await client.query(ledger, [id, from, to, amount]);
          bodyDone = true;
        },
        { retry: true },
      );
      book.set(id, COMMITTED);
      if (commitWaiters.length > 0) {
        const at = performance.now();
        const waiters = commitWaiters;
        commitWaiters = [];
        for (const resolve of waiters) resolve(at);
      }
    } catch (error) {
      book.set(id, bodyDone ? IN_DOUBT : FAILED);
      throw error;
    }
  };

  const read = () =>
    pool.withConnection(async (client) => {
      const { rows } = await client.query(totalSql);
      const row = rows[0];
      if (row?.total !== String(TOTAL) || row?.n !== ACCOUNTS) {
        readMismatches.count++;
        readMismatches.example ??= `a read saw total ${row?.total} over ${row?.n} accounts (expected ${TOTAL} over ${ACCOUNTS})`;
      }
    });

  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const start = recorder.begin();
      try {
        await (Math.random() < 0.5 ? transfer() : read());
        recorder.succeed(start);
      } catch (error) {
        recorder.fail(start, error);
        await sleep(50 + Math.random() * 50);
      }
      if (thinkMs > 0 && running) await sleep(Math.random() * thinkMs);
    }
  });

  return {
    book,
    readMismatches,
    nextCommit: () => new Promise((resolve) => commitWaiters.push(resolve)),
    async stop(timeoutMs) {
      running = false;
      /** @type {NodeJS.Timeout | undefined} */
      let timer;
      await Promise.race([Promise.all(loops), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      return recorder.inFlight;
    },
  };
}

/**
 * @typedef {object} InvariantReport
 * @property {boolean} ok
 * @property {string[]} lines    what was checked, one line each, for the summary
 * @property {string[]} problems why it failed, when it did
 */

/**
 * The end-of-run checks, on the admin connection.
 * @param {{ query(text: string, values?: unknown[]): Promise<{ rows: any[] }> }} admin
 * @param {Tables} t
 * @param {Workload} workload
 * @returns {Promise<InvariantReport>}
 */
export async function checkInvariant(admin, t, workload) {
  /** @type {string[]} */
  const lines = [];
  /** @type {string[]} */
  const problems = [];
  const check = (/** @type {boolean} */ ok, /** @type {string} */ good, /** @type {string} */ bad) => {
    lines.push(`${ok ? 'ok  ' : 'FAIL'} ${ok ? good : bad}`);
    if (!ok) problems.push(bad);
  };

  const { rows: totals } = await admin.query(`SELECT sum(balance)::text AS total, count(*)::int AS n FROM ${t.account}`);
  const total = totals[0]?.total;
  check(total === String(TOTAL), `total balance ${total} = ${TOTAL}, as at the start`, `total balance ${total} != ${TOTAL}: money was created or destroyed`);

  const { rows: off } = await admin.query(
    `SELECT a.id, a.balance::text AS balance, ($1 + coalesce(i.amount, 0) - coalesce(o.amount, 0))::text AS expected
       FROM ${t.account} a
       LEFT JOIN (SELECT to_id AS id, sum(amount) AS amount FROM ${t.transfer} GROUP BY to_id) i USING (id)
       LEFT JOIN (SELECT from_id AS id, sum(amount) AS amount FROM ${t.transfer} GROUP BY from_id) o USING (id)
      WHERE a.balance <> $1 + coalesce(i.amount, 0) - coalesce(o.amount, 0)`,
    [INITIAL],
  );
  check(
    off.length === 0,
    `every account's balance = ${INITIAL} + its ledger movements (no transfer half-applied)`,
    `${off.length} account(s) disagree with the ledger, e.g. account ${off[0]?.id}: balance ${off[0]?.balance}, ledger says ${off[0]?.expected}`,
  );

  const { book } = workload;
  const { rows: ledgerRows } = await admin.query(`SELECT id::int AS id FROM ${t.transfer}`);
  const inLedger = new Uint8Array(book.issued + 1);
  let unknown = 0;
  for (const { id } of ledgerRows) {
    if (id >= 1 && id <= book.issued) inLedger[id] = 1;
    else unknown++;
  }
  let committed = 0;
  let lost = 0;
  let failed = 0;
  let ghosts = 0;
  let inDoubt = 0;
  let inDoubtCommitted = 0;
  let running = 0;
  for (let id = 1; id <= book.issued; id++) {
    const state = book.get(id);
    if (state === COMMITTED) {
      committed++;
      if (!inLedger[id]) lost++;
    } else if (state === FAILED) {
      failed++;
      if (inLedger[id]) ghosts++;
    } else if (state === IN_DOUBT) {
      inDoubt++;
      if (inLedger[id]) inDoubtCommitted++;
    } else if (state === RUNNING) running++;
  }
  check(lost === 0, `all ${committed} acknowledged transfers are in the ledger (none lost)`, `${lost} acknowledged transfer(s) are missing from the ledger`);
  check(
    ghosts === 0 && unknown === 0,
    `none of the ${failed} transfers that failed before COMMIT was applied`,
    `${ghosts} transfer(s) that failed before COMMIT are in the ledger${unknown > 0 ? `, and ${unknown} ledger row(s) match no transfer` : ''}`,
  );
  check(running === 0, 'no transfer left unsettled', `${running} transfer(s) never settled`);
  lines.push(
    `     ${inDoubt} transfer(s) failed at COMMIT (connection lost with it: outcome unknown to the caller, either is correct): ${inDoubtCommitted} committed, ${inDoubt - inDoubtCommitted} rolled back`,
  );
  const mismatches = workload.readMismatches;
  check(mismatches.count === 0, 'every live read saw the same total', `${mismatches.count} live read(s) saw a different total, e.g. ${mismatches.example}`);
  return { ok: problems.length === 0, lines, problems };
}
