// What the fault files injecting with SQL share (server-kills, server-sessions, server-refusals:
// FAULTS.md §3 A, F1–F9): observed pools stopped and closed after each test, LOGIN roles made for
// one test and dropped after it, pg_terminate_backend on a pool's sessions, and the borrowed
// client a test breaks.
//
// Role-level settings (idle timeouts, CONNECTION LIMIT, PASSWORD) need a role the pool logs in
// as: the test user is a superuser, which CONNECTION LIMIT ignores. Each such test creates its
// own LOGIN role; afterEach terminates its sessions and drops it.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterEach } from 'vitest';
import type { PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import type { Lease } from '../../src/index.js';
import { pidOf, type TestDatabase, type TestPool, waitFor } from '../integration/harness.js';
import type { Observer } from './observer.js';
import { ACQUIRE_TIMEOUT_MS, MAX, observedPool } from './scenarios.js';

export interface Harnessed {
  readonly pool: TestPool;
  readonly obs: Observer;
}

export interface SqlFaults {
  /** A pool (max 5, acquire 3 s unless given) under an Observer that is already sampling; stopped and closed after the test. */
  harness(options?: PostgresPoolConfig): Harnessed;
  /** A LOGIN role for this test only; dropped (its sessions terminated first) after it. */
  createRole(label: string, extra?: string): Promise<{ user: string; password: string }>;
  /** Terminate the pool's backends (only those in state 'idle' when asked); the PIDs that were signalled. */
  terminate(app: string, onlyIdle: boolean): Promise<number[]>;
}

/** Once per file, next to usePostgres(): the helpers above, and the afterEach that cleans up after them. */
export function useSqlFaults(db: TestDatabase): SqlFaults {
  /** Observers of the running test: stopped (loads, samplers) and their pools closed after it, even when it failed midway. */
  const observers: Observer[] = [];
  const roles: string[] = [];

  afterEach(async () => {
    for (const obs of observers.splice(0)) {
      await obs.finish();
      await obs.pool.close({ timeoutMs: 2000 });
    }
    for (const role of roles.splice(0)) {
      await db.admin('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
      await waitFor(`sessions of ${role} to end`, async () => (await db.admin<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [role])).rows[0]!.n === 0, {
        timeoutMs: 5000,
      });
      await db.admin(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  function harness(options: PostgresPoolConfig = {}): Harnessed {
    const { pool, obs } = observedPool(db, { max: MAX, ...options, acquireTimeoutMs: options.acquireTimeoutMs ?? ACQUIRE_TIMEOUT_MS });
    observers.push(obs);
    return { pool, obs };
  }

  async function createRole(label: string, extra = ''): Promise<{ user: string; password: string }> {
    const user = `lg_${label}_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await db.admin(`CREATE ROLE ${user} LOGIN PASSWORD '${password}' ${extra}`);
    roles.push(user);
    return { user, password };
  }

  async function terminate(app: string, onlyIdle: boolean): Promise<number[]> {
    const { rows } = await db.admin<{ pid: number; ok: boolean }>(
      `SELECT pid, pg_terminate_backend(pid) AS ok FROM pg_stat_activity
      WHERE application_name = $1 AND backend_type = 'client backend'${onlyIdle ? " AND state = 'idle'" : ''}`,
      [app],
    );
    return rows.filter((r) => r.ok).map((r) => r.pid);
  }

  return { harness, createRole, terminate };
}

/** A lease the test is about to break from the server side, with what it checks afterwards. */
export interface Victim {
  readonly lease: Lease<pg.Client>;
  readonly victim: pg.Client;
  readonly leasedAt: number;
  /** Its backend's PID, to kill or watch it. */
  readonly pid: number;
  /** destroyedByReason.broken before anything happened to it. */
  readonly brokenBefore: number;
}

/** Acquire the client a test will break (F2, F4). */
export async function borrowVictim(pool: TestPool): Promise<Victim> {
  const lease = await pool.acquire();
  const victim = lease.resource;
  const leasedAt = performance.now();
  const pid = pidOf(victim);
  const brokenBefore = pool.stats().destroyedByReason.broken;
  return { lease, victim, leasedAt, pid, brokenBefore };
}
