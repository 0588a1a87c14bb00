// Which schedule tables packets may still be reading. A program run that loaded a service record before the record
// switched to another table may go on reading the old one until it ends; XDP runs inside an RCU read-side section,
// so once a grace period that STARTED after the switch has COMPLETED, no run can still see the old table.
//
// Switches take tickets (increasing numbers). One grace period at a time runs off the event loop (the backend's
// gracePeriod(): membarrier on a worker thread), covering every ticket issued before it started; while tickets wait,
// the next one starts as soon as the last ends, so a table becomes reusable one to two grace periods after its switch.

/** A grace period on the calling thread is used while it costs less than this (ms, moving average). */
const NOW_BUDGET_MS = 1;

export class GracePeriods {
  /** The last ticket issued. */
  private issued = 0;
  /** Every ticket up to this one is safe. */
  private completed = 0;
  private running = false;
  private waiters: { ticket: number; resolve: () => void; reject: (e: unknown) => void }[] = [];

  /** What a grace period on the calling thread has cost lately (ms, moving average); Infinity once it failed. */
  private nowCostMs = 0;
  private nowCalls = 0;

  constructor(
    private readonly wait: () => Promise<void>,
    private readonly onError: (e: unknown) => void = () => undefined,
    private readonly waitNow?: () => void,
  ) {}

  /**
   * Ends a grace period here and now, blocking the event loop for it, when that has been quick so far (a kernel
   * with expedited RCU: tens of microseconds, far less than handing the wait to a worker thread and back on a busy
   * machine). Every ticket issued before the call becomes safe. False when it is not worth it (or not possible):
   * the caller waits the asynchronous way.
   */
  settleNow(): boolean {
    if (!this.waitNow || this.nowCostMs > NOW_BUDGET_MS) return false;
    const covers = this.issued;
    const started = performance.now();
    try {
      this.waitNow();
    } catch (e) {
      this.nowCostMs = Infinity;
      this.onError(e);
      return false;
    }
    const ms = performance.now() - started;
    // The first call also pays for setting the call up (the FFI binding's first use): not a grace period's cost.
    if (++this.nowCalls > 1) this.nowCostMs = this.nowCalls === 2 ? ms : 0.8 * this.nowCostMs + 0.2 * ms;
    this.complete(covers);
    return true;
  }

  private complete(covers: number): void {
    this.completed = Math.max(this.completed, covers);
    const ready = this.waiters.filter((w) => w.ticket <= this.completed);
    this.waiters = this.waiters.filter((w) => w.ticket > this.completed);
    for (const w of ready) w.resolve();
  }

  /** Call right after a switch: the ticket of "everything that may have seen the state before it". Starts a grace period. */
  ticket(): number {
    this.issued++;
    this.kick();
    return this.issued;
  }

  isSafe(ticket: number): boolean {
    return ticket <= this.completed;
  }

  /** Resolves once ticket is safe (rejects when the kernel refuses to wait: nothing is known to be safe then). */
  whenSafe(ticket: number): Promise<void> {
    if (this.isSafe(ticket)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ ticket, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.issued <= this.completed) return;
    this.running = true;
    const covers = this.issued;
    this.wait().then(
      () => {
        this.running = false;
        this.complete(covers);
        this.kick();
      },
      (e: unknown) => {
        this.running = false;
        const failed = this.waiters;
        this.waiters = [];
        for (const w of failed) w.reject(e);
        this.onError(e);
      },
    );
  }
}
