/**
 * What the adapter remembers about each configured host between creates: its last seen role,
 * its connect failures and backoff, and a generation that retires all its connections at once.
 * Shared by every create of one pool (not process-wide, unlike pgjdbc's tracker).
 */
import { PoolError } from '../../index.js';
import type { HostAddress, TargetSessionAttrs } from './hosts.js';

/** A server's role as last seen; 'read-only': not in recovery, but default_transaction_read_only is on (a fenced primary). */
export type HostRole = 'unknown' | 'primary' | 'standby' | 'read-only';
export type ConnectFailureReason = 'refused' | 'timeout' | 'auth' | 'wrong-role' | 'other';

export interface HostState {
  readonly key: string;
  readonly address: HostAddress;
  role: HostRole;
  /** Monotonic ms of the last role observation. */
  roleAt: number;
  failures: number;
  /** Monotonic ms of the last connect failure. */
  failedAt: number;
  downUntil: number;
  lastError: unknown;
  generation: number;
  connections: number;
  readonly counters: { connects: number; connectFailures: Record<ConnectFailureReason, number>; roleChanges: number };
}

export function hostKey(address: HostAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

export function newHostState(address: HostAddress): HostState {
  return {
    key: hostKey(address),
    address,
    role: 'unknown',
    roleAt: -Infinity,
    failures: 0,
    failedAt: -Infinity,
    downUntil: -Infinity,
    lastError: undefined,
    generation: 0,
    connections: 0,
    counters: { connects: 0, connectFailures: { refused: 0, timeout: 0, auth: 0, 'wrong-role': 0, other: 0 }, roleChanges: 0 },
  };
}

/** libpq's acceptance rules; prefer-standby's second pass (anything) is the walk's business. */
export function accepts(target: TargetSessionAttrs, role: HostRole): boolean {
  switch (target) {
    case 'any':
      return true;
    case 'read-write':
      return role === 'primary';
    case 'read-only':
      return role === 'standby' || role === 'read-only';
    case 'primary':
      return role === 'primary' || role === 'read-only';
    case 'standby':
    case 'prefer-standby':
      return role === 'standby';
  }
}

/**
 * libpq's reading of ParameterStatus (PostgreSQL 14+): undefined when the server did not
 * report both settings, and a query has to decide.
 */
export function roleFromParams(params: ReadonlyMap<string, string>): HostRole | undefined {
  const standby = params.get('in_hot_standby');
  const readOnly = params.get('default_transaction_read_only');
  if (standby === undefined || readOnly === undefined) return undefined;
  return standby === 'on' ? 'standby' : readOnly === 'on' ? 'read-only' : 'primary';
}

/** Connect backoff of one host: 250 ms doubling to 5 s, jittered up to ×2 so pools do not march in step. */
export function hostBackoffMs(failures: number, random: () => number = Math.random): number {
  return Math.min(5000, 250 * 2 ** Math.max(0, failures - 1)) * (1 + random());
}

/**
 * A host is suspect (tried after all the others) while it is in backoff, or for hostRecheckMs
 * after it failed or showed a role the target refuses, as pgjdbc's host status tracker does.
 */
export function isSuspect(host: HostState, target: TargetSessionAttrs, now: number, recheckMs: number): boolean {
  if (host.downUntil > now) return true;
  if (host.failures > 0 && now - host.failedAt < recheckMs) return true;
  return host.role !== 'unknown' && !accepts(target, host.role) && now - host.roleAt < recheckMs;
}

/** One host tried by a create that found no suitable host. */
export interface HostAttempt {
  /** 'host:port' ('[v6]:port'), as configured. */
  readonly host: string;
  /** Why the connect failed; absent when it worked but the role was not wanted. */
  readonly error?: unknown;
  /** The role the host showed, when the connect worked. */
  readonly role?: HostRole;
}

/** No configured host gave a session of the wanted kind: one attempt per host tried, in order. */
export class NoSuitableHostError extends PoolError {
  /** One entry per host tried, in the order tried. */
  readonly attempts: readonly HostAttempt[];
  /** The target no host met. */
  readonly targetSessionAttrs: TargetSessionAttrs;
  /** False when every host failed in a way a retry cannot fix. */
  readonly retryable: boolean;

  constructor(target: TargetSessionAttrs, attempts: readonly HostAttempt[], retryable: boolean) {
    const parts = attempts.map((a) => `${a.host} ${a.error !== undefined ? describe(a.error) : (a.role ?? 'unknown')}`);
    super(`No host accepted a ${target} session: ${parts.join(', ')}`, 'POOL_NO_SUITABLE_HOST', {
      cause: attempts.findLast((a) => a.error !== undefined)?.error,
    });
    this.attempts = attempts;
    this.targetSessionAttrs = target;
    this.retryable = retryable;
  }
}

function describe(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code === 'ECONNREFUSED' ? 'refused' : code;
  return error instanceof Error ? error.message.slice(0, 80) : 'failed';
}

export function failureReason(error: unknown, timedOut: boolean): ConnectFailureReason {
  if (timedOut) return 'timeout';
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (typeof code === 'string' && (code.startsWith('28') || code === '3D000')) return 'auth';
  return 'other';
}
