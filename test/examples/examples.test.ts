// The programs in examples/ run against a real PostgreSQL, each as a child process with
// DATABASE_URL set, the way a user would run them. They import the BUILT package
// (`lifeguard`, `lifeguard/postgres` through the exports map): `npm test` builds first; when
// running vitest directly, run `npm run build` before.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { usePostgres } from '../integration/harness.js';
import { freePort } from '../integration/providers.js';
import { prismaGenerate } from '../support/prisma-generate.js';

const ROOT = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '../..'));
const EXAMPLES = join(ROOT, 'examples');

const db = usePostgres();

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

beforeAll(() => {
  const missing = ['index.js', 'adapters/postgres/index.js', 'adapters/pg/index.js'].filter((f) => !existsSync(join(ROOT, 'dist', f)));
  if (missing.length > 0) {
    throw new Error(`dist/ is not built (missing ${missing.join(', ')}): run \`npm run build\` first (\`npm test\` builds before running vitest)`);
  }
});

interface Run {
  readonly child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited, with its exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

function start(script: string, args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, [join(EXAMPLES, script), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function runToEnd(script: string, args: string[], env: Record<string, string>, timeoutMs = 45_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = start(script, args, env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  try {
    const code = await run.exited;
    return { code, stdout: run.stdout(), stderr: run.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

/** Wait for the "listening on http://host:port" line an example prints once it serves. */
async function listening(run: Run, timeoutMs = 20_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const match = /listening on (http:\/\/\S+)/.exec(run.stdout());
    if (match) return match[1]!;
    if (run.child.exitCode !== null) throw new Error(`exited with ${run.child.exitCode} before listening:\n${run.stdout()}\n${run.stderr()}`);
    if (performance.now() > deadline) throw new Error(`not listening after ${timeoutMs} ms:\n${run.stdout()}\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function get(url: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('examples/http-service.mjs', () => {
  it('--self-test calls its own endpoints and exits 0', async () => {
    const { code, stdout, stderr } = await runToEnd('http-service.mjs', ['--self-test'], { DATABASE_URL: db.url });
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
    expect(stdout).toMatch(/^ok GET \/ready -> 200 \{"status":"ok"/m);
    expect(stdout).toMatch(/^ok GET \/now -> 200 \{"now":/m);
    expect(stdout).toMatch(/^ok GET \/metrics -> 200 lifeguard_pool_acquired_total\{pool_name="main"\} \d+$/m);
    expect(stdout).not.toContain('FAIL');
    expect(stdout).toContain('pool closed');
    expect(stdout).toContain('pool health after close: closed');
    expect(stdout).toContain('self-test passed');
  });

  it('serves /now and /ready, then shuts down gracefully on SIGTERM', async () => {
    const run = start('http-service.mjs', [], { DATABASE_URL: db.url, PORT: '0' });
    const base = await listening(run);

    const now = await get(`${base}/now`);
    expect(now.status).toBe(200);
    expect(typeof now.json.now).toBe('string');
    const ready = await get(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ status: 'ok', max: 10, circuit: 'closed', waiting: 0 });

    run.child.kill('SIGTERM');
    expect(await run.exited, run.stderr()).toBe(0);
    expect(run.stdout()).toContain('shutting down (SIGTERM)');
    expect(run.stdout()).toContain('pool closed');
    expect(run.stdout()).toContain('server closed');
  });

  it('answers /now and /ready with 503 while the database is unreachable', async () => {
    const port = await freePort(); // nothing listens there
    const run = start('http-service.mjs', [], { DATABASE_URL: `postgres://nobody:secret@127.0.0.1:${port}/nowhere`, PORT: '0' });
    const base = await listening(run);

    const now = await get(`${base}/now`); // fails within acquireTimeoutMs (2 s)
    expect(now.status).toBe(503);
    expect(now.json.error).toMatchObject({ code: 'POOL_ACQUIRE_TIMEOUT' });
    const ready = await get(`${base}/ready`);
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ status: 'down', size: 0 });
    expect(ready.json.lastError).toMatchObject({ code: 'ECONNREFUSED' });

    run.child.kill('SIGINT');
    expect(await run.exited, run.stderr()).toBe(0);
    expect(run.stdout()).toContain('shutting down (SIGINT)');
  });
});

describe('examples/otel-console.mjs', () => {
  it('exports the db.client.connection.* metrics through the console exporter and exits 0', async () => {
    const { code, stdout, stderr } = await runToEnd('otel-console.mjs', [], { DATABASE_URL: db.url });
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
    for (const name of [
      'db.client.connection.count',
      'db.client.connection.max',
      'db.client.connection.idle.min',
      'db.client.connection.pending_requests',
      'db.client.connection.create_time',
      'db.client.connection.wait_time',
      'db.client.connection.use_time',
    ]) {
      expect(stdout).toContain(`'${name}'`);
    }
    expect(stdout).toContain("'db.client.connection.pool.name': 'example'");
    expect(stdout).toMatch(/sessions of this pool on the server: [1-4]\n/);
    expect(stdout).toContain('done');
  });
});

// The ORM examples do the same small job, each through its ORM on lifeguard/pg's Pool, and
// print the same lines.
function expectLedger(orm: string, { code, stdout, stderr }: { code: number | null; stdout: string; stderr: string }): void {
  expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
  expect(stdout).toContain(`table lifeguard_example_${orm}_account created with alice=100 bob=100`);
  expect(stdout).toMatch(/^transfer alice -> bob 30: committed$/m);
  // The CHECK (balance >= 0) refused the second transfer's first UPDATE: check_violation.
  expect(stdout).toMatch(/^transfer alice -> bob 500: rolled back \(23514\)$/m);
  expect(stdout).toMatch(/^balances: alice=70 bob=130$/m);
  // queryTimeoutMs (500 ms) stopped pg_sleep(10).
  const slow = /^slow query stopped after (\d+) ms: (.*)$/m.exec(stdout);
  expect(slow, stdout).not.toBeNull();
  expect(Number(slow![1])).toBeLessThan(3000);
  expect(slow![2]).toMatch(/timeout/i);
  // That query's connection was destroyed, not handed out again.
  const stats = /^pool: (\{.*\})$/m.exec(stdout);
  expect(stats, stdout).not.toBeNull();
  expect(JSON.parse(stats![1]!)).toMatchObject({ destroyed: expect.any(Number), acquired: expect.any(Number) });
  expect(JSON.parse(stats![1]!).destroyed).toBeGreaterThanOrEqual(1);
  expect(stdout).toMatch(/^done \(pool ended: true\)$/m);
}

async function expectNoSession(app: string): Promise<void> {
  const { rows } = await db.admin<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [app]);
  expect(rows[0]!.n, `sessions of ${app} left on the server`).toBe(0);
}

describe('examples/orm-*.mjs: each ORM on lifeguard/pg', () => {
  for (const orm of ['kysely', 'drizzle', 'knex', 'typeorm']) {
    it(`orm-${orm}.mjs runs its ledger and exits 0 by itself`, async () => {
      expectLedger(orm, await runToEnd(`orm-${orm}.mjs`, [], { DATABASE_URL: db.url }));
      await expectNoSession(`lifeguard-example-${orm}`);
    });
  }

  it('orm-prisma.mjs (after prisma generate) runs its ledger and exits 0 by itself', async () => {
    await prismaGenerate(join(EXAMPLES, 'prisma/schema.prisma'));
    expectLedger('prisma', await runToEnd('orm-prisma.mjs', [], { DATABASE_URL: db.url }));
    await expectNoSession('lifeguard-example-prisma');
  }, 90_000);

  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  it.runIf(major > 22 || (major === 22 && minor >= 17))('orm-mikroorm.mjs (MikroORM 7: Node >= 22.17) runs its ledger and exits 0 by itself', async () => {
    expectLedger('mikroorm', await runToEnd('orm-mikroorm.mjs', [], { DATABASE_URL: db.url }));
    await expectNoSession('lifeguard-example-mikroorm');
  });
});
