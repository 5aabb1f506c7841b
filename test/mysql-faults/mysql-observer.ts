// What the MySQL fault files share (test/mysql-faults, on a private MariaDB from useMariaDb()):
// the generic PoolObserver (test/support/fault-observer.ts) bound to a lifeguard/mysql pool
// that logs in as its own MySQL user, so PROCESSLIST counts its sessions exactly (I2, I5,
// I6), and isConnectionFatal of lifeguard/mysql decides when run() destroys a lease.
//
// The pool settings mirror test/faults (BASE in lifecycle.ts): I7's bound, retry.maxTimeoutMs
// + createTimeoutMs + 500 ms, is 2 s. The load is heavier: 40 workers on max 10.
import type { Connection } from 'mysql2/promise';
import { afterEach, expect } from 'vitest';
import { createMysqlPool, isConnectionFatal, type MysqlPool, type MysqlPoolConfig } from '../../src/adapters/mysql/index.js';
import { PoolError } from '../../src/index.js';
import { randomBytes } from 'node:crypto';
import type { Account, TestMariaDb } from '../mysql/harness.js';
import { startMariaDb, type MariaDb, type MariaDbOptions } from '../support/mariadb.js';
import { codes, round } from '../support/fault-metrics.js';
import { PoolObserver, type FaultMark, type OpRecord } from '../support/fault-observer.js';

export const MAX = 10;
/** Concurrent workers of the background load (4x max). */
export const WORKERS = 40;
export const BASE = { max: MAX, acquireTimeoutMs: 2000, createTimeoutMs: 500, retry: { minTimeoutMs: 100, maxTimeoutMs: 1000 } } as const;
/** I7: the first acquire + SELECT 1 after the fault is removed succeeds within this. */
export const I7_MS = 2000;

export type MysqlObserver = PoolObserver<Connection>;

export interface Observed {
  readonly pool: MysqlPool;
  readonly obs: MysqlObserver;
  readonly account: Account;
}

export type PoolSettings = Omit<MysqlPoolConfig, 'host' | 'port' | 'user' | 'password' | 'database' | 'uri'> & { readonly max: number; readonly acquireTimeoutMs: number };

/** The server a pool under test logs in to: the file's (useMariaDb()) unless a test starts its own. */
export type Target = Pick<TestMariaDb, 'connection' | 'sessions' | 'user'>;

export interface MysqlFaults {
  /** A MySQL user for one pool (made while the server is up). */
  account(label: string): Promise<Account>;
  /** A pool logging in as `account` (a new user unless given) under a sampling observer; finished and closed after the test. */
  observed(label: string, settings: PoolSettings, extra?: { account?: Account; sessionSlack?: number; target?: Target }): Promise<Observed>;
}

/** Once per file, after useMariaDb(): the helpers above, and the afterEach that stops and closes what they made. */
export function useMysqlFaults(db: TestMariaDb): MysqlFaults {
  const live: Observed[] = [];
  afterEach(async () => {
    for (const { obs, pool } of live.splice(0)) {
      await obs.finish();
      await pool.close({ timeoutMs: 2000 }).catch(() => {});
    }
  });
  const account = (label: string): Promise<Account> => db.user(label);
  return {
    account,
    async observed(label, settings, extra = {}) {
      const target = extra.target ?? db;
      const acc = extra.account ?? (await target.user(label));
      const pool = createMysqlPool({ ...target.connection(acc), ...settings });
      const obs = new PoolObserver<Connection>(pool, {
        max: settings.max,
        acquireTimeoutMs: settings.acquireTimeoutMs,
        serverSessions: () => target.sessions(acc.user),
        ...(extra.sessionSlack === undefined ? {} : { sessionSlack: extra.sessionSlack }),
        isFatal: isConnectionFatal,
      }).start();
      const observed = { pool, obs, account: acc };
      live.push(observed);
      return observed;
    },
  };
}

/** Background work: SELECT 1 and SELECT SLEEP(0.05), alternately. */
export function backgroundWork(): (c: Connection) => Promise<unknown> {
  let n = 0;
  return (c) => (n++ % 2 === 0 ? c.query('SELECT 1') : c.query('SELECT SLEEP(0.05)'));
}

/** `code`, else `errno`, else the name: how a failure is counted in the results lines. */
function kindOf(error: unknown): string {
  const e = error as { code?: unknown; errno?: unknown; name?: unknown };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.errno === 'number') return String(e.errno);
  return typeof e.name === 'string' ? e.name : typeof error;
}

/**
 * I8 for MySQL: every failure is either a typed pool error (PoolError: acquire timeout,
 * circuit open, query timeout) or the driver's own error for a connection the fault cut
 * (connection-fatal by isConnectionFatal, errno/code intact). Returns the failures counted
 * by "kind<-cause kinds" and up to 5 that are neither.
 */
export function classifyFailures(records: readonly OpRecord[]): { byKind: Record<string, number>; untyped: string[] } {
  const byKind: Record<string, number> = {};
  const untyped: string[] = [];
  for (const r of records) {
    if (r.error === undefined) continue;
    const chain = codes(r.error);
    const key = r.error instanceof PoolError ? `${kindOf(r.error)}<-${chain.slice(1).join('<-') || ((r.error as { cause?: unknown }).cause === undefined ? '-' : kindOf((r.error as { cause?: unknown }).cause))}` : kindOf(r.error);
    byKind[key] = (byKind[key] ?? 0) + 1;
    if (!(r.error instanceof PoolError) && !isConnectionFatal(r.error) && untyped.length < 5) untyped.push(`${String((r.error as Error).name)} ${kindOf(r.error)}: ${(r.error as Error).message}`);
  }
  return { byKind, untyped };
}

/** The failures of `obs` whose operation started in [from, to), classified. */
export function failuresBetween(obs: MysqlObserver, from: number, to = Infinity): { count: number; byKind: Record<string, number>; untyped: string[] } {
  const failed = obs.failures(from, to);
  return { count: failed.length, ...classifyFailures(failed) };
}

/** One line of measured figures per scenario, for the report: `[mysql-faults] label {...}`. */
export function results(label: string, figures: Record<string, unknown>): void {
  console.log(`[mysql-faults] ${label} ${JSON.stringify(figures)}`);
}

/** Milliseconds from the fault's start to its end, rounded. */
export const faultMs = (fault: FaultMark): number => round((fault.endedAt ?? performance.now()) - fault.at);

/** The PROCESSLIST id of a pooled connection. */
export const threadIdOf = (c: Connection): number => {
  const id = c.threadId;
  expect(id, 'a connected mysql2 connection has a thread id').toBeTypeOf('number');
  return id!;
};

/**
 * A private MariaDB of the test's own, for settings the file's server cannot take at run time
 * (e.g. --max-user-connections, which SET GLOBAL refuses to change from 0): the handle (tear
 * it down after the test) and a Target for `observed()`.
 */
export async function ownServer(options: MariaDbOptions): Promise<{ server: MariaDb; target: Target }> {
  const server = await startMariaDb(options);
  let n = 0;
  const target: Target = {
    connection: (account) => ({ host: server.host, port: server.port, user: account?.user ?? server.user, password: account?.password ?? server.password, database: server.database }),
    sessions: (user) => server.connectionsOf(user),
    async user(label) {
      const user = `lg${++n}_${label.replace(/[^a-z0-9]/gi, '')}`.slice(0, 32);
      const password = randomBytes(12).toString('hex');
      await server.createUser(user, password, [`ALL ON \`${server.database}\`.*`]);
      return { user, password };
    },
  };
  return { server, target };
}
