/**
 * Keeps the process alive while a caller awaits the pool, and only then. Every other pool
 * timer is unref'd, so without this a script awaiting an acquire whose create is backing
 * off (or whose resources hold no handles) could see Node exit under it with code 0 and
 * nothing printed. One ref'd interval per pool, made on first use and toggled with
 * ref()/unref() (cheap: a counter in libuv), never fires in practice.
 *
 * Each part marks its own reason (README, "Process lifetime"): the acquire queue while a
 * caller waits (and so the create or ping on its behalf), the entry table while a reset
 * that release() returned runs, warmup(), close(). An idle pool marks nothing.
 */
export const HOLD_WAITERS = 1;
export const HOLD_RESETS = 2;
export const HOLD_WARMUPS = 4;
export const HOLD_CLOSE = 8;

export class ProcessHold {
  #timer: NodeJS.Timeout | undefined;
  #reasons = 0;

  get held(): boolean {
    return this.#reasons !== 0;
  }

  /** Set or clear one reason to keep the process alive. */
  mark(reason: number, on: boolean): void {
    const reasons = on ? this.#reasons | reason : this.#reasons & ~reason;
    if (reasons === this.#reasons) return;
    const was = this.#reasons !== 0;
    this.#reasons = reasons;
    if (was === (reasons !== 0)) return;
    if (reasons !== 0) (this.#timer ??= setInterval(noop, 2 ** 31 - 1)).ref();
    else this.#timer?.unref();
  }

  /** Let go for good (the pool closed). */
  dispose(): void {
    this.#reasons = 0;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function noop(): void {}
