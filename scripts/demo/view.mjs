// Output: the live view (redrawn in place on a terminal, one line per second otherwise),
// event lines above it, and the formatting shared with the summary.

const ESC = '\x1b[';

/**
 * @typedef {object} Snapshot
 * @property {number} elapsedMs
 * @property {number} durationMs
 * @property {number} okPerSecond
 * @property {number} ok
 * @property {number} failed
 * @property {number} inFlight
 * @property {number | undefined} recentWaitP99  p99 acquire wait over the last second (diagnostics channel)
 * @property {import('../../dist/index.js').PoolStats} stats
 * @property {import('../../dist/index.js').PoolHealth} health
 * @property {[string, number][]} errors  by kind, most frequent first
 * @property {string} fault        the current fault, or what comes next
 * @property {string} faultsLine   every fault's state: done, on, to come, skipped
 */

/** @param {number} ms */
export const fmtMs = (ms) => (ms < 10 ? ms.toFixed(1) : Math.round(ms).toString());

/** @param {number} ms */
export const fmtS = (ms) => `${(ms / 1000).toFixed(1)}s`;

/**
 * @param {[string, number][]} errors
 * @param {number} [limit]
 */
export function fmtErrors(errors, limit = 6) {
  if (errors.length === 0) return 'none';
  const shown = errors.slice(0, limit).map(([kind, n]) => `${kind}=${n}`);
  if (errors.length > limit) shown.push(`+${errors.length - limit} more kinds`);
  return shown.join(' ');
}

/** @param {import('../../dist/index.js').PoolHealth} health */
function fmtHealth(health) {
  return health.reason === undefined ? health.status : `${health.status} (${health.reason})`;
}

/**
 * The one-line form (pipes, logs): every figure of the live view.
 * @param {Snapshot} s
 */
export function plainLine(s) {
  const { stats } = s;
  return (
    `[${fmtS(s.elapsedMs).padStart(6)}] ${Math.round(s.okPerSecond)} ops/s ok=${s.ok} failed=${s.failed}` +
    ` | wait p99 ${s.recentWaitP99 === undefined ? '-' : fmtMs(s.recentWaitP99)} ms (1 s) ${fmtMs(stats.waitTime.p99)} ms (all)` +
    ` | pool size=${stats.size} idle=${stats.idle} leased=${stats.leased} waiting=${stats.waiting} creating=${stats.creating} circuit=${stats.circuit}` +
    ` | health ${fmtHealth(s.health)} | errors ${fmtErrors(s.errors, 4)} | fault ${s.fault}`
  );
}

/**
 * The terminal form: a block of labelled lines.
 * @param {Snapshot} s
 * @param {boolean} color
 */
export function blockLines(s, color) {
  const { stats } = s;
  const paint = (/** @type {string} */ code, /** @type {string} */ text) => (color ? `${ESC}${code}m${text}${ESC}0m` : text);
  const bold = (/** @type {string} */ text) => paint('1', text);
  const healthColor = { ok: '32', degraded: '33', down: '31', closed: '90' }[s.health.status] ?? '0';
  const width = 34;
  const done = Math.min(width, Math.round((s.elapsedMs / s.durationMs) * width));
  return [
    `${bold('lifeguard demo')}  ${fmtS(s.elapsedMs)} / ${fmtS(s.durationMs)}  [${'#'.repeat(done)}${'.'.repeat(width - done)}]`,
    `${bold('fault      ')} ${s.fault.startsWith('none') ? s.fault : paint('35;1', s.fault)}`,
    `${bold('throughput ')} ${Math.round(s.okPerSecond).toString().padStart(5)} ops/s   ok ${s.ok}   failed ${s.failed > 0 ? paint('31', String(s.failed)) : '0'}   in flight ${s.inFlight}`,
    `${bold('wait p99   ')} ${s.recentWaitP99 === undefined ? '-' : fmtMs(s.recentWaitP99)} ms over the last second, ${fmtMs(stats.waitTime.p99)} ms since the start (stats().waitTime; max ${fmtMs(stats.waitTime.max)} ms)`,
    `${bold('pool       ')} size ${stats.size}/${stats.max}  idle ${stats.idle}  leased ${stats.leased}  waiting ${stats.waiting}  creating ${stats.creating}  circuit ${stats.circuit}`,
    `${bold('           ')} created ${stats.created}  create failures ${stats.createFailed}  destroyed ${stats.destroyed}  timed out ${stats.timedOut}`,
    `${bold('health     ')} ${paint(healthColor, s.health.status)}${s.health.reason === undefined ? '' : ` — ${s.health.reason}`}`,
    `${bold('errors     ')} ${fmtErrors(s.errors)}`,
    `${bold('faults     ')} ${s.faultsLine}`,
  ];
}

/**
 * The live view. On a TTY the block is redrawn in place every 250 ms (cursor up, clear
 * line), and `log()` lines are printed above it; otherwise a plain line each second.
 * @param {{ out?: NodeJS.WriteStream, tty?: boolean }} [options]
 */
export function createView({ out = process.stdout, tty = out.isTTY === true } = {}) {
  const color = tty && process.env.NO_COLOR === undefined;
  let drawn = 0;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  /** @type {(() => Snapshot) | undefined} */
  let source;
  let cursorHidden = false;
  /** @param {string} text */
  const write = (text) => {
    try {
      out.write(text);
    } catch {
      // A closed pipe must not stop the demo (or its clean-up).
    }
  };
  const clip = (/** @type {string} */ line) => {
    const columns = out.columns !== undefined && out.columns > 20 ? out.columns : 120;
    // Lines longer than the terminal would wrap and break the cursor arithmetic: cut them
    // (counting visible characters only, so colour codes do not count).
    let visible = 0;
    let result = '';
    for (let i = 0; i < line.length; i++) {
      if (line[i] === '\x1b') {
        const end = line.indexOf('m', i);
        result += line.slice(i, end + 1);
        i = end;
        continue;
      }
      if (visible >= columns - 1) continue;
      result += line[i];
      visible++;
    }
    return result;
  };
  const erase = () => {
    if (drawn > 0) write(`${ESC}${drawn}A\r${ESC}0J`);
    drawn = 0;
  };
  const draw = () => {
    if (source === undefined) return;
    const lines = blockLines(source(), color);
    let text = drawn > 0 ? `${ESC}${drawn}A\r` : '';
    for (const line of lines) text += `${ESC}2K${clip(line)}\n`;
    text += `${ESC}0J`;
    write(text);
    drawn = lines.length;
  };
  return {
    tty,
    /** @param {() => Snapshot} snapshot */
    start(snapshot) {
      source = snapshot;
      if (tty) {
        write(`${ESC}?25l`);
        cursorHidden = true;
        draw();
        timer = setInterval(draw, 250);
      } else {
        timer = setInterval(() => write(`${plainLine(snapshot())}\n`), 1000);
      }
    },
    /** An event line, above the live block. @param {string} line */
    log(line) {
      if (tty && drawn > 0) {
        erase();
        write(`${line}\n`);
        draw();
      } else write(`${line}\n`);
    },
    /** Stop refreshing; a terminal keeps the last block on screen. */
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      if (tty && source !== undefined && drawn > 0) draw();
      else if (!tty && source !== undefined) write(`${plainLine(source())}\n`);
      source = undefined;
      drawn = 0;
      this.restore();
    },
    /** Give the cursor back (also on a forced exit). */
    restore() {
      if (cursorHidden) write(`${ESC}?25h`);
      cursorHidden = false;
    },
    /** Plain output (the summary). @param {string} text */
    print(text) {
      write(`${text}\n`);
    },
  };
}
