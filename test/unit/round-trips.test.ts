// Round trips between leases: the ping on borrow and the keepalive ping.
import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, PingTimeoutError, type Pool } from '../../src/index.js';
import type { FakeResource } from '../support/fake-adapter.js';
import { acquireNow, clock, errors, fake, track, usePerTestPools } from '../support/harness.js';

const makePool = usePerTestPools({ keepaliveMs: Infinity });

/** A resource created, released, then left idle for `ms`: the resource, now idle in `pool`. */
async function idleFor(pool: Pool<FakeResource>, ms: number): Promise<FakeResource> {
  const lease = await acquireNow(pool);
  const resource = lease.resource;
  await lease.release();
  await clock.advance(ms);
  return resource;
}

describe('ping on borrow', () => {
  it('pings only a resource idle longer than pingIfIdleMs', async () => {
    const pool = makePool({ pingIfIdleMs: 1000 });
    const first = await acquireNow(pool);
    const resource = first.resource;
    await first.release();
    expect(fake.pings).toBe(0); // a fresh create is never pinged

    await clock.advance(500);
    const shortIdle = await acquireNow(pool);
    expect(fake.pings).toBe(0);
    expect(shortIdle.resource).toBe(resource);
    await shortIdle.release();

    await clock.advance(1000); // exactly pingIfIdleMs: not "longer than"
    const boundary = await acquireNow(pool);
    expect(fake.pings).toBe(0);
    await boundary.release();

    await clock.advance(1001);
    const longIdle = await acquireNow(pool);
    expect(fake.pings).toBe(1);
    expect(longIdle.resource).toBe(resource);
    expect(pool.stats().created).toBe(1);
    await longIdle.release();
  });

  it('pingIfIdleMs: 0 pings on every borrow from idle, even one at the instant of release', async () => {
    const pool = makePool({ pingIfIdleMs: 0 });
    const first = await acquireNow(pool);
    await first.release();
    expect(fake.pings).toBe(0);

    await clock.advance(1);
    const second = await acquireNow(pool);
    expect(fake.pings).toBe(1);
    await second.release();

    // Borrowed again in the same instant it was returned: still a borrow, still pinged.
    const third = await acquireNow(pool);
    expect(fake.pings).toBe(2);
    await third.release();
  });

  it('a failed ping destroys the resource (pingFailed) and the same acquire gets a newly created one', async () => {
    const pool = makePool({ pingIfIdleMs: 100 });
    const stale = await idleFor(pool, 200);

    fake.script.ping.push({ kind: 'fail' });
    const lease = await acquireNow(pool);
    expect(fake.pings).toBe(1);
    expect(lease.resource).not.toBe(stale);
    expect(stale.destroyed).toBe(true);
    const stats = pool.stats();
    expect(stats.destroyedByReason.pingFailed).toBe(1);
    expect(stats.created).toBe(2);
    expect(stats.acquired).toBe(2);
    expect(stats.size).toBe(1);
    await lease.release();
  });

  it('a hanging ping is bounded by pingTimeoutMs; the acquire then goes on with a new resource', async () => {
    const pool = makePool({ pingIfIdleMs: 100, pingTimeoutMs: 300, acquireTimeoutMs: 5000 });
    const stale = await idleFor(pool, 200);

    fake.script.ping.push({ kind: 'never' });
    const start = clock.now();
    const acquiring = track(pool.acquire());
    await clock.advance(299);
    expect(acquiring.done).toBe(false);
    expect(pool.stats().checking).toBe(1);

    await clock.advance(1);
    expect(acquiring.ok).toBe(true);
    expect(acquiring.at).toBe(start + 300);
    expect(acquiring.value!.resource).not.toBe(stale);
    expect(stale.destroyed).toBe(true);
    expect(pool.stats().destroyedByReason.pingFailed).toBe(1);
    expect(pool.stats().checking).toBe(0);
    await acquiring.value!.release();
  });

  it("a hanging ping is bounded by the caller's remaining deadline: the acquire fails at its deadline, not later", async () => {
    const pool = makePool({ pingIfIdleMs: 100, pingTimeoutMs: 1000, acquireTimeoutMs: 5000 });
    const stale = await idleFor(pool, 200);

    fake.script.ping.push({ kind: 'never' });
    const start = clock.now();
    const acquiring = track(pool.acquire({ timeoutMs: 50 }));
    await clock.advance(49);
    expect(acquiring.done).toBe(false);

    await clock.advance(1);
    expect(acquiring.done).toBe(true);
    expect(acquiring.ok).toBe(false);
    expect(acquiring.error).toBeInstanceOf(AcquireTimeoutError);
    expect(acquiring.at).toBe(start + 50);
    // The ping was given up at the same deadline, not at pingTimeoutMs.
    expect(pool.stats().checking).toBe(0);
    expect(pool.stats().destroyedByReason.pingFailed).toBe(1);
    expect(stale.destroyed).toBe(true);
  });
});

describe('keepalive', () => {
  it('pings idle resources every keepaliveMs without any borrow', async () => {
    const pool = makePool({ keepaliveMs: 1000, pingIfIdleMs: Infinity });
    const lease = await acquireNow(pool);
    await lease.release();

    await clock.advance(999);
    expect(fake.pings).toBe(0);
    await clock.advance(1);
    expect(fake.pings).toBe(1);
    await clock.advance(1000);
    expect(fake.pings).toBe(2);
    expect(pool.stats().idle).toBe(1);
    expect(pool.stats().destroyed).toBe(0);
  });

  it('does not hand out a resource while it is being keepalive-pinged; an acquire gets another idle one', async () => {
    const pool = makePool({ keepaliveMs: 1000, pingIfIdleMs: Infinity });
    const a = await acquireNow(pool);
    const b = await acquireNow(pool);
    const resourceA = a.resource;
    const resourceB = b.resource;
    await a.release(); // A idle since 0: keepalive due at 1000
    await clock.advance(500);
    await b.release(); // B idle since 500: keepalive due at 1500

    fake.script.ping.push({ kind: 'slow', ms: 2000 });
    await clock.advance(500); // t = 1000: A's keepalive ping starts and hangs for 2 s
    expect(fake.pings).toBe(1);
    expect(pool.stats().checking).toBe(1);

    await clock.advance(100);
    const lease = await acquireNow(pool);
    expect(lease.resource).toBe(resourceB);
    expect(lease.resource).not.toBe(resourceA);
    expect(pool.stats().checking).toBe(1);
    await lease.release();
  });

  it('with no other resource, an acquire waits and never gets the resource in the middle of its keepalive ping', async () => {
    const pool = makePool({ keepaliveMs: 1000, pingIfIdleMs: Infinity, max: 1 });
    const first = await acquireNow(pool);
    const resource = first.resource;
    await first.release();

    fake.script.ping.push({ kind: 'slow', ms: 500 });
    await clock.advance(1000); // keepalive ping runs from 1000 to 1500
    expect(pool.stats().checking).toBe(1);

    await clock.advance(100);
    const acquiring = track(pool.acquire());
    await clock.advance(0);
    expect(acquiring.done).toBe(false);
    expect(pool.stats().waiting).toBe(1);

    await clock.advance(399);
    expect(acquiring.done).toBe(false);
    expect(pool.stats().checking).toBe(1);

    await clock.advance(1); // ping done: the resource is proven and goes to the waiter
    expect(acquiring.ok).toBe(true);
    expect(acquiring.at).toBe(1500);
    expect(acquiring.value!.resource).toBe(resource);
    expect(pool.stats().checking).toBe(0);
    await acquiring.value!.release();
  });

  it('a failed keepalive ping destroys the resource and is reported to onError', async () => {
    const pool = makePool({ keepaliveMs: 1000, pingIfIdleMs: Infinity });
    const lease = await acquireNow(pool);
    const resource = lease.resource;
    await lease.release();

    const pingError = new Error('keepalive: connection reset');
    fake.script.ping.push({ kind: 'fail', error: pingError });
    await clock.advance(1000);

    expect(fake.pings).toBe(1);
    expect(resource.destroyed).toBe(true);
    expect(errors).toEqual([pingError]);
    const stats = pool.stats();
    expect(stats.destroyedByReason.pingFailed).toBe(1);
    expect(stats.size).toBe(0);
    expect(stats.idle).toBe(0);
  });

  it('a hanging keepalive ping is bounded by pingTimeoutMs (PingTimeoutError to onError); a waiting acquire does not wait for it', async () => {
    const pool = makePool({ keepaliveMs: 1000, pingIfIdleMs: Infinity, pingTimeoutMs: 200, acquireTimeoutMs: 5000 });
    const first = await acquireNow(pool);
    const stale = first.resource;
    await first.release();

    fake.script.ping.push({ kind: 'never' });
    await clock.advance(1000); // the ping starts at 1000 and hangs
    await clock.advance(50);
    // A keepalive ping is not on its way to any waiter: with room below max, the acquire gets a new resource now.
    const acquiring = track(pool.acquire());
    await clock.advance(1);
    expect(acquiring.ok).toBe(true);
    expect(acquiring.at).toBe(1050);
    expect(acquiring.value!.resource).not.toBe(stale);
    expect(pool.stats().checking).toBe(1);

    await clock.advance(149); // t = 1200: the keepalive ping is given up
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(PingTimeoutError);
    expect(stale.destroyed).toBe(true);
    expect(pool.stats().destroyedByReason.pingFailed).toBe(1);
    expect(pool.stats().checking).toBe(0);
    await acquiring.value!.release();
  });
});
