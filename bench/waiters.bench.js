// The acquire wait queue alone (src/pool/waiters.ts), no pool around it.
//
//   npm run build && node --expose-gc bench/waiters.bench.js [--module=path/to/waiters.js] [--n=20000] [--skip-slow]
//
// --module compares another build (e.g. an older checkout's dist/pool/waiters.js).
// --skip-slow leaves out the distinct-deadline cases (quadratic before issue 9 item 14).
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const modulePath = arg('module', new URL('../dist/pool/waiters.js', import.meta.url).pathname);
const { WaiterQueue } = await import(pathToFileURL(resolve(modulePath)).href);
const N = Number(arg('n', '20000'));
const skipSlow = process.argv.includes('--skip-slow');

// The shape of pool.ts's PoolWaiter, so the queue sees the objects it sees in production.
class TestWaiter {
  prev = undefined;
  next = undefined;
  lane = undefined;
  resolve = undefined;
  reject = undefined;
  constructor(enqueuedAt, deadline) {
    this.enqueuedAt = enqueuedAt;
    this.deadline = deadline;
    this.extras = undefined;
  }
}

let seed = 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
function shuffled(n) {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function time(fn, repeats) {
  const runs = [];
  for (let i = 0; i < repeats; i++) {
    globalThis.gc?.();
    const start = performance.now();
    fn();
    runs.push(performance.now() - start);
  }
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)];
}

const rows = [];
function bench(name, ops, fn, repeats = 7) {
  const ms = time(fn, repeats);
  rows.push([name, ms.toFixed(2), ((ms * 1e6) / ops).toFixed(1)]);
}

let sink = 0;

// The hot path: one priority, one default timeout (deadlines nondecreasing), FIFO service.
bench('fifo: push 100k, shift 100k (priority 0)', 200_000, () => {
  const q = new WaiterQueue();
  for (let i = 0; i < 100_000; i++) q.push(new TestWaiter(i, i + 30_000.5), 0);
  while (q.size > 0) sink += q.shift().deadline;
});

// Saturation: a steady queue of 256, each release serving one and each caller queueing again.
bench('steady 256 queued: 1M push+shift (priority 0)', 2_000_000, () => {
  const q = new WaiterQueue();
  let t = 0;
  for (let i = 0; i < 256; i++) q.push(new TestWaiter(t, ++t + 30_000.5), 0);
  for (let i = 0; i < 1_000_000; i++) {
    sink += q.shift().deadline;
    q.push(new TestWaiter(t, ++t + 30_000.5), 0);
    if ((i & 1023) === 0) sink += q.expire(t, () => {});
  }
});

// Queue goes empty and back (few callers): the lane enters and leaves its heaps each time.
bench('empty↔1: 1M push+shift (priority 0)', 2_000_000, () => {
  const q = new WaiterQueue();
  for (let i = 0; i < 1_000_000; i++) {
    q.push(new TestWaiter(i, i + 30_000.5), 0);
    sink += q.shift().deadline;
  }
});

bench(`abort: push ${N}, remove all in random order (priority 0)`, 2 * N, () => {
  const q = new WaiterQueue();
  const ws = Array.from({ length: N }, (_, i) => new TestWaiter(i, i + 30_000.5));
  for (const w of ws) q.push(w, 0);
  for (const i of shuffled(N)) q.remove(ws[i]);
});

// Push n with shuffled deadlines, then time out half the way the pool does (its deadline
// timer fires at each next due time that expire() returns) and serve the rest.
function mixed(n, priorityOf) {
  const q = new WaiterQueue();
  for (const d of shuffled(n)) q.push(new TestWaiter(0, d + 0.5), priorityOf(d));
  for (let now = q.expire(0, () => {}); now <= n / 2; ) now = q.expire(now, () => sink++);
  while (q.size > 0) sink += q.shift().deadline;
  if (q.latestDeadline() !== -Infinity) throw new Error('not empty');
}

if (!skipSlow) {
  bench(`edf: ${N} distinct priorities (-deadline), shuffled`, 2 * N, () => mixed(N, (d) => -d), 3);
  bench(`${N} shuffled deadlines, priority 0`, 2 * N, () => mixed(N, () => 0), 3);
  bench(`${N} shuffled deadlines, 16 priorities`, 2 * N, () => mixed(N, (d) => d % 16), 3);
}

console.log(`# WaiterQueue (${modulePath})\n`);
console.log('| case | ms (median) | ns/op |');
console.log('| --- | --- | --- |');
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
if (sink === 42) console.log('');
