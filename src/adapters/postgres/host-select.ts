/**
 * The multi-host adapter: each create walks the configured hosts (fresh ones first, then the
 * suspect ones, as pgjdbc does) with a per-host bound, checks the server's role as libpq does,
 * and tags the client with its host and that host's generation. A role change or a 25006 on
 * any client retires that host's connections only. Every per-host hook is the single-host
 * adapter's, so a multi-host client is handled exactly like any other once it is made.
 */
import { channel } from 'node:diagnostics_channel';
import type pg from 'pg';
import { PoolError, type Adapter, type CreateContext } from '../../index.js';
import type { ResolvedHosts } from './hosts.js';
import { hardClose, internals, state } from './client-state.js';
import {
  NoSuitableHostError, accepts, failureReason, hostBackoffMs, isSuspect, newHostState, roleFromParams,
  type HostAttempt, type HostRole, type HostState,
} from './host-state.js';

/** `{ pool, host, from, to, error? }` on every host state or role transition. */
export const HOST_CHANNEL = 'lifeguard:pg:host';
const hostChannel = channel(HOST_CHANNEL);

interface Tag {
  readonly host: HostState;
  /** The host's generation when the client was made (retire() bumps it: a count of retirements). */
  readonly generation: number;
  readonly evict: (reason?: 'broken' | 'invalidated') => void;
}

export interface MultiHostAdapter extends Adapter<pg.Client> {
  /** Per-host state, in configuration order (for health and metrics). */
  readonly hostStates: readonly HostState[];
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

const STOPS_WALK = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('28') || code === '3D000');
};

/** One round trip for servers that do not report their role (PostgreSQL < 14, or a replayed ParameterStatus). */
async function queryRole(client: pg.Client): Promise<HostRole> {
  const result = await client.query<{ r: boolean; t: string }>("SELECT pg_catalog.pg_is_in_recovery() AS r, pg_catalog.current_setting('transaction_read_only') AS t");
  const row = result.rows[0]!;
  return row.r ? 'standby' : row.t === 'on' ? 'read-only' : 'primary';
}

export function multiHostAdapter(
  config: ResolvedHosts,
  perHost: (address: { host: string; port: number }) => Adapter<pg.Client>,
  options: { poolName?: string; now?: () => number; onError?: ((error: unknown) => void) | undefined } = {},
): MultiHostAdapter {
  const now = options.now ?? (() => performance.now());
  const hosts = config.hosts.map(newHostState);
  const adapters = new Map(hosts.map((h) => [h, perHost(h.address)]));
  const tags = new WeakMap<pg.Client, Tag>();
  const live = new Map<HostState, Set<pg.Client>>(hosts.map((h) => [h, new Set()]));
  const target = config.targetSessionAttrs;

  const publish = (host: HostState, from: string, to: string, error?: unknown): void => {
    if (hostChannel.hasSubscribers) hostChannel.publish({ pool: options.poolName, host: host.key, from, to, ...(error === undefined ? {} : { error }) });
  };

  const retire = (host: HostState): void => {
    host.generation++;
    for (const client of live.get(host)!) tags.get(client)?.evict('invalidated');
  };

  const observeRole = (host: HostState, role: HostRole): void => {
    host.roleAt = now();
    if (role === host.role) return;
    const from = host.role;
    host.role = role;
    publish(host, from, role);
    if (from === 'unknown') return;
    host.counters.roleChanges++;
    // Once per host transition, not per connection: a failover is news, its fallout is not.
    options.onError?.(new PoolError(`PostgreSQL host ${host.key} changed role from ${from} to ${role}`, 'POOL_HOST_ROLE_CHANGED'));
  };

  const recordFailure = (host: HostState, error: unknown, timedOut: boolean): void => {
    const wasUp = host.failures === 0;
    host.failures++;
    host.failedAt = now();
    host.downUntil = now() + hostBackoffMs(host.failures);
    host.lastError = error;
    host.counters.connectFailures[failureReason(error, timedOut)]++;
    if (wasUp) publish(host, 'up', 'down', error);
  };

  /** Runtime: what the server says later on this client (a promotion, a fencing, a 25006). */
  const watch = (client: pg.Client, host: HostState): void => {
    const connection = internals(client).connection;
    connection.on('parameterStatus', (message: { parameterName?: string }) => {
      if (message.parameterName !== 'in_hot_standby' && message.parameterName !== 'default_transaction_read_only') return;
      const role = roleFromParams(state(client).params);
      if (role === undefined || role === host.role) return;
      observeRole(host, role);
      if (!accepts(target, role)) retire(host);
    });
    connection.on('errorMessage', (error: { code?: unknown }) => {
      if (error?.code !== '25006' || config.onReadOnly !== 'invalidate-host') return;
      const role = roleFromParams(state(client).params);
      // The session says it can write: the 25006 came from the caller's own READ ONLY transaction.
      if (role === 'primary') return;
      observeRole(host, role === 'standby' ? 'standby' : 'read-only');
      retire(host);
    });
  };

  /** Connect to one host within its bound; the client, or why not. */
  async function tryHost(host: HostState, ctx: CreateContext): Promise<{ client?: pg.Client; error?: unknown; timedOut?: boolean }> {
    const bound = AbortSignal.timeout(Math.max(1, Math.ceil(config.hostConnectTimeoutMs)));
    const signal = AbortSignal.any([ctx.signal, bound]);
    let client: pg.Client | undefined;
    try {
      host.counters.connects++;
      client = await adapters.get(host)!.create({ signal, attempt: ctx.attempt, evict: () => tags.get(client!)?.evict() });
      if (target !== 'any' || hosts.length > 1) {
        const role = roleFromParams(state(client).params) ?? (await raceSignal(queryRole(client), signal));
        observeRole(host, role);
      }
      return { client };
    } catch (error) {
      // A role check that failed or ran out of time leaves the protocol state unknown.
      if (client !== undefined) hardClose(client);
      return { error: bound.aborted && !ctx.signal.aborted ? Object.assign(new Error(`connect to ${host.key} timed out after ${Math.ceil(config.hostConnectTimeoutMs)} ms (hostConnectTimeoutMs)`, { cause: error }), { code: 'ETIMEDOUT' }) : error, timedOut: bound.aborted };
    }
  }

  const accept = (host: HostState, client: pg.Client, ctx: CreateContext): pg.Client => {
    host.failures = 0;
    host.downUntil = -Infinity;
    host.lastError = undefined;
    tags.set(client, { host, generation: host.generation, evict: ctx.evict });
    live.get(host)!.add(client);
    host.connections++;
    watch(client, host);
    return client;
  };

  const adapter: MultiHostAdapter = {
    hostStates: hosts,

    async create(ctx) {
      const ordered = config.loadBalanceHosts === 'random' ? shuffle([...hosts]) : [...hosts];
      const t = now();
      const fresh = ordered.filter((h) => !isSuspect(h, target, t, config.hostRecheckMs));
      const walk = [...fresh, ...ordered.filter((h) => !fresh.includes(h))];
      const attempts: HostAttempt[] = [];
      let fallback: { host: HostState; client: pg.Client } | undefined;
      let allFatal = true;
      try {
        for (const host of walk) {
          ctx.signal.throwIfAborted();
          const { client, error, timedOut } = await tryHost(host, ctx);
          ctx.signal.throwIfAborted();
          if (client === undefined) {
            recordFailure(host, error, timedOut ?? false);
            attempts.push({ host: host.key, error });
            // libpq and pgx: a refused login or an unknown database is the same on every host.
            if (STOPS_WALK(error)) throw error;
            if (adapters.get(host)!.isRetryable?.(error) !== false) allFatal = false;
            continue;
          }
          if (host.failures > 0) publish(host, 'down', 'up');
          if (accepts(target, host.role)) {
            const chosen = accept(host, client, ctx);
            if (fallback !== undefined) void adapters.get(fallback.host)!.destroy(fallback.client);
            fallback = undefined;
            return chosen;
          }
          allFatal = false;
          host.failures = 0;
          host.downUntil = -Infinity;
          host.counters.connectFailures['wrong-role']++;
          attempts.push({ host: host.key, role: host.role });
          // prefer-standby's second pass: the first other session is kept instead of reconnecting.
          if (target === 'prefer-standby' && fallback === undefined) fallback = { host, client };
          else void adapters.get(host)!.destroy(client);
        }
      } catch (error) {
        if (fallback !== undefined) void adapters.get(fallback.host)!.destroy(fallback.client);
        throw error;
      }
      if (fallback !== undefined) return accept(fallback.host, fallback.client, ctx);
      throw new NoSuitableHostError(target, attempts, !allFatal);
    },

    async destroy(client, signal) {
      const tag = tags.get(client);
      if (tag !== undefined && live.get(tag.host)!.delete(client)) tag.host.connections--;
      await (tag === undefined ? adapters.values().next().value! : adapters.get(tag.host)!).destroy(client, signal);
    },

    isBroken(client) {
      // A retired host's clients need no check here: evict('invalidated') marked each one
      // expired at once, so the core destroys it on return counted as invalidated.
      return adapterOf(client).isBroken?.(client) ?? false;
    },

    isRetryable(error) {
      if (error instanceof NoSuitableHostError) return error.retryable;
      return adapters.values().next().value!.isRetryable?.(error) ?? true;
    },

    probe(signal) {
      // Reachable when any host is: the breaker asks "could a create succeed now".
      const probes = hosts.map((h) => adapters.get(h)!.probe?.(signal) ?? Promise.reject(new Error('no probe')));
      return Promise.any(probes).then(() => undefined);
    },
  };
  const adapterOf = (client: pg.Client): Adapter<pg.Client> => {
    const tag = tags.get(client);
    return tag === undefined ? adapters.values().next().value! : adapters.get(tag.host)!;
  };
  // The remaining hooks are the same function on every per-host adapter: borrow the first's.
  const first = adapters.values().next().value!;
  if (first.isFatal !== undefined) adapter.isFatal = first.isFatal;
  for (const hook of ['ping', 'ref', 'reset'] as const) {
    if (first[hook] !== undefined) (adapter as unknown as Record<string, unknown>)[hook] = (client: pg.Client, ...rest: unknown[]) =>
      (adapterOf(client)[hook] as (...a: unknown[]) => unknown)(client, ...rest);
  }
  return adapter;
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
