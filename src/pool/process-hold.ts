/**
 * Keeps the process alive while a caller awaits the pool, and only then. Every other pool
 * timer is unref'd, so without this a script awaiting an acquire whose create is backing
 * off (or whose resources hold no handles) could see Node exit under it with code 0 and
 * nothing printed. One ref'd interval per pool, made on first use and toggled with
 * ref()/unref() (cheap: a counter in libuv), never fires in practice.
 */
export class ProcessHold {
  #timer: NodeJS.Timeout | undefined;
  #held = false;

  get held(): boolean {
    return this.#held;
  }

  set(held: boolean): void {
    if (held === this.#held) return;
    this.#held = held;
    if (held) (this.#timer ??= setInterval(noop, 2 ** 31 - 1)).ref();
    else this.#timer?.unref();
  }

  /** Let go for good (the pool closed). */
  dispose(): void {
    this.#held = false;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function noop(): void {}
