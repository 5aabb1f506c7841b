// node:diagnostics_channel events under lifeguard:* — names, payloads, and the pool they name.
import diagnostics from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { AcquireTimeoutError, CHANNELS, LeakDetectedError, type Pool } from '../../src/index.js';
import { createPostgresPool } from '../../src/adapters/postgres/index.js';
import { acquireNow, clock, fake, usePerTestPools } from '../support/harness.js';

const makePool = usePerTestPools({ keepaliveMs: Infinity, pingIfIdleMs: Infinity, retry: { randomize: false, minTimeoutMs: 100 } });

type Seen = { channel: string; message: Record<string, unknown> };
let seen: Seen[] = [];
const unsubscribers: (() => void)[] = [];

/** Record every lifeguard event that names `pool`. */
function listen(pool: Pool<unknown>): void {
  for (const name of Object.values(CHANNELS)) {
    const listener = (message: unknown): void => {
      if ((message as { pool?: unknown }).pool === pool) seen.push({ channel: name, message: message as Record<string, unknown> });
    };
    diagnostics.subscribe(name, listener);
    unsubscribers.push(() => diagnostics.unsubscribe(name, listener));
  }
}

afterEach(() => {
  for (const off of unsubscribers.splice(0)) off();
  seen = [];
});

const names = (): string[] => seen.map((s) => s.channel);

describe('diagnostics_channel events', () => {
  it('the channel names are the documented ones', () => {
    expect(Object.values(CHANNELS).sort()).toEqual(
      [
        'lifeguard:acquire:start',
        'lifeguard:acquire:end',
        'lifeguard:release',
        'lifeguard:create',
        'lifeguard:destroy',
        'lifeguard:timeout',
        'lifeguard:breaker:open',
        'lifeguard:breaker:close',
        'lifeguard:leak',
        'lifeguard:congestion',
      ].sort(),
    );
  });

  it('an acquire that creates, a release and a destroy: start, create, end with the wait, release with the lease time, destroy with the reason', async () => {
    const pool = makePool({ max: 1 });
    listen(pool as Pool<unknown>);
    fake.defaults.create = { kind: 'slow', ms: 30 };
    const acquiring = pool.acquire();
    await clock.advance(30);
    const lease = await acquiring;
    await clock.advance(20);
    await lease.release();
    const again = await acquireNow(pool);
    await again.destroy();
    expect(names()).toEqual([
      'lifeguard:acquire:start',
      'lifeguard:create',
      'lifeguard:acquire:end',
      'lifeguard:release',
      'lifeguard:acquire:start',
      'lifeguard:acquire:end',
      'lifeguard:release',
      'lifeguard:destroy',
    ]);
    expect(seen[1]!.message).toMatchObject({ attempt: 1, durationMs: 30 });
    expect(seen[1]!.message.error).toBeUndefined();
    expect(seen[2]!.message).toMatchObject({ waitMs: 30 });
    expect(seen[2]!.message.error).toBeUndefined();
    expect(seen[3]!.message).toMatchObject({ leaseMs: 20, destroyed: false });
    expect(seen[5]!.message).toMatchObject({ waitMs: 0 });
    expect(seen[6]!.message).toMatchObject({ destroyed: true });
    expect(seen[7]!.message).toMatchObject({ reason: 'user' });
  });

  it('a timeout publishes timeout and an acquire:end carrying the error; refused acquires end at once', async () => {
    const pool = makePool({ max: 1 });
    const held = await acquireNow(pool);
    listen(pool as Pool<unknown>);
    const waiting = pool.acquire({ timeoutMs: 50 }).catch((error: unknown) => error);
    await clock.advance(50);
    expect(await waiting).toBeInstanceOf(AcquireTimeoutError);
    const timeout = seen.find((s) => s.channel === 'lifeguard:timeout')!;
    expect(timeout.message.error).toBeInstanceOf(AcquireTimeoutError);
    const end = seen.find((s) => s.channel === 'lifeguard:acquire:end')!;
    expect(end.message).toMatchObject({ waitMs: 50 });
    expect(end.message.error).toBe(timeout.message.error);

    seen = [];
    const controller = new AbortController();
    controller.abort(new Error('gave up'));
    await pool.acquire({ signal: controller.signal }).catch(() => {});
    expect(names()).toEqual(['lifeguard:acquire:start', 'lifeguard:acquire:end']);
    expect((seen[1]!.message.error as Error).message).toBe('gave up');
    await held.release();
  });

  it('failed create attempts carry their error; the breaker announces opening (with the cause) and closing', async () => {
    const pool = makePool({ max: 1, circuitBreaker: { failureThreshold: 2, cooldownMs: 1000 } });
    listen(pool as Pool<unknown>);
    fake.defaults.create = { kind: 'fail' };
    const waiting = pool.acquire({ timeoutMs: 5000 }).catch((error: unknown) => error);
    await clock.advance(100);
    const creates = seen.filter((s) => s.channel === 'lifeguard:create');
    expect(creates).toHaveLength(2);
    expect(creates.every((c) => c.message.error === fake.createError)).toBe(true);
    const open = seen.find((s) => s.channel === 'lifeguard:breaker:open')!;
    expect(open.message.cause).toBe(fake.createError);
    await waiting;

    fake.defaults.create = { kind: 'ok' };
    await clock.advance(1000);
    const lease = await acquireNow(pool);
    expect(names()).toContain('lifeguard:breaker:close');
    expect(names().filter((n) => n === 'lifeguard:breaker:open')).toHaveLength(1);
    await lease.release();
  });

  it('a leak is published with the LeakDetectedError', async () => {
    const pool = makePool({ leakDetectionMs: 100 });
    listen(pool as Pool<unknown>);
    const lease = await acquireNow(pool);
    await clock.advance(100);
    const leak = seen.find((s) => s.channel === 'lifeguard:leak')!;
    expect(leak.message.error).toBeInstanceOf(LeakDetectedError);
    await lease.release();
  });

  it('events of a PostgreSQL pool name the PostgresPool object users hold', async () => {
    // No server needed: a refused connect on a closed port still produces create and acquire:end events.
    const pool = createPostgresPool({ host: '127.0.0.1', port: 1, max: 1, acquireTimeoutMs: 200, circuitBreaker: false, onError: () => {} });
    listen(pool as unknown as Pool<unknown>);
    await pool.query('SELECT 1').catch(() => {});
    await pool.close();
    expect(names()).toContain('lifeguard:acquire:start');
    expect(names()).toContain('lifeguard:create');
    expect(names()).toContain('lifeguard:acquire:end');
  });

  it('nothing is published, and nothing is computed for it, when nobody subscribes', () => {
    for (const name of Object.values(CHANNELS)) expect(diagnostics.hasSubscribers(name)).toBe(false);
  });
});

