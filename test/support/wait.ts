// Small timing and error helpers shared by the real-server test harnesses (PostgreSQL:
// test/integration/harness.ts and providers.ts; MariaDB: test/mysql/harness.ts,
// test/mysql/providers.ts and test/support/mariadb.ts). No side effects on import.
import { createServer } from 'node:net';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it returns a truthy value (returned) or `timeoutMs` passes (throws with `what`). */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, { timeoutMs = 5000, everyMs = 20 } = {}): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${firstLine(last)})`);
    await sleep(everyMs);
  }
}

/** The rejection of `promise` (fails if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string; cause?: unknown }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** `promise`, or a rejection naming `what` after `ms` (the promise itself is not cancelled). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A TCP port nothing listens on right now (the servers' ports; tests use it for "nobody there"). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** The first line of an error message (or of a value), at most 300 characters. */
export function firstLine(value: unknown): string {
  const text = value instanceof Error ? value.message : String(value);
  return text.split('\n', 1)[0]!.slice(0, 300);
}

/**
 * Record the process's unhandled rejections and uncaught exceptions from now on (FAULTS.md I4;
 * the real-server harnesses assert none per file). `stop()` waits a moment so rejections from
 * the last turns are reported, stops listening, and returns them, one string each.
 */
export function watchProcessErrors(): { stop(): Promise<string[]> } {
  const seen: { kind: string; error: unknown }[] = [];
  const onRejection = (reason: unknown): void => {
    seen.push({ kind: 'unhandledRejection', error: reason });
  };
  const onException = (error: unknown): void => {
    seen.push({ kind: 'uncaughtException', error });
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    async stop() {
      await sleep(50);
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
      return seen.map(({ kind, error }) => `${kind}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    },
  };
}
