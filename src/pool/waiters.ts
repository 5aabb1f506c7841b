/**
 * The acquire queue: FIFO within a priority, higher priorities first. Waiters are the
 * list nodes themselves, so enqueue, dequeue and removal from the middle (an abort) are
 * O(1) without allocation beyond the waiter.
 *
 * Deadlines are tracked without a timer per waiter: in a lane where every waiter has a
 * deadline no earlier than the one before it (the normal case: one default timeout),
 * the head holds the earliest deadline. A lane that received an out-of-order deadline
 * is scanned instead until it drains back into order.
 */
export interface Waiter {
  prev: Waiter | undefined;
  next: Waiter | undefined;
  lane: Lane | undefined;
  readonly deadline: number;
}

interface Lane {
  readonly priority: number;
  head: Waiter | undefined;
  tail: Waiter | undefined;
  size: number;
  sorted: boolean;
}

function newLane(priority: number): Lane {
  return { priority, head: undefined, tail: undefined, size: 0, sorted: true };
}

export class WaiterQueue<W extends Waiter> {
  readonly #default: Lane = newLane(0);
  /** Non-empty lanes (and the default one) by descending priority. */
  #lanes: Lane[] = [this.#default];
  size = 0;

  push(waiter: W, priority: number): void {
    const lane = priority === 0 ? this.#default : this.#laneFor(priority);
    const tail = lane.tail;
    waiter.lane = lane;
    waiter.prev = tail;
    waiter.next = undefined;
    if (tail === undefined) {
      lane.head = waiter;
      lane.sorted = true;
    } else {
      tail.next = waiter;
      if (waiter.deadline < tail.deadline) lane.sorted = false;
    }
    lane.tail = waiter;
    lane.size++;
    this.size++;
  }

  /** The next waiter to serve, without removing it. */
  peek(): W | undefined {
    if (this.#lanes.length === 1) return this.#default.head as W | undefined;
    for (const lane of this.#lanes) if (lane.head !== undefined) return lane.head as W;
    return undefined;
  }

  shift(): W | undefined {
    const waiter = this.peek();
    if (waiter !== undefined) this.remove(waiter);
    return waiter;
  }

  /** The waiter that would be served last (lowest priority, newest). */
  last(): W | undefined {
    for (let i = this.#lanes.length - 1; i >= 0; i--) {
      const tail = this.#lanes[i]!.tail;
      if (tail !== undefined) return tail as W;
    }
    return undefined;
  }

  /** Remove `waiter` if it is still queued; returns whether it was. */
  remove(waiter: W): boolean {
    const lane = waiter.lane;
    if (lane === undefined) return false;
    const { prev, next } = waiter;
    if (prev === undefined) lane.head = next;
    else prev.next = next;
    if (next === undefined) lane.tail = prev;
    else next.prev = prev;
    waiter.prev = waiter.next = waiter.lane = undefined;
    lane.size--;
    this.size--;
    if (lane.size === 0 && lane !== this.#default) this.#lanes = this.#lanes.filter((l) => l !== lane);
    return true;
  }

  /** Remove and pass to `onExpired` every waiter due at `now`; returns the next due time. */
  expire(now: number, onExpired: (waiter: W) => void): number {
    let next = Infinity;
    for (const lane of [...this.#lanes]) {
      if (lane.sorted) {
        while (lane.head !== undefined && lane.head.deadline <= now) {
          const waiter = lane.head as W;
          this.remove(waiter);
          onExpired(waiter);
        }
        if (lane.head !== undefined && lane.head.deadline > now && lane.head.deadline < next) next = lane.head.deadline;
        continue;
      }
      let sorted = true;
      let previous = -Infinity;
      for (let waiter = lane.head; waiter !== undefined; ) {
        const following = waiter.next;
        const due = waiter.deadline;
        if (due <= now) {
          this.remove(waiter as W);
          onExpired(waiter as W);
        } else {
          if (due < next) next = due;
          if (waiter.deadline < previous) sorted = false;
          previous = waiter.deadline;
        }
        waiter = following;
      }
      lane.sorted = sorted;
    }
    return next;
  }

  /** The latest deadline of any waiter (-Infinity when empty): is anyone still waiting at a given time? */
  latestDeadline(): number {
    let latest = -Infinity;
    for (const lane of this.#lanes) {
      if (lane.sorted) {
        if (lane.tail !== undefined && lane.tail.deadline > latest) latest = lane.tail.deadline;
        continue;
      }
      for (let waiter = lane.head; waiter !== undefined; waiter = waiter.next) if (waiter.deadline > latest) latest = waiter.deadline;
    }
    return latest;
  }

  *[Symbol.iterator](): IterableIterator<W> {
    for (const lane of [...this.#lanes]) {
      for (let waiter = lane.head; waiter !== undefined; waiter = waiter.next) yield waiter as W;
    }
  }

  #laneFor(priority: number): Lane {
    let index = 0;
    while (index < this.#lanes.length && this.#lanes[index]!.priority > priority) index++;
    const existing = this.#lanes[index];
    if (existing !== undefined && existing.priority === priority) return existing;
    const lane = newLane(priority);
    this.#lanes = [...this.#lanes.slice(0, index), lane, ...this.#lanes.slice(index)];
    return lane;
  }
}
