// The pg adapter's `probe` and `ref` hooks on a real server.
//   probe(signal): a TCP connect, closed at once (no startup message, so no session); rejects
//     when refused, aborts on its signal, leaves no socket behind.
//   ref(client, active): an idle client's socket does not keep the process alive; a leased
//     one's does. Measured with process.getActiveResourcesInfo(), which lists the handles
//     that keep the event loop alive (an unref'd socket is not among them).
import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { postgresAdapter, resolveClientConfig } from '../../src/adapters/postgres/index.js';
import { rejectionOf, sleep, usePostgres, waitFor } from './harness.js';
import { freePort } from './providers.js';

const db = usePostgres();

function adapterFor(host: string, port: number, createTimeoutMs = 2000): ReturnType<typeof postgresAdapter> {
  return postgresAdapter(resolveClientConfig({ ...db.connection(), host, port }, createTimeoutMs), { resetOnRelease: 'none', dirtyRelease: 'destroy' });
}

/** TCP sockets keeping this process alive. */
function refedSockets(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap').length;
}

/** The count once sockets closed by earlier tests are really gone. */
async function settledSockets(): Promise<number> {
  let last = -1;
  for (;;) {
    const now = refedSockets();
    if (now === last) return now;
    last = now;
    await sleep(100);
  }
}

async function clientBackends(): Promise<number> {
  return (await db.admin<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'")).rows[0]!.n;
}

beforeAll(async () => {
  await db.admin('SELECT 1'); // the shared admin connection exists before any count is taken
});

describe('probe', () => {
  it('resolves against the live server, opens no session and leaves no socket', async () => {
    const adapter = adapterFor(db.host, db.port);
    const sessions = await clientBackends();
    const sockets = refedSockets();
    const started = performance.now();
    for (let i = 0; i < 10; i++) await adapter.probe!(new AbortController().signal);
    expect(performance.now() - started).toBeLessThan(2000);
    await sleep(50);
    expect(refedSockets()).toBeLessThanOrEqual(sockets);
    // Each probe hung up at the password prompt; its backend exits on its own (slower in a container).
    await waitFor('the probes\' backends to exit', async () => (await clientBackends()) === sessions);
  });

  it('rejects quickly (ECONNREFUSED) against a closed port', async () => {
    const adapter = adapterFor('127.0.0.1', await freePort());
    const started = performance.now();
    const error = await rejectionOf(adapter.probe!(new AbortController().signal));
    expect(error.code).toBe('ECONNREFUSED');
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('aborts on its signal: at once when already aborted, and while connecting; no socket left', async () => {
    const adapter = adapterFor(db.host, db.port);
    const sockets = refedSockets();
    const reason = new Error('stop probing');
    expect(await rejectionOf(adapter.probe!(AbortSignal.abort(reason)))).toBe(reason);
    const controller = new AbortController();
    const probing = adapter.probe!(controller.signal);
    controller.abort(reason); // before the connect can complete
    expect(await rejectionOf(probing)).toBe(reason);
    await sleep(50);
    expect(refedSockets()).toBeLessThanOrEqual(sockets);
  });

  it('a server that accepts but never answers (frozen), or a proxy that accepts and closes (its server stopped), is not reachable', async () => {
    const accepted: net.Socket[] = [];
    const silent = net.createServer((socket) => void accepted.push(socket));
    const closing = net.createServer((socket) => socket.destroy());
    for (const server of [silent, closing]) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const frozen = adapterFor('127.0.0.1', (silent.address() as net.AddressInfo).port, 300);
      const started = performance.now();
      expect(await rejectionOf(frozen.probe!(new AbortController().signal))).toMatchObject({ code: 'ETIMEDOUT' });
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
      const proxied = adapterFor('127.0.0.1', (closing.address() as net.AddressInfo).port);
      expect(await rejectionOf(proxied.probe!(new AbortController().signal))).toMatchObject({ code: 'ECONNRESET' });
    } finally {
      for (const socket of accepted) socket.destroy();
      for (const server of [silent, closing]) await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a server still starting up (57P03 before authentication) is not ready; any other answer is', async () => {
    const errorResponse = (code: string): Buffer => {
      const body = Buffer.from(`SFATAL\0C${code}\0Mthe database system is starting up\0\0`);
      const head = Buffer.alloc(5);
      head.write('E', 0);
      head.writeInt32BE(4 + body.length, 1);
      return Buffer.concat([head, body]);
    };
    let answer = errorResponse('57P03');
    const startupMessages: Buffer[] = [];
    // Answers in two writes, as a slow network may deliver it.
    const fake = net.createServer((socket) =>
      socket.once('data', (startup: Buffer) => {
        startupMessages.push(startup);
        socket.write(answer.subarray(0, 3));
        setTimeout(() => socket.end(answer.subarray(3)), 5);
      }),
    );
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const adapter = adapterFor('127.0.0.1', (fake.address() as net.AddressInfo).port);
      expect(await rejectionOf(adapter.probe!(new AbortController().signal))).toMatchObject({ code: '57P03' });
      answer = errorResponse('28000'); // no pg_hba entry: up, and refusing for a reason a retry may not fix
      await adapter.probe!(new AbortController().signal);
      // A StartupMessage naming the pool's own user and database, protocol 3.0.
      expect(startupMessages[0]!.readInt32BE(4)).toBe(196608);
      expect(startupMessages[0]!.toString('utf8', 8)).toContain(`user\0${db.connection().user}\0database\0${db.connection().database}\0`);
    } finally {
      await new Promise((resolve) => fake.close(resolve));
    }
  });
});

describe('ref', () => {
  it("an idle client's socket does not keep the process alive; a leased client's does", async () => {
    const pool = db.pool({ max: 1 });
    const base = await settledSockets();
    const lease = await pool.acquire();
    expect(refedSockets()).toBe(base + 1);
    await lease.release();
    expect(pool.stats().idle).toBe(1);
    expect(refedSockets()).toBe(base);
    await pool.withConnection(async (client) => {
      expect(refedSockets()).toBe(base + 1);
      await client.query('SELECT 1');
    });
    expect(refedSockets()).toBe(base);
  });

  it('ref on a client whose socket is gone is a no-op, not a throw', async () => {
    const adapter = adapterFor(db.host, db.port);
    const client = await adapter.create({ signal: new AbortController().signal, attempt: 1, evict: () => {} });
    await adapter.destroy(client);
    await waitFor('the socket to close', () => (client as unknown as { connection: { stream: net.Socket } }).connection.stream.destroyed);
    expect(() => adapter.ref!(client, false)).not.toThrow();
    expect(() => adapter.ref!(client, true)).not.toThrow();
  });
});
