// node-postgres' own pg-pool test suite, run against lifeguard/pg (issue 12): the suite's files
// (test/pg-pool-suite/test, vendored unmodified; see its README.md) run under mocha in a child
// process, `require('../')` giving them lifeguard's Pool from the built package, on this
// file's PostgreSQL (the PG* variables, which the suite's `new Pool()` reads). Every test
// passes but those listed in test/pg-pool-suite/excluded.json, and each listed test is run on
// its own to show it still fails, so the list cannot rot.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usePostgres } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SUITE = join(ROOT, 'test/pg-pool-suite');
const MOCHA = join(dirname(createRequire(import.meta.url).resolve('mocha/package.json')), 'bin/mocha.js');
const SPEC = 'test/*.js';

/** Bounds on one mocha process: the whole suite, and one excluded test on its own (mocha's own per-test timeout is upstream's 2 s). */
const SUITE_BOUND_MS = 150_000;
const SINGLE_BOUND_MS = 45_000;
/** After its last test, the suite's process must exit on its own this soon: no pool may keep it alive. */
const EXIT_AFTER_END_MS = 5_000;

interface Exclusion {
  readonly test: string;
  readonly file: string;
  readonly kind: 'internals' | 'mock-client' | 'guarantee' | 'timing';
  readonly outcome: 'fails' | 'varies';
  readonly reason: string;
}
interface ExclusionList {
  readonly upstream: { readonly repository: string; readonly commit: string; readonly path: string };
  readonly excluded: readonly Exclusion[];
  readonly pendingUpstream: readonly { readonly test: string; readonly file: string; readonly reason: string }[];
}
const LIST = JSON.parse(readFileSync(join(SUITE, 'excluded.json'), 'utf8')) as ExclusionList;

/** One line of test/pg-pool-suite/reporter.js. */
interface Line {
  event: 'start' | 'begin' | 'pass' | 'fail' | 'pending' | 'end';
  title?: string;
  file?: string;
  type?: 'test' | 'hook';
  error?: string;
  at?: number;
}

interface Run {
  /** Every test that began, in order, with its file. */
  readonly began: Map<string, string>;
  readonly passed: Set<string>;
  /** Test or hook title -> first error line. A test can fail after it passed (an error after its end). */
  readonly failed: Map<string, string>;
  /** Pending tests (no 'begin' event), title -> file. */
  readonly pending: Map<string, string>;
  /** Began but neither passed nor failed: the process died during it (setup.js exits on an unhandled rejection). */
  readonly unfinished: string[];
  /** When the reporter saw the run end (Date.now() in the child), if it did. */
  readonly endedAt: number | undefined;
  readonly exitedAt: number;
  readonly exitCode: number | null;
  readonly killed: boolean;
  readonly output: string;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const anyOf = (titles: readonly string[]): string => `^(?:${titles.map(escape).join('|')})$`;

const scratch = mkdtempSync(join(tmpdir(), 'lifeguard-pg-pool-suite-'));
let runs = 0;

/** Run mocha on the vendored suite with `args`, bounded by `boundMs` (then killed), and read its reporter's lines. */
function mocha(args: readonly string[], env: NodeJS.ProcessEnv, boundMs: number): Promise<Run> {
  const report = join(scratch, `run-${++runs}.jsonl`);
  const child = spawn(process.execPath, [MOCHA, '--no-config', '--reporter', './reporter.js', '--reporter-option', `output=${report}`, ...args, SPEC], {
    cwd: SUITE,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, boundMs);
  return new Promise<Run>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => {
      const exitedAt = Date.now();
      clearTimeout(timer);
      let text = '';
      try {
        text = readFileSync(report, 'utf8');
      } catch {
        // No report at all: mocha died before its reporter started; `output` says why.
      }
      const lines = text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Line);
      const began = new Map<string, string>();
      const passed = new Set<string>();
      const failed = new Map<string, string>();
      const pending = new Map<string, string>();
      let endedAt: number | undefined;
      for (const line of lines) {
        const title = line.title ?? '';
        if (line.event === 'begin') began.set(title, line.file ?? '');
        else if (line.event === 'pass') passed.add(title);
        else if (line.event === 'fail') failed.set(title, failed.get(title) ?? `${line.type === 'hook' ? '[hook] ' : ''}${line.error}`);
        else if (line.event === 'pending') pending.set(title, line.file ?? '');
        else if (line.event === 'end') endedAt = line.at;
      }
      for (const title of failed.keys()) passed.delete(title);
      const unfinished = [...began.keys()].filter((title) => !passed.has(title) && !failed.has(title));
      resolve({ began, passed, failed, pending, unfinished, endedAt, exitedAt, exitCode, killed, output });
    });
  });
}

/** Map settled with at most `limit` promises in flight. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The suite tests the package users install: refuse a build that is missing or older than the sources. */
function checkBuilt(): void {
  let built: number;
  try {
    // The file test/pg-pool-suite/index.js loads: `require('lifeguard/pg')` through the exports map.
    built = statSync(createRequire(join(ROOT, 'package.json')).resolve('lifeguard/pg')).mtimeMs;
  } catch (error) {
    throw new Error(`lifeguard/pg does not resolve to a built file (${String(error)}): run \`npm run build\` first (the pg-pool suite tests the built package)`);
  }
  const sources = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
  const stale = sources.find((file) => statSync(join(ROOT, 'src', file)).mtimeMs > built);
  if (stale !== undefined) throw new Error(`src/${stale} is newer than the build: run \`npm run build\` first (the pg-pool suite tests the built package)`);
}

const db = usePostgres();
let env: NodeJS.ProcessEnv;
/** Every test of the suite (mocha --dry-run), title -> file. */
let all: Map<string, string>;

beforeAll(async () => {
  checkBuilt();
  // Only this file's server: no PG* setting of the caller's (PGSSLMODE, PGAPPNAME, …) leaks in.
  const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith('PG') && key !== 'DATABASE_URL' && key !== 'NODE_OPTIONS');
  env = {
    ...Object.fromEntries(inherited),
    PGHOST: db.host,
    PGPORT: String(db.port),
    PGUSER: db.user,
    PGPASSWORD: db.password,
    PGDATABASE: db.database,
  };
  const listing = await mocha(['--dry-run'], env, SINGLE_BOUND_MS);
  expect(listing.exitCode, listing.output).toBe(0);
  all = listing.began;
  for (const [title, file] of listing.pending) all.set(title, file);
}, SINGLE_BOUND_MS + 5_000);

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe(`node-postgres' pg-pool test suite (${LIST.upstream.commit.slice(0, 12)}) against lifeguard/pg`, () => {
  it('excluded.json names tests of the suite, each once, with its file, a kind and a reason', () => {
    const titles = LIST.excluded.map((entry) => entry.test);
    expect(new Set(titles).size).toBe(titles.length);
    for (const entry of LIST.excluded) {
      expect(all.get(entry.test), `excluded test not in the suite: ${entry.test}`).toBe(entry.file);
      expect(['internals', 'mock-client', 'guarantee', 'timing']).toContain(entry.kind);
      expect(['fails', 'varies']).toContain(entry.outcome);
      expect(entry.reason.length).toBeGreaterThan(40);
    }
    for (const entry of LIST.pendingUpstream) expect(all.get(entry.test), `pending test not in the suite: ${entry.test}`).toBe(entry.file);
    expect(all.size).toBeGreaterThan(LIST.excluded.length + LIST.pendingUpstream.length);
  });

  it('every test passes but the excluded ones, and the process then exits on its own', async () => {
    const run = await mocha(['--grep', anyOf(LIST.excluded.map((entry) => entry.test)), '--invert'], env, SUITE_BOUND_MS);
    const failures = [...run.failed].map(([title, error]) => `${title}: ${error}`);
    const diagnosis = `mocha output (tail):\n${run.output.slice(-4_000)}`;
    expect(run.killed, `the suite did not finish within ${SUITE_BOUND_MS} ms\n${diagnosis}`).toBe(false);
    expect({ failures, unfinished: run.unfinished }, diagnosis).toEqual({ failures: [], unfinished: [] });

    const excluded = new Set(LIST.excluded.map((entry) => entry.test));
    const pendingUpstream = LIST.pendingUpstream.map((entry) => entry.test);
    const expected = [...all.keys()].filter((title) => !excluded.has(title) && !pendingUpstream.includes(title));
    expect([...run.passed].sort()).toEqual(expected.sort());
    // Pending upstream too (it(title, false, fn)): listed, so a test mocha skips cannot hide here.
    expect([...run.pending.keys()].sort()).toEqual([...pendingUpstream].sort());
    expect(run.exitCode, diagnosis).toBe(0);
    expect(run.endedAt, diagnosis).toBeDefined();
    expect(run.exitedAt - run.endedAt!, 'ms from the last test to the exit of the suite process').toBeLessThan(EXIT_AFTER_END_MS);

    console.log(
      `[pg-pool suite] ${LIST.upstream.repository} ${LIST.upstream.path} @ ${LIST.upstream.commit.slice(0, 12)}: ` +
        `${all.size} tests, ${run.passed.size} run and passed, ${excluded.size} excluded, ${run.pending.size} pending upstream; ` +
        `the process exited ${run.exitedAt - run.endedAt!} ms after its last test`,
    );
  }, SUITE_BOUND_MS + 10_000);

  it('every excluded test run on its own still fails (those marked "varies" still run)', async () => {
    // --exit: an excluded test may leave a pool retrying its connects; only its outcome matters here.
    const outcomes = await mapLimited(LIST.excluded, 4, async (entry) => ({ entry, run: await mocha(['--grep', anyOf([entry.test]), '--exit'], env, SINGLE_BOUND_MS) }));
    const seen = outcomes.map(({ entry, run }) => {
      const ran = run.began.has(entry.test) && run.began.size === 1;
      const failed = run.failed.has(entry.test) || run.unfinished.includes(entry.test);
      const result = !ran ? 'did not run' : failed ? 'failed' : 'passed';
      console.log(`[pg-pool suite] excluded (${entry.kind}): ${entry.test}: ${result}${failed ? ` (${run.failed.get(entry.test) ?? 'the process died during it'})` : ''}`);
      return { test: entry.test, result: entry.outcome === 'varies' && ran ? 'ran' : result };
    });
    expect(seen).toEqual(LIST.excluded.map((entry) => ({ test: entry.test, result: entry.outcome === 'varies' ? 'ran' : 'failed' })));
  }, Math.ceil(LIST.excluded.length / 4) * SINGLE_BOUND_MS + 10_000);
});
