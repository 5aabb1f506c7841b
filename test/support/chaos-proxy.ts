// An in-process TCP fault-injection proxy for tests, after Toxiproxy
// (https://github.com/Shopify/toxiproxy): clients connect to the proxy on 127.0.0.1,
// every accepted socket becomes a *link* paired with a fresh socket to the upstream
// server, and *toxics* bend the bytes flowing through each link.
//
// Vocabulary (Toxiproxy's):
// - 'upstream' is the client → server direction, 'downstream' server → client;
// - a toxic acts on one direction or on both ('both', the default);
// - `toxicity` (0..1) is the share of links a toxic hits, rolled once per link with
//   Math.random() (when the toxic is added, for the links that exist then; when the link
//   is accepted, for links that come later);
// - `scope` (ours) says which links it may hit at all: those that exist now ('existing'),
//   those accepted later ('new'), or both ('all', the default).
//
// How a link moves bytes (test/support/chaos-pipes.ts): each direction is a `Pipe`, a chain
// of `Stage`s (one per toxic hitting that direction, in the order they were added) that ends
// in a sink writing to the destination socket. An end of stream (the source's FIN, or the
// source going away) travels the same chain as an `EOF` item behind the data, so a toxic that
// holds data back (latency, bandwidth, slicer) also holds the FIN back, and the peer never
// sees the connection end before the bytes that were sent ahead of it.
//
// Choices worth knowing when writing tests against this module:
// - Reading is never paused: a slow toxic buffers in memory. Fine for test volumes.
// - When the upstream connect fails (ECONNREFUSED...), the client socket is reset
//   (`resetAndDestroy`, counted in `stats().resets`), so the client sees ECONNRESET
//   rather than a clean end: that is what a dead server behind a load balancer usually
//   looks like, and it makes "the connect failed" unmistakable in client errors.
// - blackhole / timeout drop data but not the end of stream: if a peer closes while its
//   data is being dropped, the other peer still sees the close (otherwise links would
//   outlive the tests that forgot them). Use acceptSilently() or timeout() for "nothing
//   ever comes back".
// - timeout's clock starts when the toxic starts acting on the link (added, or link
//   accepted); data does not restart it (Toxiproxy restarts it on every chunk).
// - resetPeer acts on the whole link whatever `direction` says: the client always gets
//   the RST and the upstream socket is destroyed.
// - `bytesUp` / `bytesDown` count bytes handed to the destination socket, i.e. after the
//   toxics (what got through, not what was read).
// - `upstreamConnects` counts upstream connections *established*, not attempts.
import net, { type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  BandwidthStage,
  BlackholeStage,
  EOF,
  LatencyStage,
  LimitDataStage,
  Pipe,
  SlicerStage,
  SlowCloseStage,
  type Stage,
  type Way,
} from './chaos-pipes.js';

export type Direction = 'upstream' | 'downstream' | 'both';

export interface ToxicOptions {
  /** Which bytes the toxic acts on; 'both' by default. */
  direction?: Direction;
  /** Share of links hit, 0..1 (rolled once per link); 1 by default. */
  toxicity?: number;
  /** Links that exist now, links accepted later, or both ('all', the default). */
  scope?: 'all' | 'existing' | 'new';
}

export interface Toxic {
  readonly name: string;
  /** Stop acting (idempotent): held data moves on at once, later data flows normally. */
  remove(): void;
}

export interface ProxyStats {
  /** Client connections accepted. */
  accepted: number;
  /** Upstream connections established (not attempts). */
  upstreamConnects: number;
  /** Links open now (silent ones included). */
  active: number;
  /** Bytes written to upstream sockets (client → server, after the toxics). */
  bytesUp: number;
  /** Bytes written to client sockets (server → client, after the toxics). */
  bytesDown: number;
  /** TCP resets sent to clients (resetPeer, failed upstream connects). */
  resets: number;
}

// ------------------------------------------------------------------------- links

class Link {
  readonly up: Pipe;
  readonly down: Pipe;
  /** null for a silent link (acceptSilently): nothing is ever dialled. */
  readonly upstream: Socket | null;
  /** What each toxic hitting this link put in place, to undo on removal. */
  readonly effects = new Map<ToxicDef, Effect>();
  readonly finished: Promise<void>;
  #clientClosed = false;
  #upstreamClosed: boolean;
  #resolveFinished!: () => void;

  constructor(
    readonly client: Socket,
    upstream: Socket | null,
    stats: ProxyStats,
    onFinished: (link: Link) => void,
  ) {
    this.upstream = upstream;
    this.#upstreamClosed = upstream === null;
    this.finished = new Promise<void>((resolve) => (this.#resolveFinished = resolve));

    this.up = new Pipe((item) => {
      if (upstream === null) {
        // Silent: swallow the data, but let a client that gives up (FIN) take the link
        // with it, so a pool's connect timeout leaves nothing open here.
        if (item === EOF) endSocket(client, true);
        return;
      }
      if (item === EOF) endSocket(upstream, client.destroyed);
      else if (writable(upstream)) {
        stats.bytesUp += item.length;
        upstream.write(item);
      }
    });
    this.down = new Pipe((item) => {
      if (item === EOF) endSocket(client, upstream === null || upstream.destroyed);
      else if (writable(client)) {
        stats.bytesDown += item.length;
        client.write(item);
      }
    });

    const finishIfDone = (): void => {
      if (!this.#clientClosed || !this.#upstreamClosed) return;
      this.up.kill();
      this.down.kill();
      for (const effect of this.effects.values()) effect.undo(false);
      this.effects.clear();
      onFinished(this);
      this.#resolveFinished();
    };

    // ECONNRESET / EPIPE are business as usual for a chaos proxy: every socket gets an
    // 'error' listener (an unlistened one would crash the process), and 'close' (which
    // always follows) does the bookkeeping.
    client.on('error', () => {});
    client.on('data', (chunk: Buffer) => this.up.push(chunk));
    client.on('end', () => this.up.end());
    client.on('close', () => {
      this.#clientClosed = true;
      this.up.end(); // no-op after a clean 'end'
      finishIfDone();
    });
    if (upstream !== null) {
      upstream.on('error', () => {});
      upstream.on('data', (chunk: Buffer) => this.down.push(chunk));
      upstream.on('end', () => this.down.end());
      upstream.on('close', () => {
        this.#upstreamClosed = true;
        this.down.end();
        finishIfDone();
      });
    }
  }

  pipe(way: Way): Pipe {
    return way === 'upstream' ? this.up : this.down;
  }

  /** Abrupt close of both sockets (FIN, or RST if unread data is pending: kernel rules). */
  destroy(): void {
    this.up.kill();
    this.down.kill();
    this.client.destroy();
    this.upstream?.destroy();
  }

  /** Send a FIN both ways now, dropping whatever the toxics still hold. */
  end(): void {
    this.up.kill();
    this.down.kill();
    // Why not destroy(): the peers must see a graceful close; the sockets are destroyed
    // by Node once the peers end too (allowHalfOpen sockets self-destroy when both halves
    // are done). Incoming data is still read (and dropped by the dead pipes), so the
    // kernel never resets the connection over unread bytes.
    if (!this.client.destroyed) this.client.end();
    if (this.upstream !== null && !this.upstream.destroyed) this.upstream.end();
  }
}

function writable(socket: Socket): boolean {
  return !socket.destroyed && !socket.writableEnded;
}

/**
 * Forward an end of stream to `socket`. A half-close stays a half-close (the peer may
 * still answer), but once the source is gone for good nobody could read that answer:
 * then flush and close the socket entirely, so the link does not wait on the peer.
 */
function endSocket(socket: Socket, sourceGone: boolean): void {
  if (socket.destroyed) return;
  if (sourceGone) socket.destroySoon();
  else if (!socket.writableEnded) socket.end();
}

// ------------------------------------------------------------------------- toxics

/** Undoes what one toxic did to one link. `flush`: release held data (removal) or not (link gone). */
interface Effect {
  undo(flush: boolean): void;
}

interface ToxicDef {
  readonly name: string;
  readonly ways: readonly Way[];
  readonly toxicity: number;
  readonly scope: 'all' | 'existing' | 'new';
  /** The per-direction part, if any. */
  readonly stage?: (link: Link, way: Way) => Stage;
  /** The whole-link part, if any (timers); returns its cleanup. */
  readonly onLink?: (link: Link) => () => void;
  /** Links this toxic currently hits. */
  readonly links: Set<Link>;
}

function ways(direction: Direction): readonly Way[] {
  return direction === 'both' ? ['upstream', 'downstream'] : [direction];
}

function opposite(way: Way): Way {
  return way === 'upstream' ? 'downstream' : 'upstream';
}

function checkNumber(what: string, value: number, min: number): void {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`${what} must be a finite number >= ${min}, got ${value}`);
}

/** net.connect() throws synchronously on a bad port: catch it where the test made it. */
function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new RangeError(`upstream port must be an integer in 1..65535, got ${port}`);
}

/**
 * Call `fire` once at least `ms` have passed by performance.now() (plain setTimeout may
 * run a fraction of a millisecond early by that clock); returns the cancel function.
 */
function after(ms: number, fire: () => void): () => void {
  const due = performance.now() + ms;
  let timer: NodeJS.Timeout;
  const check = (): void => {
    const left = due - performance.now();
    if (left > 0) timer = setTimeout(check, Math.ceil(left));
    else fire();
  };
  timer = setTimeout(check, ms);
  return () => clearTimeout(timer);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ------------------------------------------------------------------------- the proxy

export class ChaosProxy {
  readonly host: string;
  readonly port: number;
  #upstreamHost: string;
  #upstreamPort: number;
  #server: net.Server | null;
  #closed = false;
  readonly #links = new Set<Link>();
  /** Every toxic in place (acceptSilently ones excluded), in the order they were added. */
  readonly #toxics = new Set<ToxicDef>();
  /** Live acceptSilently() toxics; while any exists, new links are silent. */
  readonly #silencers = new Set<object>();
  readonly #stats: ProxyStats = { accepted: 0, upstreamConnects: 0, active: 0, bytesUp: 0, bytesDown: 0, resets: 0 };
  #nextToxicId = 1;

  private constructor(host: string, port: number, server: net.Server, upstreamHost: string, upstreamPort: number) {
    this.host = host;
    this.port = port;
    this.#server = server;
    this.#upstreamHost = upstreamHost;
    this.#upstreamPort = upstreamPort;
  }

  static async start(options: { upstreamHost: string; upstreamPort: number; host?: string; port?: number }): Promise<ChaosProxy> {
    const host = options.host ?? '127.0.0.1';
    checkPort(options.upstreamPort);
    let proxy: ChaosProxy | undefined;
    // The handler reaches the proxy through this variable: connections cannot be
    // accepted before it is set (no I/O polling happens between 'listening' and here).
    const server = await listen(host, options.port ?? 0, (socket) => {
      if (proxy === undefined) socket.destroy();
      else proxy.#accept(socket);
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('ChaosProxy: unexpected server address');
    proxy = new ChaosProxy(host, address.port, server, options.upstreamHost, options.upstreamPort);
    return proxy;
  }

  stats(): ProxyStats {
    return { ...this.#stats, active: this.#links.size };
  }

  /** Where links accepted from now on connect; existing links keep their upstream. */
  setUpstream(host: string, port: number): void {
    checkPort(port);
    this.#upstreamHost = host;
    this.#upstreamPort = port;
  }

  // ----------------------------------------------------------------- toxics

  /** Delay every chunk (and the end of stream) by `ms` ± `jitterMs`, keeping byte order. */
  latency(ms: number, jitterMs = 0, options: ToxicOptions = {}): Toxic {
    checkNumber('latency ms', ms, 0);
    checkNumber('latency jitterMs', jitterMs, 0);
    return this.#add('latency', options, { stage: () => new LatencyStage(ms, jitterMs) });
  }

  /** Limit the rate to `kilobytesPerSecond` (1 KB = 1000 bytes) per link and direction. */
  bandwidth(kilobytesPerSecond: number, options: ToxicOptions = {}): Toxic {
    if (!(kilobytesPerSecond > 0) || !Number.isFinite(kilobytesPerSecond)) {
      throw new RangeError(`bandwidth must be a finite number > 0, got ${kilobytesPerSecond}`);
    }
    return this.#add('bandwidth', options, { stage: () => new BandwidthStage(kilobytesPerSecond) });
  }

  /** Cut chunks into pieces of `averageBytes` ± `varianceBytes`, `delayMicros` apart. */
  slicer(averageBytes: number, varianceBytes: number, delayMicros: number, options: ToxicOptions = {}): Toxic {
    checkNumber('slicer averageBytes', averageBytes, 1);
    checkNumber('slicer varianceBytes', varianceBytes, 0);
    checkNumber('slicer delayMicros', delayMicros, 0);
    return this.#add('slicer', options, {
      stage: () => new SlicerStage(averageBytes, varianceBytes, delayMicros / 1000),
    });
  }

  /** Read and drop data; sockets stay open. */
  blackhole(options: ToxicOptions = {}): Toxic {
    return this.#add('blackhole', options, { stage: () => new BlackholeStage() });
  }

  /** Drop data, and `ms` after the toxic starts acting on a link destroy both its sockets (0: never). */
  timeout(ms: number, options: ToxicOptions = {}): Toxic {
    checkNumber('timeout ms', ms, 0);
    return this.#add('timeout', options, {
      stage: () => new BlackholeStage(),
      ...(ms > 0 && { onLink: (link: Link) => after(ms, () => link.destroy()) }),
    });
  }

  /** `ms` after the toxic starts acting on a link (at once by default), RST the client and destroy the upstream socket. */
  resetPeer(ms = 0, options: ToxicOptions = {}): Toxic {
    checkNumber('resetPeer ms', ms, 0);
    return this.#add('reset_peer', options, {
      onLink: (link) => {
        if (ms > 0) return after(ms, () => this.#reset(link));
        this.#reset(link);
        return () => {};
      },
    });
  }

  /** When a side closes, hold the close back from the other side for `ms`. */
  slowClose(ms: number, options: ToxicOptions = {}): Toxic {
    checkNumber('slowClose ms', ms, 0);
    return this.#add('slow_close', options, { stage: () => new SlowCloseStage(ms) });
  }

  /** Forward exactly `bytes` in each chosen direction, then close the link (FIN both ways). */
  limitData(bytes: number, options: ToxicOptions = {}): Toxic {
    checkNumber('limitData bytes', bytes, 0);
    return this.#add('limit_data', options, {
      // The reverse direction gets its EOF at its entry: what it already holds still
      // reaches its peer, then the FIN.
      stage: (link, way) => new LimitDataStage(bytes, () => link.pipe(opposite(way)).end()),
    });
  }

  /**
   * Links accepted while this toxic lives are never connected upstream nor forwarded:
   * the client's TCP connect succeeds and then nothing happens (its protocol handshake
   * hangs). remove() only affects later links; held ones stay silent until killAll(),
   * down() or close(), or until the client closes its end (then the link closes).
   */
  acceptSilently(): Toxic {
    const token = {};
    this.#silencers.add(token);
    return { name: `accept_silently-${this.#nextToxicId++}`, remove: () => void this.#silencers.delete(token) };
  }

  /** Remove every toxic (acceptSilently ones included). */
  clearToxics(): void {
    for (const def of [...this.#toxics]) this.#remove(def);
    this.#silencers.clear();
  }

  // ----------------------------------------------------------------- lifecycle

  /** Stop listening (new connects get ECONNREFUSED) and destroy every link. Toxics stay. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    const links = [...this.#links];
    for (const link of links) link.destroy();
    const closed = server === null ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()));
    // Waiting for every link's 'close' events too: they come after the sockets' handles
    // are released, so once down() resolves no socket of ours is left.
    await Promise.all([closed, ...links.map((link) => link.finished)]);
    // The server's close callback, unlike a socket's 'close', runs before libuv has
    // released the listening handle (that happens in the loop's close phase). Two
    // setImmediate turns always get past it, so a caller counting active handles (or
    // rebinding the port) right after down() sees it gone.
    if (server !== null) for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Listen again on the same port (retrying briefly while the port is busy). */
  async up(): Promise<void> {
    if (this.#closed) throw new Error('ChaosProxy: up() after close()');
    if (this.#server !== null) return;
    this.#server = await listen(this.host, this.port, (socket) => this.#accept(socket), 2_000);
  }

  /** Send a FIN to both sides of every link (graceful close); held data is dropped. */
  killAll(): void {
    for (const link of this.#links) link.end();
  }

  /** down(), remove every toxic, and refuse up() from now on. Leaves no timer nor socket behind. */
  async close(): Promise<void> {
    this.#closed = true;
    this.clearToxics();
    await this.down();
  }

  // ----------------------------------------------------------------- internals

  #accept(client: Socket): void {
    this.#stats.accepted++;
    if (this.#server === null) {
      // A connection that raced down(): treat it as refused.
      client.on('error', () => {});
      client.destroy();
      return;
    }
    client.setNoDelay(true); // a proxy must not add Nagle delays of its own

    let upstream: Socket | null = null;
    if (this.#silencers.size === 0) {
      upstream = net.connect({ host: this.#upstreamHost, port: this.#upstreamPort, allowHalfOpen: true });
      upstream.setNoDelay(true);
      upstream.once('connect', () => this.#stats.upstreamConnects++);
    }
    const link = new Link(client, upstream, this.#stats, (done) => {
      this.#links.delete(done);
      for (const def of this.#toxics) def.links.delete(done);
    });
    this.#links.add(link);

    if (upstream !== null) {
      let established = false;
      upstream.once('connect', () => (established = true));
      upstream.once('error', () => {
        // The connect failed (ECONNREFUSED...): reset the client (see the file header).
        // Errors on an established connection just close the link like any close.
        if (!established) this.#reset(link);
      });
    }

    for (const def of this.#toxics) {
      if (def.scope !== 'existing' && roll(def.toxicity)) this.#apply(def, link);
    }
  }

  #reset(link: Link): void {
    if (!link.client.destroyed) {
      this.#stats.resets++;
      link.client.resetAndDestroy();
    }
    link.upstream?.destroy();
    link.up.kill();
    link.down.kill();
  }

  #add(kind: string, options: ToxicOptions, parts: Pick<ToxicDef, 'stage' | 'onLink'>): Toxic {
    const toxicity = options.toxicity ?? 1;
    if (!(toxicity >= 0 && toxicity <= 1)) throw new RangeError(`toxicity must be within 0..1, got ${toxicity}`);
    const def: ToxicDef = {
      name: `${kind}-${this.#nextToxicId++}`,
      ways: ways(options.direction ?? 'both'),
      toxicity,
      scope: options.scope ?? 'all',
      links: new Set(),
      ...parts,
    };
    this.#toxics.add(def);
    if (def.scope !== 'new') {
      for (const link of [...this.#links]) if (roll(toxicity)) this.#apply(def, link);
    }
    return { name: def.name, remove: () => this.#remove(def) };
  }

  #apply(def: ToxicDef, link: Link): void {
    const placed: Array<{ pipe: Pipe; stage: Stage }> = [];
    if (def.stage !== undefined) {
      for (const way of def.ways) {
        const pipe = link.pipe(way);
        const stage = def.stage(link, way);
        pipe.add(stage);
        placed.push({ pipe, stage });
      }
    }
    let cleanup: (() => void) | undefined;
    const effect: Effect = {
      undo: (flush) => {
        cleanup?.();
        for (const { pipe, stage } of placed) {
          if (flush) pipe.remove(stage);
          else stage.dispose();
        }
      },
    };
    def.links.add(link);
    link.effects.set(def, effect);
    // Last: a link-level effect may end the link on the spot (resetPeer(0)).
    cleanup = def.onLink?.(link);
  }

  #remove(def: ToxicDef): void {
    if (!this.#toxics.delete(def)) return;
    for (const link of def.links) {
      const effect = link.effects.get(def);
      link.effects.delete(def);
      effect?.undo(true);
    }
    def.links.clear();
  }
}

/** Per-link toxicity roll. Math.random() is in [0, 1): 1 always hits, 0 never does. */
function roll(toxicity: number): boolean {
  return Math.random() < toxicity;
}

/**
 * Listen on host:port. With `retryForMs`, keep trying while the port is busy: after
 * down(), another process (or a slow close of ours) may hold it for a moment.
 */
async function listen(host: string, port: number, onConnection: (socket: Socket) => void, retryForMs = 0): Promise<net.Server> {
  const deadline = performance.now() + retryForMs;
  for (;;) {
    try {
      return await listenOnce(host, port, onConnection);
    } catch (error) {
      const busy = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (!busy || performance.now() >= deadline) throw error;
      await delay(25);
    }
  }
}

function listenOnce(host: string, port: number, onConnection: (socket: Socket) => void): Promise<net.Server> {
  // allowHalfOpen: a client's FIN must not end our side by itself; it travels the pipe
  // (behind the data toxics still hold) and ends the upstream side, then ours in turn.
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      server.on('error', () => {}); // e.g. EMFILE on accept: not worth a crash
      resolve(server);
    });
  });
}
