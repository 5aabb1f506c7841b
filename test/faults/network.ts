// What the network fault files (network-*.test.ts, FAULTS.md §3 C, F16–F25) share: a pool
// routed through an in-process ChaosProxy to the file's PostgreSQL under an Observer, the
// clean-ups run after each test, and small readings of pg clients.
import { createHash } from 'node:crypto';
import type net from 'node:net';
import type pg from 'pg';
import { afterEach } from 'vitest';
import type { PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import type { TestDatabase, TestPool } from '../integration/harness.js';
import { ChaosProxy } from '../support/chaos-proxy.js';
import type { Observer } from './observer.js';
import { ACQUIRE_TIMEOUT_MS, MAX, observedPool } from './scenarios.js';

export const CREATE_TIMEOUT_MS = 1000;

export interface Harnessed {
  readonly proxy: ChaosProxy;
  readonly pool: TestPool;
  readonly obs: Observer;
}

export interface ProxiedPools {
  /** Run after the test (in reverse order), whether it passed or not. */
  readonly cleanups: (() => Promise<unknown>)[];
  /** A ChaosProxy in front of the file's server, closed after the test. */
  startProxy(options?: { host?: string; port?: number }): Promise<ChaosProxy>;
  /** pool (max 5, acquire 3 s, create 1 s unless given) → proxy (a new one unless given) → PostgreSQL, under an Observer already sampling. */
  harness(options?: PostgresPoolConfig, proxy?: ChaosProxy): Promise<Harnessed>;
}

/** Once per network fault file, next to usePostgres(): pools through a chaos proxy, and an afterEach running the clean-ups. */
export function useProxiedPools(db: TestDatabase): ProxiedPools {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => console.warn(`[faults] clean-up failed: ${String(error)}`));
  });

  async function startProxy(options: { host?: string; port?: number } = {}): Promise<ChaosProxy> {
    const proxy = await ChaosProxy.start({ upstreamHost: db.host, upstreamPort: db.port, ...options });
    cleanups.push(() => proxy.close());
    return proxy;
  }

  async function harness(options: PostgresPoolConfig = {}, proxy?: ChaosProxy): Promise<Harnessed> {
    const through = proxy ?? (await startProxy());
    const { pool, obs } = observedPool(db, {
      host: through.host,
      port: through.port,
      createTimeoutMs: CREATE_TIMEOUT_MS,
      max: MAX,
      ...options,
      acquireTimeoutMs: options.acquireTimeoutMs ?? ACQUIRE_TIMEOUT_MS,
    });
    return { proxy: through, pool, obs };
  }

  return { cleanups, startProxy, harness };
}

/** The client's socket (the TLS socket once upgraded). */
export function streamOf(client: pg.Client): net.Socket {
  return (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
}

/** A digest of a query result, to compare results byte for byte. */
export function sha256(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** To 0.1, for the figures printed. */
export const round = (n: number): number => Math.round(n * 10) / 10;
