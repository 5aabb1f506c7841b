/**
 * The acquire queue: FIFO within a priority, higher priorities first, and a deadline per
 * waiter without a timer per waiter.
 *
 * Why this shape:
 * - Waiters are the list nodes themselves (no allocation beyond the waiter, O(1) removal
 *   from the middle for an abort), and a waiter carries only `prev`, `next` and `lane`:
 *   100k queued waiters is a test case, so no per-waiter heap index.
 * - Each priority has a lane, found through a Map. Lanes sit in two heaps, by highest and
 *   by lowest priority, so `peek()` and `last()` are O(1) and a lane appearing or emptying
 *   costs O(log lanes). (A sorted array of lanes made distinct priorities, as in
 *   earliest-deadline-first scheduling with `priority = -deadline`, quadratic.)
 * - Deadlines: a lane is cut into runs, maximal stretches of consecutive waiters whose
 *   deadlines do not decrease, so a run's head holds its earliest deadline and its tail its
 *   latest. Non-empty runs sit in one min-heap by head deadline: `expire()` costs
 *   O(log runs) per expired waiter. (Scanning a lane whose deadlines arrived out of order
 *   on every expiry was quadratic.) Removing a waiter keeps runs contiguous and in order,
 *   so runs never need repair.
 * - The common case is one priority and one default timeout: one lane that is one run. A
 *   lane is its own first run, and while that run spans the lane (`whole`) its ends are the
 *   lane's ends rather than copies: storing a young waiter into the long-lived lane costs a
 *   write barrier (measured: ~4 ns per store), so that path stores no more than a bare FIFO.
 */
export interface Waiter {
  prev: Waiter | undefined;
  next: Waiter | undefined;
  /** The run holding this waiter while it is queued (a run knows its lane). */
  lane: Run | undefined;
  readonly deadline: number;
}

abstract class Heap<T> {
  readonly items: T[] = [];

  protected abstract before(a: T, b: T): boolean;
  protected abstract place(item: T, index: number): void;
  protected abstract indexOf(item: T): number;

  insert(item: T): void {
    this.items.push(item);
    this.#up(item, this.items.length - 1);
  }

  delete(item: T): void {
    const items = this.items;
    const index = this.indexOf(item);
    const last = items.pop()!;
    this.place(item, -1);
    if (last === item) return;
    if (index > 0 && this.before(last, items[(index - 1) >> 1]!)) this.#up(last, index);
    else this.#down(last, index);
  }

  /** `item`'s key moved towards the bottom of the heap. */
  sink(item: T): void {
    this.#down(item, this.indexOf(item));
  }

  #up(item: T, index: number): void {
    const items = this.items;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = items[parentIndex]!;
      if (!this.before(item, parent)) break;
      items[index] = parent;
      this.place(parent, index);
      index = parentIndex;
    }
    items[index] = item;
    this.place(item, index);
  }

  #down(item: T, index: number): void {
    const items = this.items;
    const length = items.length;
    for (;;) {
      let childIndex = 2 * index + 1;
      if (childIndex >= length) break;
      let child = items[childIndex]!;
      if (childIndex + 1 < length) {
        const right = items[childIndex + 1]!;
        if (this.before(right, child)) {
          child = right;
          childIndex++;
        }
      }
      if (!this.before(child, item)) break;
      items[index] = child;
      this.place(child, index);
      index = childIndex;
    }
    items[index] = item;
    this.place(item, index);
  }
}

/** A stretch of consecutive waiters of one lane with nondecreasing deadlines. */
class Run {
  /** Unused while `whole`. */
  head: Waiter | undefined = undefined;
  tail: Waiter | undefined = undefined;
  /** Index in the queue's heap of runs by due time; -1 while empty. */
  due = -1;
  /** Only a lane's own run can be whole: the lane's only run, so its ends are the lane's. */
  whole = false;
  constructor(readonly lane: Lane) {}
}

function headOf(run: Run): Waiter | undefined {
  return run.whole ? run.lane.front : run.head;
}

function tailOf(run: Run): Waiter | undefined {
  return run.whole ? run.lane.back : run.tail;
}

/** All waiters of one priority, in arrival order; also its own first run. */
class Lane extends Run {
  front: Waiter | undefined = undefined;
  back: Waiter | undefined = undefined;
  /** Runs other than this one holding waiters. */
  others = 0;
  /** Indexes in the heaps by highest and lowest priority. */
  high = -1;
  low = -1;
  constructor(readonly priority: number) {
    super(undefined as unknown as Lane);
    (this as { lane: Lane }).lane = this;
    this.whole = true;
  }
}

class ByHighest extends Heap<Lane> {
  protected before(a: Lane, b: Lane): boolean {
    return a.priority > b.priority;
  }
  protected place(lane: Lane, index: number): void {
    lane.high = index;
  }
  protected indexOf(lane: Lane): number {
    return lane.high;
  }
}

class ByLowest extends Heap<Lane> {
  protected before(a: Lane, b: Lane): boolean {
    return a.priority < b.priority;
  }
  protected place(lane: Lane, index: number): void {
    lane.low = index;
  }
  protected indexOf(lane: Lane): number {
    return lane.low;
  }
}

class ByDue extends Heap<Run> {
  protected before(a: Run, b: Run): boolean {
    return headOf(a)!.deadline < headOf(b)!.deadline;
  }
  protected place(run: Run, index: number): void {
    run.due = index;
  }
  protected indexOf(run: Run): number {
    return run.due;
  }
}

export class WaiterQueue<W extends Waiter> {
  readonly #default = new Lane(0);
  /** Lanes other than the default one, while non-empty. */
  readonly #lanes = new Map<number, Lane>();
  /**
   * Non-empty lanes and, always, the default one, so a queue that keeps going empty and
   * back (few callers, one priority) never touches these heaps. Only the default lane can
   * be empty here, so when it is at the top the answer is one of its two children.
   */
  readonly #highest = new ByHighest();
  readonly #lowest = new ByLowest();
  readonly #due = new ByDue();
  /** `#due`'s array: with one run (one priority, one timeout) the heap is skipped. */
  readonly #runs = this.#due.items;
  size = 0;

  constructor() {
    this.#highest.insert(this.#default);
    this.#lowest.insert(this.#default);
  }

  push(waiter: W, priority: number): void {
    let lane = priority === 0 ? this.#default : this.#lanes.get(priority);
    if (lane === undefined) {
      lane = new Lane(priority);
      this.#lanes.set(priority, lane);
    }
    const tail = lane.back;
    waiter.prev = tail;
    waiter.next = undefined;
    lane.back = waiter;
    this.size++;
    if (tail === undefined) {
      lane.front = waiter;
      waiter.lane = lane;
      if (lane !== this.#default) {
        this.#highest.insert(lane);
        this.#lowest.insert(lane);
      }
      this.#enter(lane);
      return;
    }
    tail.next = waiter;
    const run = tail.lane!;
    if (waiter.deadline >= tail.deadline) {
      waiter.lane = run;
      if (!run.whole) run.tail = waiter;
      return;
    }
    // An earlier deadline than the tail's starts a run.
    let started: Run;
    if (lane.whole) {
      lane.whole = false;
      lane.head = lane.front;
      lane.tail = tail;
      started = new Run(lane);
      lane.others++;
    } else if (lane.head === undefined) {
      started = lane;
    } else {
      started = new Run(lane);
      lane.others++;
    }
    started.head = started.tail = waiter;
    waiter.lane = started;
    this.#enter(started);
  }

  /** The next waiter to serve, without removing it. */
  peek(): W | undefined {
    const lanes = this.#highest.items;
    const top = lanes[0]!;
    if (top.front !== undefined || lanes.length === 1) return top.front as W | undefined;
    const left = lanes[1]!;
    const right = lanes[2];
    return (right !== undefined && right.priority > left.priority ? right.front : left.front) as W;
  }

  shift(): W | undefined {
    const waiter = this.peek();
    if (waiter !== undefined) this.remove(waiter);
    return waiter;
  }

  /** The newest waiter of the highest priority (adaptive LIFO while the pool is congested), without removing it. */
  peekNewest(): W | undefined {
    const lanes = this.#highest.items;
    const top = lanes[0]!;
    if (top.back !== undefined || lanes.length === 1) return top.back as W | undefined;
    const left = lanes[1]!;
    const right = lanes[2];
    return (right !== undefined && right.priority > left.priority ? right.back : left.back) as W;
  }

  shiftNewest(): W | undefined {
    const waiter = this.peekNewest();
    if (waiter !== undefined) this.remove(waiter);
    return waiter;
  }

  /** The oldest waiter of each priority in use: where shedding looks. */
  fronts(): W[] {
    const fronts: W[] = [];
    if (this.#default.front !== undefined) fronts.push(this.#default.front as W);
    for (const lane of this.#lanes.values()) if (lane.front !== undefined) fronts.push(lane.front as W);
    return fronts;
  }

  /** The waiter that would be served last (lowest priority, newest). */
  last(): W | undefined {
    const lanes = this.#lowest.items;
    const bottom = lanes[0]!;
    if (bottom.back !== undefined || lanes.length === 1) return bottom.back as W | undefined;
    const left = lanes[1]!;
    const right = lanes[2];
    return (right !== undefined && right.priority < left.priority ? right.back : left.back) as W;
  }

  /** Remove `waiter` if it is still queued; returns whether it was. */
  remove(waiter: W): boolean {
    const run = waiter.lane;
    if (run === undefined) return false;
    const lane = run.lane;
    const { prev, next } = waiter;
    if (prev === undefined) lane.front = next;
    else prev.next = next;
    if (next === undefined) lane.back = prev;
    else next.prev = prev;
    waiter.prev = waiter.next = waiter.lane = undefined;
    this.size--;
    if (run.whole) {
      if (lane.front === undefined) this.#leave(lane);
      else if (prev === undefined && this.#runs.length > 1) this.#due.sink(lane);
    } else {
      // Runs are contiguous, so the neighbour past a removed end is in the same run.
      if (run.head === waiter) {
        if (run.tail === waiter) {
          run.head = run.tail = undefined;
          this.#leave(run);
          if (run !== lane) lane.others--;
        } else {
          run.head = next;
          if (this.#runs.length > 1) this.#due.sink(run);
        }
      } else if (run.tail === waiter) run.tail = prev;
      // The lane's own run alone spans the lane again (or the lane is empty).
      if (lane.others === 0) {
        lane.head = lane.tail = undefined;
        lane.whole = true;
      }
    }
    if (lane.front === undefined && lane !== this.#default) {
      this.#highest.delete(lane);
      this.#lowest.delete(lane);
      this.#lanes.delete(lane.priority);
    }
    return true;
  }

  /** The earliest deadline of any waiter (Infinity when empty), O(1). */
  nextDeadline(): number {
    const first = this.#runs[0];
    return first === undefined ? Infinity : headOf(first)!.deadline;
  }

  /** Remove and pass to `onExpired` every waiter due at `now`; returns the next due time. */
  expire(now: number, onExpired: (waiter: W) => void): number {
    const runs = this.#runs;
    for (;;) {
      const first = runs[0];
      if (first === undefined) return Infinity;
      const waiter = headOf(first) as W;
      if (waiter.deadline > now) return waiter.deadline;
      this.remove(waiter);
      onExpired(waiter);
    }
  }

  /**
   * The latest deadline of any waiter (-Infinity when empty): is anyone still waiting at a
   * given time? O(runs): one per priority in use when each uses one timeout, but up to
   * O(n) for shuffled deadlines, which is acceptable for a call made once per create retry.
   */
  latestDeadline(): number {
    let latest = -Infinity;
    for (const run of this.#runs) {
      const due = tailOf(run)!.deadline;
      if (due > latest) latest = due;
    }
    return latest;
  }

  /** In service order; the consumer may remove the waiter just yielded. */
  *[Symbol.iterator](): IterableIterator<W> {
    const lanes = this.#highest.items.filter((lane) => lane.front !== undefined).sort((a, b) => b.priority - a.priority);
    for (const lane of lanes) {
      for (let waiter = lane.front; waiter !== undefined; ) {
        const following = waiter.next;
        yield waiter as W;
        waiter = following;
      }
    }
  }

  #enter(run: Run): void {
    const runs = this.#runs;
    if (runs.length === 0) {
      runs.push(run);
      run.due = 0;
    } else this.#due.insert(run);
  }

  #leave(run: Run): void {
    const runs = this.#runs;
    if (runs.length === 1) {
      runs.pop();
      run.due = -1;
    } else this.#due.delete(run);
  }
}

