// The chaos proxy (test/support/chaos-proxy.ts) against real sockets on 127.0.0.1: small
// scripted upstream servers, a proxy in between, clients recording what arrives and when.
// Timing assertions are one-sided where it matters ("at least the delay") with generous
// upper bounds, so a loaded machine slows the tests down but does not fail them.
import { randomBytes } from 'node:crypto';
import net, { type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChaosProxy } from '../support/chaos-proxy.js';

// ---------------------------------------------------------------- helpers

const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const now = (): number => performance.now();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `predicate` until true; fail after `timeoutMs`. */
async function until(predicate: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = now() + timeoutMs;
  while (!predicate()) {
    if (now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A client socket that records what arrives, and when. */
class TestClient {
  readonly socket: Socket;
  data = Buffer.alloc(0);
  chunks = 0;
  error: NodeJS.ErrnoException | undefined;
  connectedAt: number | undefined;
  endedAt: number | undefined;
  closedAt: number | undefined;
  readonly #reached: Array<{ bytes: number; at: number }> = [];

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => (this.connectedAt = now()));
    this.socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.chunks++;
      this.#reached.push({ bytes: this.data.length, at: now() });
    });
    this.socket.on('end', () => (this.endedAt = now()));
    this.socket.on('error', (error: NodeJS.ErrnoException) => (this.error = error));
    this.socket.on('close', () => (this.closedAt = now()));
    cleanups.push(() => this.destroy());
  }

  static async connect(port: number): Promise<TestClient> {
    const client = new TestClient(port);
    await until(() => client.connectedAt !== undefined || client.closedAt !== undefined, 'connect');
    if (client.connectedAt === undefined) throw client.error ?? new Error('closed before connecting');
    return client;
  }

  get closed(): boolean {
    return this.closedAt !== undefined;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async waitForBytes(bytes: number, timeoutMs = 2_000): Promise<Buffer> {
    await until(() => this.data.length >= bytes, `${bytes} bytes (have ${this.data.length})`, timeoutMs);
    return this.data;
  }

  /** When the received total first reached `bytes`. */
  reachedAt(bytes: number): number {
    const entry = this.#reached.find((r) => r.bytes >= bytes);
    if (entry === undefined) throw new Error(`never received ${bytes} bytes`);
    return entry.at;
  }

  async destroy(): Promise<void> {
    if (!this.closed) this.socket.destroy();
    await until(() => this.closed, 'client close');
  }
}

interface TestServer {
  readonly port: number;
  /** Sockets accepted so far (open or not). */
  readonly sockets: Socket[];
  close(): Promise<void>;
}

/** A server on 127.0.0.1 running `script` for every connection. */
async function startServer(script: (socket: Socket) => void): Promise<TestServer> {
  const sockets: Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    script(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    }));
  cleanups.push(close);
  return { port: address.port, sockets, close };
}

const echo = (socket: Socket): void => void socket.pipe(socket);

/** Server that answers a 4-byte big-endian length with that many bytes of `payload(n)`. */
function sender(socket: Socket): void {
  socket.once('data', (request: Buffer) => socket.write(payload(request.readUInt32BE(0))));
}

function payload(n: number): Buffer {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

function request(n: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(n);
  return buffer;
}

async function startProxy(upstream: TestServer): Promise<ChaosProxy> {
  const proxy = await ChaosProxy.start({ upstreamHost: '127.0.0.1', upstreamPort: upstream.port });
  cleanups.push(() => proxy.close());
  return proxy;
}

async function echoSetup(): Promise<{ server: TestServer; proxy: ChaosProxy }> {
  const server = await startServer(echo);
  return { server, proxy: await startProxy(server) };
}

/** Round trip one message through an echo link; resolves with the elapsed ms. */
async function roundTrip(client: TestClient, message: string, timeoutMs = 2_000): Promise<number> {
  const target = client.data.length + message.length;
  const start = now();
  client.write(message);
  await client.waitForBytes(target, timeoutMs);
  return client.reachedAt(target) - start;
}

/** A port nobody listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------- tests

describe('forwarding', () => {
  it('forwards bytes unchanged both ways, 1 MB included, and counts them', async () => {
    const { proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    expect(await roundTrip(client, 'hello')).toBeLessThan(1_000);
    expect(client.data.toString()).toBe('hello');

    const big = randomBytes(1024 * 1024);
    client.write(big);
    const received = await client.waitForBytes(5 + big.length, 5_000);
    expect(received.subarray(5).equals(big)).toBe(true);

    expect(proxy.stats()).toEqual({
      accepted: 1,
      upstreamConnects: 1,
      active: 1,
      bytesUp: 5 + big.length,
      bytesDown: 5 + big.length,
      resets: 0,
    });
  });

  it('passes half-closes through and forgets the link once both sides are closed', async () => {
    const { server, proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    await roundTrip(client, 'x');
    client.socket.end(); // the echo server ends in turn, which comes back as our 'end'
    await until(() => client.closed, 'client close');
    expect(client.endedAt).toBeDefined();
    expect(client.error).toBeUndefined();
    await until(() => proxy.stats().active === 0, 'link gone');
    expect(server.sockets[0]?.destroyed).toBe(true);
  });

  it('closes the client side when the server goes away abruptly', async () => {
    const { server, proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    await roundTrip(client, 'a');
    server.sockets[0]!.resetAndDestroy();
    await until(() => client.closed, 'client close');
    await until(() => proxy.stats().active === 0, 'link gone');
  });
});

describe('latency', () => {
  it('delays each direction by at least `ms`', async () => {
    const { proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    const down = proxy.latency(60, 0, { direction: 'downstream' });
    const rttDown = await roundTrip(client, 'a');
    expect(rttDown).toBeGreaterThanOrEqual(60);
    expect(rttDown).toBeLessThan(60 + 500);
    down.remove();

    proxy.latency(40); // both ways: paid twice per round trip
    const rttBoth = await roundTrip(client, 'b');
    expect(rttBoth).toBeGreaterThanOrEqual(80);
    expect(rttBoth).toBeLessThan(80 + 500);
  });

  it('keeps byte order under jitter', async () => {
    const { proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    proxy.latency(8, 8);
    let sent = '';
    for (let i = 0; i < 40; i++) {
      const piece = `<${i}>`;
      sent += piece;
      client.write(piece);
      await sleep(1); // separate chunks, so each gets its own random delay
    }
    await client.waitForBytes(sent.length);
    expect(client.data.toString()).toBe(sent);
  });

  it('releases held data at once when removed', async () => {
    const { proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    const toxic = proxy.latency(5_000, 0, { direction: 'downstream' });
    const start = now();
    client.write('held');
    await sleep(30);
    expect(client.data.length).toBe(0);
    toxic.remove();
    await client.waitForBytes(4, 1_000);
    expect(client.reachedAt(4) - start).toBeLessThan(1_000);
    expect(await roundTrip(client, 'after')).toBeLessThan(500);
    expect(client.data.toString()).toBe('heldafter');
  });
});

describe('bandwidth', () => {
  it('slows a transfer roughly in proportion to its size', async () => {
    const server = await startServer(sender);
    const proxy = await startProxy(server);
    proxy.bandwidth(200, { direction: 'downstream' }); // 200 bytes per ms

    const timeTransfer = async (bytes: number): Promise<number> => {
      const client = await TestClient.connect(proxy.port);
      const start = now();
      client.write(request(bytes));
      const received = await client.waitForBytes(bytes, 3_000);
      expect(received.equals(payload(bytes))).toBe(true);
      return client.reachedAt(bytes) - start;
    };
    const small = await timeTransfer(10_000); // 50 ms at 200 KB/s
    const large = await timeTransfer(40_000); // 200 ms
    expect(small).toBeGreaterThanOrEqual(50);
    expect(large).toBeGreaterThanOrEqual(200);
    expect(large).toBeLessThan(200 + 600);
    expect(large / small).toBeGreaterThan(2); // ideally 4; fixed overheads weigh on `small`
    expect(proxy.stats().bytesDown).toBe(50_000);
  });
});

describe('slicer', () => {
  it('cuts the stream into many small pieces and keeps the bytes identical', async () => {
    const server = await startServer(sender);
    const proxy = await startProxy(server);
    proxy.slicer(100, 50, 1_000, { direction: 'downstream' });
    const client = await TestClient.connect(proxy.port);
    client.write(request(4_000)); // one write upstream
    const received = await client.waitForBytes(4_000);
    expect(received.equals(payload(4_000))).toBe(true);
    // ~40 pieces, 1 ms apart; a busy event loop may read a few of them at once.
    expect(client.chunks).toBeGreaterThanOrEqual(5);
  });

  it('slices the upstream direction too', async () => {
    const received: Buffer[] = [];
    const server = await startServer((socket) => socket.on('data', (chunk: Buffer) => received.push(chunk)));
    const proxy = await startProxy(server);
    proxy.slicer(50, 0, 1_000, { direction: 'upstream' });
    const client = await TestClient.connect(proxy.port);
    const sent = randomBytes(2_000);
    client.write(sent);
    await until(() => Buffer.concat(received).length >= sent.length, 'upstream bytes');
    expect(Buffer.concat(received).equals(sent)).toBe(true);
    expect(received.length).toBeGreaterThanOrEqual(5);
  });
});

describe('blackhole', () => {
  it('drops data while both sockets stay open, and forwards again once removed', async () => {
    const { server, proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    await roundTrip(client, 'a');
    const toxic = proxy.blackhole();
    client.write('lost');
    await sleep(100);
    expect(client.data.toString()).toBe('a');
    expect(client.closed).toBe(false);
    expect(server.sockets[0]?.destroyed).toBe(false);
    expect(proxy.stats().active).toBe(1);

    toxic.remove();
    await roundTrip(client, 'b');
    expect(client.data.toString()).toBe('ab'); // 'lost' stays lost
  });

  it('still lets a close through, so a client giving up closes the link', async () => {
    const { server, proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    await roundTrip(client, 'a');
    proxy.blackhole();
    client.write('lost');
    await client.destroy();
    await until(() => proxy.stats().active === 0, 'link gone');
    expect(server.sockets[0]?.destroyed).toBe(true);
  });

  it('acts on one direction only when asked', async () => {
    const received: Buffer[] = [];
    const server = await startServer((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.write('greeting');
    });
    const proxy = await startProxy(server);
    proxy.blackhole({ direction: 'downstream', scope: 'new' });
    const client = await TestClient.connect(proxy.port);
    client.write('up');
    await until(() => received.length > 0, 'upstream data');
    expect(Buffer.concat(received).toString()).toBe('up');
    await sleep(50);
    expect(client.data.length).toBe(0);
    expect(proxy.stats().bytesDown).toBe(0);
  });
});

describe('timeout', () => {
  it('drops data, then closes both sides after `ms`', async () => {
    const { server, proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    const start = now();
    proxy.timeout(100);
    client.write('lost');
    await until(() => client.closed, 'client close');
    expect(client.closedAt! - start).toBeGreaterThanOrEqual(100);
    expect(client.closedAt! - start).toBeLessThan(100 + 500);
    expect(client.data.length).toBe(0);
    await until(() => server.sockets[0]?.destroyed === true, 'server side closed');
    await until(() => proxy.stats().active === 0, 'link gone');
  });

  it('with 0, blackholes for good without closing', async () => {
    const { proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    const toxic = proxy.timeout(0);
    client.write('lost');
    await sleep(150);
    expect(client.closed).toBe(false);
    expect(client.data.length).toBe(0);
    toxic.remove();
    await roundTrip(client, 'ok');
    expect(client.data.toString()).toBe('ok');
  });
});

describe('resetPeer', () => {
  it('sends the client a TCP RST: ECONNRESET', async () => {
    const { server, proxy } = await echoSetup();
    const client = await TestClient.connect(proxy.port);
    await roundTrip(client, 'a');
    proxy.resetPeer();
    await until(() => client.closed, 'client close');
    expect(client.error?.code).toBe('ECONNRESET');
    expect(proxy.stats().resets).toBe(1);
    await until(() => server.sockets[0]?.destroyed === true, 'server side closed');
  });

  it('waits `ms` first, counted from when the link is accepted for new links', async () => {
    const { proxy } = await echoSetup();
    proxy.resetPeer(150);
    const client = await TestClient.connect(proxy.port);
    const connected = client.connectedAt!;
    expect(await roundTrip(client, 'still fine')).toBeLessThan(150);
    await until(() => client.closed, 'client close');
    expect(client.error?.code).toBe('ECONNRESET');
    // The proxy accepted the socket no later than the client saw the connect (give or
    // take the client's own event-loop lag).
    expect(client.closedAt! - connected).toBeGreaterThanOrEqual(140);
    expect(client.closedAt! - connected).toBeLessThan(150 + 500);
  });
});

describe('slowClose', () => {
  /** Server that answers anything with 'bye' and ends; records when it ended. */
  async function byeServer(): Promise<{ server: TestServer; endedAt: () => number }> {
    let endedAt = NaN;
    const server = await startServer((socket) =>
      socket.once('data', () => {
        socket.write('bye');
        endedAt = now();
        socket.end();
      }),
    );
    return { server, endedAt: () => endedAt };
  }

  it('holds the FIN back for `ms` while data passes at once', async () => {
    const { server, endedAt } = await byeServer();
    const proxy = await startProxy(server);
    proxy.slowClose(150, { direction: 'downstream' });
    const client = await TestClient.connect(proxy.port);
    client.write('hi');
    await client.waitForBytes(3);
    expect(client.reachedAt(3) - endedAt()).toBeLessThan(100);
    await until(() => client.endedAt !== undefined, 'client end');
    expect(client.endedAt! - endedAt()).toBeGreaterThanOrEqual(150);
    expect(client.endedAt! - endedAt()).toBeLessThan(150 + 500);
  });

  it('without it the FIN follows at once', async () => {
    const { server, endedAt } = await byeServer();
    const proxy = await startProxy(server);
    const client = await TestClient.connect(proxy.port);
    client.write('hi');
    await until(() => client.endedAt !== undefined, 'client end');
    expect(client.endedAt! - endedAt()).toBeLessThan(100);
    expect(client.data.toString()).toBe('bye');
  });

  it('delays the client FIN on its way upstream', async () => {
    let serverEndedAt = NaN;
    const server = await startServer((socket) => socket.on('end', () => (serverEndedAt = now())));
    const proxy = await startProxy(server);
    proxy.slowClose(100, { direction: 'upstream' });
    const client = await TestClient.connect(proxy.port);
    await until(() => server.sockets.length === 1, 'upstream connect');
    const start = now();
    client.socket.end();
    await until(() => !Number.isNaN(serverEndedAt), 'server end');
    expect(serverEndedAt - start).toBeGreaterThanOrEqual(100);
  });
});

describe('limitData', () => {
  it('forwards exactly N bytes downstream, across chunks, then closes the link', async () => {
    const server = await startServer((socket) =>
      socket.once('data', () => {
        socket.write(payload(6));
        setTimeout(() => socket.write(payload(100)), 20);
      }),
    );
    const proxy = await startProxy(server);
    proxy.limitData(10, { direction: 'downstream' });
    const client = await TestClient.connect(proxy.port);
    client.write('go');
    await until(() => client.closed, 'client close');
    expect(client.endedAt).toBeDefined(); // a FIN, not a reset
    expect(client.error).toBeUndefined();
    expect(client.data.equals(Buffer.concat([payload(6), payload(4)]))).toBe(true);
    expect(proxy.stats().bytesDown).toBe(10);
    await until(() => server.sockets[0]?.destroyed === true, 'server side closed');
    await until(() => proxy.stats().active === 0, 'link gone');
  });

  it('forwards exactly N bytes upstream, then closes both sides', async () => {
    const received: Buffer[] = [];
    let serverEnded = false;
    const server = await startServer((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('end', () => (serverEnded = true));
    });
    const proxy = await startProxy(server);
    proxy.limitData(5, { direction: 'upstream' });
    const client = await TestClient.connect(proxy.port);
    client.write('hello world');
    await until(() => serverEnded && client.closed, 'both sides closed');
    expect(Buffer.concat(received).toString()).toBe('hello');
    expect(client.endedAt).toBeDefined();
    expect(proxy.stats().bytesUp).toBe(5);
  });

  it('stacks with latency: the N bytes still arrive, late, before the FIN', async () => {
    const server = await startServer(sender);
    const proxy = await startProxy(server);
    proxy.limitData(10, { direction: 'downstream' });
    proxy.latency(60, 0, { direction: 'downstream' });
    const client = await TestClient.connect(proxy.port);
    const start = now();
    client.write(request(1_000));
    await until(() => client.closed, 'client close');
    expect(client.data.equals(payload(10))).toBe(true);
    expect(client.reachedAt(10) - start).toBeGreaterThanOrEqual(60);
    expect(client.endedAt).toBeDefined();
  });
});

describe('acceptSilently', () => {
  it('accepts the TCP connection but never dials upstream nor answers', async () => {
    const { server, proxy } = await echoSetup();
    const toxic = proxy.acceptSilently();
    const silent = await TestClient.connect(proxy.port);
    silent.write('hello?');
    await sleep(100);
    expect(silent.closed).toBe(false);
    expect(silent.data.length).toBe(0);
    expect(server.sockets.length).toBe(0);
    expect(proxy.stats()).toMatchObject({ accepted: 1, upstreamConnects: 0, active: 1, bytesUp: 0 });

    toxic.remove();
    const normal = await TestClient.connect(proxy.port);
    await roundTrip(normal, 'hi');
    expect(proxy.stats().upstreamConnects).toBe(1);
    silent.write('still there?');
    await sleep(50);
    expect(silent.data.length).toBe(0); // held links stay silent

    proxy.killAll();
    await until(() => silent.closed && normal.closed, 'both clients closed');
    expect(silent.endedAt).toBeDefined();
    expect(normal.endedAt).toBeDefined();
    await until(() => proxy.stats().active === 0, 'links gone');
  });

  it('closes a silent link when its client gives up', async () => {
    const { proxy } = await echoSetup();
    proxy.acceptSilently();
    const client = await TestClient.connect(proxy.port);
    await until(() => proxy.stats().active === 1, 'link accepted');
    client.socket.end();
    await until(() => proxy.stats().active === 0, 'link gone');
    await until(() => client.closed, 'client close');
    expect(proxy.stats().upstreamConnects).toBe(0);
  });
});

describe('down() and up()', () => {
  it('down() closes every link and refuses new connections; up() listens again on the same port', async () => {
    const { proxy } = await echoSetup();
    const port = proxy.port;
    const client = await TestClient.connect(proxy.port);
    await roundTrip(client, 'a');

    await proxy.down();
    expect(proxy.stats().active).toBe(0); // down() resolves once every link is gone
    await until(() => client.closed, 'client close');
    await expect(TestClient.connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    await proxy.up();
    expect(proxy.port).toBe(port);
    const again = await TestClient.connect(port);
    await roundTrip(again, 'b');
    expect(again.data.toString()).toBe('b');
    expect(proxy.stats()).toMatchObject({ accepted: 2, upstreamConnects: 2, active: 1 });
  });

  it('killAll() ends every link gracefully and the proxy keeps accepting', async () => {
    const { server, proxy } = await echoSetup();
    const clients = [await TestClient.connect(proxy.port), await TestClient.connect(proxy.port)];
    for (const client of clients) await roundTrip(client, 'x');
    proxy.killAll();
    await until(() => clients.every((client) => client.closed), 'clients closed');
    for (const client of clients) {
      expect(client.endedAt).toBeDefined();
      expect(client.error).toBeUndefined();
    }
    await until(() => server.sockets.every((socket) => socket.destroyed), 'server sides closed');
    const next = await TestClient.connect(proxy.port);
    await roundTrip(next, 'y');
  });
});

describe('toxicity and scope', () => {
  async function echoClients(proxy: ChaosProxy, n: number): Promise<TestClient[]> {
    const clients: TestClient[] = [];
    for (let i = 0; i < n; i++) clients.push(await TestClient.connect(proxy.port));
    return clients;
  }

  /** Which clients get an echo of a fresh message within `ms`. */
  async function answering(clients: TestClient[], ms = 80): Promise<boolean[]> {
    const before = clients.map((client) => client.data.length);
    for (const client of clients) client.write('?');
    await sleep(ms);
    return clients.map((client, i) => client.data.length > before[i]!);
  }

  it('toxicity 0 hits no link, 1 hits every link', async () => {
    const { proxy } = await echoSetup();
    const clients = await echoClients(proxy, 8);
    const none = proxy.blackhole({ toxicity: 0 });
    expect(await answering(clients)).toEqual(Array(8).fill(true));
    none.remove();
    proxy.blackhole({ toxicity: 1 });
    expect(await answering(clients)).toEqual(Array(8).fill(false));
  });

  it('rolls once per link, for existing links when added and for new links when accepted', async () => {
    const { proxy } = await echoSetup();
    const clients = await echoClients(proxy, 4);
    const rolls = [0.1, 0.9, 0.4, 0.6, /* new links: */ 0.9, 0.2];
    vi.spyOn(Math, 'random').mockImplementation(() => rolls.shift() ?? 0.99);
    proxy.blackhole({ toxicity: 0.5 });
    clients.push(...(await echoClients(proxy, 2)));
    vi.restoreAllMocks();
    expect(await answering(clients)).toEqual([false, true, false, true, true, false]);
  });

  it("scope 'existing' spares later links, scope 'new' spares current ones", async () => {
    const { proxy } = await echoSetup();
    const [old] = await echoClients(proxy, 1);
    const existing = proxy.blackhole({ scope: 'existing' });
    const [later] = await echoClients(proxy, 1);
    expect(await answering([old!, later!])).toEqual([false, true]);
    existing.remove();

    proxy.blackhole({ scope: 'new' });
    const [newest] = await echoClients(proxy, 1);
    expect(await answering([old!, later!, newest!])).toEqual([true, true, false]);
  });
});

describe('setUpstream', () => {
  it('sends new links to the new upstream; existing links stay where they are', async () => {
    const tagged = (tag: string) => (socket: Socket) => {
      socket.write(tag);
      socket.on('data', (chunk: Buffer) => socket.write(`${tag}${chunk.toString()}`));
    };
    const a = await startServer(tagged('A'));
    const b = await startServer(tagged('B'));
    const proxy = await startProxy(a);
    const first = await TestClient.connect(proxy.port);
    await first.waitForBytes(1);
    proxy.setUpstream('127.0.0.1', b.port);
    const second = await TestClient.connect(proxy.port);
    await second.waitForBytes(1);
    first.write('1');
    second.write('2');
    await first.waitForBytes(3);
    await second.waitForBytes(3);
    expect(first.data.toString()).toBe('AA1');
    expect(second.data.toString()).toBe('BB2');
  });

  it('resets the client when the upstream refuses the connection', async () => {
    const { proxy } = await echoSetup();
    proxy.setUpstream('127.0.0.1', await deadPort());
    const client = await TestClient.connect(proxy.port); // the proxy itself accepts
    await until(() => client.closed, 'client close');
    expect(client.error?.code).toBe('ECONNRESET');
    expect(proxy.stats()).toMatchObject({ accepted: 1, upstreamConnects: 0, active: 0, resets: 1 });
  });
});

describe('validation', () => {
  it('rejects nonsense parameters', async () => {
    const { proxy } = await echoSetup();
    expect(() => proxy.latency(-1)).toThrow(RangeError);
    expect(() => proxy.bandwidth(0)).toThrow(RangeError);
    expect(() => proxy.slicer(0, 0, 0)).toThrow(RangeError);
    expect(() => proxy.blackhole({ toxicity: 1.5 })).toThrow(RangeError);
    expect(() => proxy.setUpstream('127.0.0.1', 0)).toThrow(RangeError);
    expect(proxy.latency(1).name).toMatch(/^latency-\d+$/);
  });
});

describe('close()', () => {
  const ours = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'];
  const count = (): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const type of process.getActiveResourcesInfo()) if (ours.includes(type)) counts[type] = (counts[type] ?? 0) + 1;
    return counts;
  };

  it('leaves no socket, server or timer behind, even with toxics holding data', async () => {
    // Handles closed by earlier tests are released in a later event-loop turn.
    await sleep(5);
    const baseline = count();
    const server = await startServer(echo);
    const proxy = await ChaosProxy.start({ upstreamHost: '127.0.0.1', upstreamPort: server.port });
    const clients = [await TestClient.connect(proxy.port), await TestClient.connect(proxy.port)];
    proxy.latency(10_000, 0, { direction: 'downstream' });
    proxy.bandwidth(1, { direction: 'upstream' });
    proxy.slowClose(10_000);
    proxy.timeout(10_000, { scope: 'new' });
    proxy.resetPeer(10_000, { scope: 'new' });
    proxy.acceptSilently();
    clients.push(await TestClient.connect(proxy.port)); // a silent one with link timers
    for (const client of clients) client.write(randomBytes(5_000));
    await sleep(30);
    expect(count()).not.toEqual(baseline);

    // down() first: the links die with their toxics still in place (close() would remove
    // the toxics first, which takes another path through the code).
    await proxy.down();
    expect(proxy.stats().active).toBe(0);
    // At once: no timer of the proxy's, and only the test server still listens.
    expect(count().Timeout ?? 0).toBe(baseline.Timeout ?? 0);
    expect(count().TCPServerWrap ?? 0).toBe((baseline.TCPServerWrap ?? 0) + 1);
    await proxy.close();
    await expect(proxy.up()).rejects.toThrow(/after close/);
    for (const client of clients) await client.destroy();
    await server.close();
    await sleep(5); // our own `until` poll timer
    expect(count()).toEqual(baseline);
  });

  it('is safe to call twice, and after down()', async () => {
    const { proxy } = await echoSetup();
    await proxy.down();
    await proxy.close();
    await proxy.close();
  });
});
