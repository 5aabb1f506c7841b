// The MySQL programs in examples/ run against a real MariaDB, each as a child process with
// MYSQL_URL set, the way a user would run them. They import the BUILT package
// (`lifeguard/mysql2` through the exports map): run `npm run build` first.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { useMariaDb } from '../mysql/harness.js';

const ROOT = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '../..'));
const db = useMariaDb();

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'adapters/mysql2/index.js'))) {
    throw new Error('dist/ is not built (missing adapters/mysql2/index.js): run `npm run build` first');
  }
});

function run(script: string) {
  const started = performance.now();
  const result = spawnSync(process.execPath, [join(ROOT, 'examples', script)], {
    cwd: ROOT,
    env: { ...process.env, MYSQL_URL: db.url },
    encoding: 'utf8',
    timeout: 45_000,
    killSignal: 'SIGKILL',
  });
  return { ...result, ms: performance.now() - started, describe: `exit ${String(result.status)} (${String(result.signal)})\nstdout: ${result.stdout}\nstderr: ${result.stderr}` };
}

describe('MySQL examples', () => {
  it('mysql-drop-in.mjs runs its ledger with mysql2 code unchanged but for the import, and exits 0', () => {
    const result = run('mysql-drop-in.mjs');
    expect(result.status, result.describe).toBe(0);
    expect(result.stdout).toContain('transfer alice -> bob 30: committed');
    expect(result.stdout).toMatch(/transfer alice -> bob 500: rolled back \(ER_(WARN_)?DATA_OUT_OF_RANGE\)/);
    expect(result.stdout).toContain('the next query is in a transaction: false (destroyed: 1)');
    expect(result.stdout).toContain('balances: alice=70 bob=130');
    expect(result.stdout).toMatch(/slow query stopped after \d{3} ms: Query timed out/);
    expect(result.stdout).toContain('a fourth checkout gave up after its deadline: AcquireTimeoutError');
    expect(result.stdout).toContain('done (pool closed: true)');
  });

  it('orm-kysely-mysql.mjs runs its ledger and exits 0 by itself', () => {
    const result = run('orm-kysely-mysql.mjs');
    expect(result.status, result.describe).toBe(0);
    expect(result.stdout).toMatch(/transfer alice -> bob 500: rolled back \(ER_(WARN_)?DATA_OUT_OF_RANGE\)/);
    expect(result.stdout).toContain('balances: alice=70 bob=130');
    expect(result.stdout).toMatch(/slow query stopped after \d{3} ms: Query timed out/);
    expect(result.stdout).toContain('done (pool closed: true)');
  });
});
