import type { Adapter } from '../../src/index.js';
import type { VirtualClock } from './virtual-clock.js';

export interface FakeResource {
  readonly id: number;
  broken: boolean;
  destroyed: boolean;
}

/** An error with a `code`, like a driver's. */
export function codedError(message: string, code: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/** What a hook does when called: succeed, fail, take `ms` of virtual time, or never settle. */
export type Behaviour = { kind: 'ok' } | { kind: 'fail'; error?: unknown } | { kind: 'slow'; ms: number } | { kind: 'never' } | { kind: 'throw'; error?: unknown };

export interface FakeOptions {
  /** Which optional hooks the adapter has. Default: isBroken, ping, isRetryable, isFatal (no reset). */
  readonly hooks?: ReadonlyArray<'isBroken' | 'ping' | 'reset' | 'isRetryable' | 'isFatal'>;
}

/**
 * A scriptable adapter: queue behaviours per hook (`script.create.push(...)`), or set a
 * default; count every call and every live resource.
 */
export class FakeAdapter {
  readonly clock: VirtualClock;
  readonly live = new Set<FakeResource>();
  readonly script = {
    create: [] as Behaviour[],
    ping: [] as Behaviour[],
    reset: [] as Behaviour[],
    destroy: [] as Behaviour[],
  };
  readonly defaults: Record<'create' | 'ping' | 'reset' | 'destroy', Behaviour> = {
    create: { kind: 'ok' },
    ping: { kind: 'ok' },
    reset: { kind: 'ok' },
    destroy: { kind: 'ok' },
  };
  /** Default create error: transient, like a refused connection. */
  createError: unknown = codedError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED');
  retryable: (error: unknown) => boolean = (error) => (error as { code?: string })?.code !== 'FATAL';
  fatal: (error: unknown) => boolean = (error) => (error as { code?: string })?.code === 'CONNECTION_LOST';

  createAttempts = 0;
  created = 0;
  destroyed = 0;
  pings = 0;
  resets = 0;
  /** Signals passed to create, to check they abort. */
  readonly createSignals: AbortSignal[] = [];
  #nextId = 0;
  readonly #hooks: ReadonlySet<string>;

  constructor(clock: VirtualClock, options: FakeOptions = {}) {
    this.clock = clock;
    this.#hooks = new Set(options.hooks ?? ['isBroken', 'ping', 'isRetryable', 'isFatal']);
  }

  /** Make the next `n` creates fail with `error` (default: `createError`). */
  failCreates(n: number, error?: unknown): void {
    for (let i = 0; i < n; i++) this.script.create.push({ kind: 'fail', error });
  }

  adapter(): Adapter<FakeResource> {
    const adapter: Adapter<FakeResource> = {
      create: ({ signal }) => {
        this.createAttempts++;
        this.createSignals.push(signal);
        return this.#run('create', () => {
          const resource: FakeResource = { id: ++this.#nextId, broken: false, destroyed: false };
          this.created++;
          this.live.add(resource);
          return resource;
        }, this.createError);
      },
      destroy: (resource) =>
        this.#run('destroy', () => {
          resource.destroyed = true;
          this.destroyed++;
          this.live.delete(resource);
        }, new Error('destroy failed')),
    };
    if (this.#hooks.has('isBroken')) adapter.isBroken = (resource) => resource.broken;
    if (this.#hooks.has('ping')) {
      adapter.ping = (resource) => {
        this.pings++;
        return this.#run('ping', () => {
          if (resource.broken) throw new Error('ping on a broken resource');
        }, new Error('ping failed'));
      };
    }
    if (this.#hooks.has('reset')) {
      adapter.reset = () => {
        this.resets++;
        return this.#run('reset', () => undefined, new Error('reset failed'));
      };
    }
    if (this.#hooks.has('isRetryable')) adapter.isRetryable = (error) => this.retryable(error);
    if (this.#hooks.has('isFatal')) adapter.isFatal = (error) => this.fatal(error);
    return adapter;
  }

  #run<R>(hook: keyof FakeAdapter['script'], succeed: () => R, defaultError: unknown): Promise<R> {
    const behaviour = this.script[hook].shift() ?? this.defaults[hook];
    switch (behaviour.kind) {
      case 'ok':
        return Promise.resolve().then(succeed);
      case 'fail':
        return Promise.reject(behaviour.error ?? defaultError);
      case 'throw':
        throw behaviour.error ?? defaultError;
      case 'slow':
        return new Promise<void>((resolve) => this.clock.setTimeout(resolve, behaviour.ms)).then(succeed);
      case 'never':
        return new Promise<R>(() => {});
    }
  }
}
