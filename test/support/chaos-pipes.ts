// The byte path of the chaos proxy (test/support/chaos-proxy.ts): how one direction of a link
// moves bytes, and what each toxic does to them.
//
// Each direction is a `Pipe`, a chain of `Stage`s (one per toxic hitting that direction, in
// the order they were added) that ends in a sink writing to the destination socket. An end of
// stream (the source's FIN, or the source going away) travels the same chain as an `EOF` item
// behind the data, so a toxic that holds data back (latency, bandwidth, slicer) also holds the
// FIN back, and the peer never sees the connection end before the bytes that were sent ahead
// of it. Reading is never paused: a slow toxic buffers in memory (fine for test volumes).
import { performance } from 'node:perf_hooks';

/** The end of stream, carried through a pipe behind the data that came before it. */
export const EOF = Symbol('EOF');
export type Item = Buffer | typeof EOF;

export type Way = 'upstream' | 'downstream';

/** One toxic's effect on one direction of one link. */
export abstract class Stage {
  #out: (item: Item) => void = () => {};

  /** Called by the pipe: where this stage's output goes. */
  bind(out: (item: Item) => void): void {
    this.#out = out;
  }

  protected emit(item: Item): void {
    this.#out(item);
  }

  /** Take one item (data or EOF) from the previous stage. */
  abstract push(item: Item): void;

  /** The toxic is being removed: pass on everything held, now and in order. */
  flush(): void {}

  /** The link is gone or the toxic removed: drop what is held, clear timers. */
  dispose(): void {}
}

/**
 * One direction of a link: stages in the order their toxics were added, then the sink.
 * Stages can come and go while data is in flight; a removed stage first flushes into the
 * stage after it, so order is kept across removals.
 */
export class Pipe {
  readonly #stages: Stage[] = [];
  readonly #sink: (item: Item) => void;
  /** EOF has entered the pipe: later input (there should be none) is ignored. */
  #ended = false;
  /** The link is gone: everything is dropped. */
  #dead = false;

  constructor(sink: (item: Item) => void) {
    this.#sink = sink;
  }

  /** Data read from the source socket. */
  push(chunk: Buffer): void {
    if (this.#ended || this.#dead) return;
    this.#deliver(0, chunk);
  }

  /** The source is done (FIN, error or close); idempotent. */
  end(): void {
    if (this.#ended || this.#dead) return;
    this.#ended = true;
    this.#deliver(0, EOF);
  }

  add(stage: Stage): void {
    // Why look the index up on every emit instead of binding it once: stages before this
    // one may be removed while it still holds data.
    stage.bind((item) => {
      const index = this.#stages.indexOf(stage);
      if (index !== -1) this.#deliver(index + 1, item);
    });
    if (this.#dead) stage.dispose();
    else this.#stages.push(stage);
  }

  remove(stage: Stage): void {
    const index = this.#stages.indexOf(stage);
    if (index === -1) return;
    // Flush while the stage is still in place, so what it held lands just behind what it
    // already emitted and ahead of anything that arrives from now on.
    stage.flush();
    const after = this.#stages.indexOf(stage); // flushing may have killed the link
    if (after !== -1) this.#stages.splice(after, 1);
    stage.dispose();
  }

  /** Drop everything for good (the link is closing). */
  kill(): void {
    this.#dead = true;
    for (const stage of this.#stages.splice(0)) stage.dispose();
  }

  #deliver(index: number, item: Item): void {
    if (this.#dead) return;
    const stage = this.#stages[index];
    if (stage === undefined) this.#sink(item);
    else stage.push(item);
  }
}

/**
 * Items released in order at given (monotonic) times. The ordering guarantee is the
 * callers': they never enqueue an item due before the one ahead of it.
 */
export class TimedQueue {
  readonly #items: Array<{ due: number; item: Item }> = [];
  readonly #emit: (item: Item) => void;
  #timer: NodeJS.Timeout | undefined;
  #disposed = false;

  constructor(emit: (item: Item) => void) {
    this.#emit = emit;
  }

  enqueue(due: number, item: Item): void {
    if (this.#disposed) return;
    // Nothing ahead and already due: skip the timer (a zero-delay toxic adds no tick).
    if (this.#items.length === 0 && due <= performance.now()) {
      this.#emit(item);
      return;
    }
    this.#items.push({ due, item });
    if (this.#timer === undefined) this.#arm();
  }

  flushAll(): void {
    this.#clearTimer();
    while (!this.#disposed) {
      const next = this.#items.shift();
      if (next === undefined) break;
      this.#emit(next.item);
    }
  }

  dispose(): void {
    this.#disposed = true;
    this.#clearTimer();
    this.#items.length = 0;
  }

  #arm(): void {
    const head = this.#items[0];
    if (head === undefined || this.#disposed) return;
    // Why ceil and a re-check in #fire: timers run off libuv's cached loop time and may
    // fire a fraction of a millisecond before performance.now() says the item is due;
    // a test asserting "at least N ms" must never see an early release.
    const wait = Math.max(0, Math.ceil(head.due - performance.now()));
    this.#timer = setTimeout(this.#fire, wait);
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    while (!this.#disposed) {
      const head = this.#items[0];
      if (head === undefined || head.due > now) break;
      this.#items.shift();
      this.#emit(head.item);
    }
    if (this.#timer === undefined) this.#arm();
  };

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** A stage that releases items through a TimedQueue; subclasses decide the due times. */
export abstract class QueuedStage extends Stage {
  protected readonly queue = new TimedQueue((item) => this.emit(item));

  override flush(): void {
    this.queue.flushAll();
  }

  override dispose(): void {
    this.queue.dispose();
  }
}

export class LatencyStage extends QueuedStage {
  #lastDue = -Infinity;

  constructor(
    readonly ms: number,
    readonly jitterMs: number,
  ) {
    super();
  }

  push(item: Item): void {
    const delay = Math.max(0, this.ms + (Math.random() * 2 - 1) * this.jitterMs);
    // Jitter must not reorder bytes: a chunk never overtakes the one before it.
    this.#lastDue = Math.max(this.#lastDue, performance.now() + delay);
    this.queue.enqueue(this.#lastDue, item);
  }
}

export class BandwidthStage extends QueuedStage {
  /** Bytes per millisecond (1 KB = 1000 bytes, as in Toxiproxy). */
  readonly #rate: number;
  /** Largest piece sent at once: 10 ms worth, so a big chunk trickles instead of jumping. */
  readonly #pieceBytes: number;
  /** When the (virtual) wire is free again. */
  #freeAt = -Infinity;

  constructor(kilobytesPerSecond: number) {
    super();
    this.#rate = kilobytesPerSecond;
    this.#pieceBytes = Math.max(1, Math.floor(kilobytesPerSecond * 10));
  }

  push(item: Item): void {
    // Idle time earns no credit: a transfer starting after a pause is limited from its
    // first byte, as Toxiproxy's (sleep-per-chunk) implementation does.
    this.#freeAt = Math.max(this.#freeAt, performance.now());
    if (item === EOF) {
      this.queue.enqueue(this.#freeAt, item);
      return;
    }
    for (let offset = 0; offset < item.length; offset += this.#pieceBytes) {
      const piece = item.subarray(offset, offset + this.#pieceBytes);
      // A piece is released once it has "crossed the wire": delay first, then deliver.
      this.#freeAt += piece.length / this.#rate;
      this.queue.enqueue(this.#freeAt, piece);
    }
  }
}

export class SlicerStage extends QueuedStage {
  #lastDue = -Infinity;

  constructor(
    readonly averageBytes: number,
    readonly varianceBytes: number,
    readonly delayMs: number,
  ) {
    super();
  }

  push(item: Item): void {
    if (item === EOF) {
      this.queue.enqueue(Math.max(this.#lastDue, performance.now()), item);
      return;
    }
    let offset = 0;
    while (offset < item.length) {
      const size = Math.max(1, Math.round(this.averageBytes + (Math.random() * 2 - 1) * this.varianceBytes));
      const piece = item.subarray(offset, offset + size);
      offset += piece.length;
      // Like Toxiproxy: send a piece, wait `delay`, send the next (across chunks too).
      this.#lastDue = Math.max(performance.now(), this.#lastDue + this.delayMs);
      this.queue.enqueue(this.#lastDue, piece);
    }
  }
}

/** Drops data; lets the end of stream through (see the file header). */
export class BlackholeStage extends Stage {
  push(item: Item): void {
    if (item === EOF) this.emit(item);
  }
}

/** Data passes at once; the end of stream is held for `ms`. */
export class SlowCloseStage extends QueuedStage {
  constructor(readonly ms: number) {
    super();
  }

  push(item: Item): void {
    // Nothing follows EOF in a pipe, so data never has to queue behind a held EOF.
    if (item === EOF) this.queue.enqueue(performance.now() + this.ms, item);
    else this.emit(item);
  }
}

/**
 * Forwards exactly `bytes`, then ends this direction (EOF behind the last byte, so later
 * stages such as latency still deliver it) and asks the link to end the other one.
 */
export class LimitDataStage extends Stage {
  #remaining: number;
  #done = false;

  constructor(
    bytes: number,
    readonly onLimit: () => void,
  ) {
    super();
    this.#remaining = bytes;
  }

  push(item: Item): void {
    if (this.#done) return;
    if (item === EOF) {
      this.emit(item);
      return;
    }
    if (item.length < this.#remaining) {
      this.#remaining -= item.length;
      this.emit(item);
      return;
    }
    // Like Toxiproxy: the limit is checked when data arrives, so a zero limit closes the
    // link on its first chunk rather than the moment the toxic is added.
    const last = item.subarray(0, this.#remaining);
    this.#remaining = 0;
    this.#done = true;
    if (last.length > 0) this.emit(last);
    this.emit(EOF);
    this.onLimit();
  }
}
