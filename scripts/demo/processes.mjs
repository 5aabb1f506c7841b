// Process-tree helpers: which processes belong to the embedded server (to freeze them, or
// to kill them when the demo is forced to exit), found through /proc or, without it, ps.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** @returns {Map<number, number>} pid -> parent pid, for every process we can see. */
export function processTable() {
  /** @type {Map<number, number>} */
  const table = new Map();
  if (existsSync('/proc/self/stat')) {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        // Field 4 of /proc/PID/stat is the parent pid; the command name before it may hold spaces.
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        table.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      } catch {
        // The process ended while we looked.
      }
    }
    return table;
  }
  try {
    const out = execFileSync('ps', ['-A', '-o', 'pid=', '-o', 'ppid='], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      const [pid, ppid] = line.trim().split(/\s+/).map(Number);
      if (pid !== undefined && pid > 0 && ppid !== undefined) table.set(pid, ppid);
    }
  } catch {
    // No ps: nothing we can list.
  }
  return table;
}

/**
 * `root` and every process below it, parents first.
 * @param {number} root
 * @param {Map<number, number>} [table]
 * @returns {number[]}
 */
export function processTree(root, table = processTable()) {
  const all = [root];
  for (let i = 0; i < all.length; i++) for (const [pid, ppid] of table) if (ppid === all[i] && pid !== root) all.push(pid);
  return all;
}

/**
 * Send `signal` to each pid, ignoring processes that are gone.
 * @param {number[]} pids
 * @param {NodeJS.Signals} signal
 */
export function signalAll(pids, signal) {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone already.
    }
  }
}

/**
 * Whether `pid` still runs. A zombie (exited, not yet reaped: our own children while the
 * event loop is blocked, or orphans init has not collected yet) does not count.
 * @param {number} pid
 */
export function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (/** @type {NodeJS.ErrnoException} */ (error).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return !existsSync('/proc/self/stat');
  }
}
