// Which schedule tables packets may still be reading. A program run that loaded a service record before the record
// switched to another table may go on reading the old one until it ends; XDP runs inside an RCU read-side section,
// so once a grace period that STARTED after the switch has COMPLETED, no run can still see the old table.
//
// Switches take tickets (increasing numbers). One grace period at a time runs off the event loop (the backend's
// gracePeriod(): membarrier on a worker thread), covering every ticket issued before it started; while tickets wait,
// the next one starts as soon as the last ends, so a table becomes reusable one to two grace periods after its switch.

export class GracePeriods {
  /** The last ticket issued. */
  private issued = 0;
  /** Every ticket up to this one is safe. */
  private completed = 0;
  private running = false;
  private waiters: { ticket: number; resolve: () => void; reject: (e: unknown) => void }[] = [];

  constructor(
    private readonly wait: () => Promise<void>,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {}

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
        this.completed = Math.max(this.completed, covers);
        const ready = this.waiters.filter((w) => w.ticket <= this.completed);
        this.waiters = this.waiters.filter((w) => w.ticket > this.completed);
        for (const w of ready) w.resolve();
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
