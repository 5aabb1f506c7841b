// `npm run demo` (scripts/demo.mjs) end to end: it starts its own embedded PostgreSQL, runs
// the workload through every fault and exits 0 with its summary; on SIGINT it stops cleanly
// (exit 130) and a second SIGINT forces the exit; in every case no server process and no
// temporary directory is left behind.
//
// The demo runs from dist/ (`npm test` builds it first). DATABASE_URL is removed from its
// environment so it always uses (and can fault) a server of its own.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'demo.mjs');
const FAULTS = ['terminate', 'stall', 'restart', 'freeze', 'spike', 'squeeze', 'failover'];
/** One plain status line (stdout is a pipe, so no ANSI refresh). */
const LIVE_LINE =
  /^\[\s*\d+\.\ds\] \d+ ops\/s ok=\d+ failed=\d+ \| wait p99 \S+ ms \(1 s\) \S+ ms \(all\) \| pool size=\d+ idle=\d+ leased=\d+ waiting=\d+ creating=\d+ circuit=\S+ \| health (ok|degraded|down|closed)\b.* \| errors .* \| fault .+$/gm;

interface Run {
  readonly pid: number;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout matches `pattern` (rejects after timeoutMs or if the demo exits first). */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void>;
  kill(signal: NodeJS.Signals): void;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runDemo(args: string[]): Run {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  delete env.NO_COLOR;
  const child = spawn(process.execPath, [SCRIPT, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const listener of listeners) listener();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const listener of listeners) listener();
  });
  return {
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: (signal) => child.kill(signal),
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`no ${pattern} within ${timeoutMs} ms; output so far:\n${out}\n${err}`)), timeoutMs);
        const check = (): void => {
          if (pattern.test(out)) finish();
          else if (done) finish(new Error(`the demo exited before printing ${pattern}; output:\n${out}\n${err}`));
        };
        const finish = (error?: Error): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** Kill the demo and its server if a test failed half-way (never leave a cluster running). */
async function reap(run: Run): Promise<void> {
  const result = await Promise.race([run.exited, new Promise((resolve) => setTimeout(() => resolve(undefined), 100))]);
  if (result !== undefined) return;
  run.kill('SIGINT');
  run.kill('SIGINT');
  await Promise.race([run.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
}

/** Command lines of every process we can see: pid -> argv joined by spaces. */
function commandLines(): Map<number, string> {
  const lines = new Map<number, string>();
  if (existsSync('/proc/self/cmdline')) {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        lines.set(Number(name), readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' '));
      } catch {
        // Gone while we looked.
      }
    }
    return lines;
  }
  for (const line of execFileSync('ps', ['-A', '-o', 'pid=', '-o', 'args='], { encoding: 'utf8' }).split('\n')) {
    const match = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (match) lines.set(Number(match[1]), match[2]!);
  }
  return lines;
}

/** Still running: a zombie (exited, waiting for init to reap it) does not count. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** What the demo left behind: its data directory, processes naming it, postmaster pids still alive. */
async function leftovers(stdout: string): Promise<{ dir: string | undefined; dirExists: boolean; processes: string[]; postmasters: number[] }> {
  const dir = /data in (\S+lifeguard-demo-\w+)/.exec(stdout)?.[1];
  // "postmaster pid N" in the header, "postmaster pid N -> M" after the restart.
  const pids = [...stdout.matchAll(/postmaster pid (\d+)(?: -> (\d+))?/g)].flatMap((m) => [m[1], m[2]]).filter((p) => p !== undefined).map(Number);
  // A server stopping is gone within moments of the demo's exit; give it a second.
  for (let i = 0; i < 20; i++) {
    if (!pids.some(alive) && (dir === undefined || ![...commandLines().values()].some((line) => line.includes(dir)))) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    dir,
    dirExists: dir !== undefined && existsSync(dir),
    processes: dir === undefined ? [] : [...commandLines()].filter(([pid, line]) => pid !== process.pid && line.includes(dir)).map(([pid, line]) => `${pid}: ${line}`),
    postmasters: pids.filter(alive),
  };
}

/** SIGINT, then: exit 130 after a partial summary (bank intact, pool closed with no session left), nothing left behind. */
async function expectCleanInterrupt(run: Run): Promise<void> {
  run.kill('SIGINT');
  const { code, signal } = await run.exited;
  const out = run.stdout();
  const context = `stdout:\n${out}\nstderr:\n${run.stderr()}`;
  expect({ code, signal }, context).toEqual({ code: 130, signal: null });
  expect(out).toMatch(/^SIGINT received: stopping/m);
  expect(out, context).toMatch(/^=== summary =+$/m);
  expect(out).toMatch(/^run .* \(INTERRUPTED by SIGINT at \d+\.\ds\)/m);
  expect(out).toMatch(/^ {2}ok {3}total balance 100000 = 100000/m);
  expect(out).toMatch(/^close {6}closed in [\d.]+ ms; size 0; server sessions of lifeguard-demo-\S+: 0$/m);
  expect(out).toMatch(/^cleanup {4}done: /m);
  expect(out).toMatch(/^interrupted by SIGINT: exit 130$/m);
  // A standby's data directory is inside the demo's, and its postmaster pid is among those checked.
  const left = await leftovers(out);
  expect(left.dir).toBeDefined();
  expect(left).toMatchObject({ dirExists: false, processes: [], postmasters: [] });
}

describe('npm run demo (scripts/demo.mjs)', () => {
  it('needs the build', () => {
    expect(existsSync(join(ROOT, 'dist', 'adapters', 'postgres', 'index.js')), 'dist/ is missing: run `npm run build` (npm test does)').toBe(true);
  });

  it('runs every fault under load, prints live lines and the summary, exits 0 and leaves nothing behind', async () => {
    const run = runDemo(['--duration', '12']);
    try {
      const { code, signal } = await run.exited;
      const out = run.stdout();
      const context = `stdout:\n${out}\nstderr:\n${run.stderr()}`;
      expect({ code, signal }, context).toEqual({ code: 0, signal: null });
      // stdout is a pipe: plain lines, one per second, no cursor movement.
      expect(out, 'no ANSI escapes on a pipe').not.toMatch(/\x1b\[/);
      const live = out.match(LIVE_LINE) ?? [];
      expect(live.length, `live status lines\n${context}`).toBeGreaterThanOrEqual(8);
      for (const [i, name] of FAULTS.entries()) {
        expect(out, `fault ${name} injected`).toMatch(new RegExp(`^\\[fault ${i + 1}/${FAULTS.length}\\] ${name} at \\d+\\.\\ds: `, 'm'));
        expect(out, `fault ${name} removed without an injection failure`).toMatch(new RegExp(`^\\[fault ${i + 1}/${FAULTS.length}\\] ${name}: removed after [\\d.]+ ms \\(`, 'm'));
        expect(out, `fault ${name} in the summary table, with a recovery time`).toMatch(new RegExp(`^  ${name}\\s+\\d+\\.\\ds\\s+[\\d.]+ms\\s+\\d+\\s+\\d+\\s+\\d+\\s+\\d+ \\s+[\\d.]+ms  `, 'm'));
      }
      expect(out).toMatch(/^=== summary =+$/m);
      // The traffic spike's own requests: goodput while offered load is well above capacity.
      expect(out).toMatch(/^spike {6}\d+ requests in [\d.]+ s \(\d+\/s, capacity \d+\/s\): goodput \d+\/s = \d+ % of capacity .* shed fast \(PoolOverloadedError, p50 /m);
      // The failover, last: a standby started beside the primary, the primary crashed, the standby promoted; writes resume on it.
      expect(out).toMatch(/^ {2}standby started on 127\.0\.0\.1:\d+ \(standby postmaster pid \d+\) .* streaming synchronously/m);
      expect(out).toMatch(
        /^failover {3}primary killed \(\d+ processes\); standby promoted \d+ ms later, pg_promote took \d+ ms; first transfer committed on the new primary -?\d+ ms after pg_promote was called: writes were out for \d+ ms from the crash; \d+ operation\(s\) failed for it/m,
      );
      expect(out).toMatch(/^operations \d+ settled: \d+ ok, \d+ failed .*; 0 unsettled$/m);
      expect(out).toMatch(/^ {2}ok {3}total balance 100000 = 100000/m);
      expect(out).toMatch(/^ {2}ok {3}all \d+ acknowledged transfers are in the ledger/m);
      expect(out).toMatch(/^close {6}closed in [\d.]+ ms; size 0; server sessions of lifeguard-demo-\S+: 0$/m);
      expect(out).toMatch(/^verdict {4}PASS: /m);
      expect(out).toMatch(/^cleanup {4}done: .*server stopped, \S+ removed$/m);
      const left = await leftovers(out);
      expect(left.dir, 'the demo names its data directory').toBeDefined();
      expect(left).toMatchObject({ dirExists: false, processes: [], postmasters: [] });
    } finally {
      await reap(run);
    }
  }, 90_000);

  it('stops cleanly on SIGINT: partial summary, exit 130, server and directory gone', async () => {
    const run = runDemo(['--duration', '30']);
    try {
      // Interrupt about 4 s in: once the load runs (the first status line) and a little more.
      await run.waitFor(/^\[\s*\d+\.\ds\] /m, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await expectCleanInterrupt(run);
    } finally {
      await reap(run);
    }
  }, 90_000);

  it('stops cleanly on SIGINT during the failover phase: the standby is stopped and removed too', async () => {
    const run = runDemo(['--duration', '12']);
    try {
      await run.waitFor(/standby started on 127\.0\.0\.1:\d+ \(standby postmaster pid \d+\)/m, 80_000);
      await expectCleanInterrupt(run);
    } finally {
      await reap(run);
    }
  }, 90_000);

  it('a second SIGINT forces the exit at once, still killing the server and removing its directory', async () => {
    const run = runDemo(['--duration', '30']);
    try {
      await run.waitFor(/^\[\s*\d+\.\ds\] /m, 60_000);
      run.kill('SIGINT');
      await run.waitFor(/^SIGINT received/m, 10_000);
      run.kill('SIGINT');
      const { code, signal } = await run.exited;
      const out = run.stdout();
      expect({ code, signal }, `stdout:\n${out}\nstderr:\n${run.stderr()}`).toEqual({ code: 130, signal: null });
      const left = await leftovers(out);
      expect(left.dir).toBeDefined();
      expect(left).toMatchObject({ dirExists: false, processes: [], postmasters: [] });
    } finally {
      await reap(run);
    }
  }, 90_000);
});
