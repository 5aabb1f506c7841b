// Programs run the way users run them: a fresh `node` on a small ESM script that imports
// the built package (dist/), with its exit code, output and run time.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DIST_INDEX = new URL('../../dist/index.js', import.meta.url);
export const DIST_POSTGRES = new URL('../../dist/adapters/postgres/index.js', import.meta.url);

export interface ChildResult {
  /** The exit code; null when killed. */
  readonly status: number | null;
  /** 'SIGKILL' when it was still running at `timeoutMs`. */
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall-clock run time. */
  readonly ms: number;
}

/**
 * Run `script` as an ES module in a fresh `node` (`LIFEGUARD_DIST` and `LIFEGUARD_PG` point
 * at the built entries), killed at `timeoutMs`. Never throws for a failing child: callers
 * assert on its exit code and output.
 */
export function runNode(script: string, options: { env?: Record<string, string>; timeoutMs?: number; nodeArgs?: string[] } = {}): ChildResult {
  if (!existsSync(fileURLToPath(DIST_INDEX))) {
    throw new Error(`${fileURLToPath(DIST_INDEX)} is missing: run \`npm run build\` first (\`npm test\` builds before running vitest).`);
  }
  const started = performance.now();
  const result = spawnSync(process.execPath, [...(options.nodeArgs ?? []), '--input-type=module', '-e', script], {
    env: { ...process.env, LIFEGUARD_DIST: DIST_INDEX.href, LIFEGUARD_PG: DIST_POSTGRES.href, ...options.env },
    timeout: options.timeoutMs ?? 8000,
    killSignal: 'SIGKILL',
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr, ms: performance.now() - started };
}

/** A one-line account of a child's end, for assertion messages. */
export function describeChild(result: ChildResult): string {
  const how = result.signal === 'SIGKILL' ? 'was still running at its time limit (killed)' : `exited with status ${String(result.status)}`;
  return `child ${how} after ${Math.round(result.ms)} ms\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}
