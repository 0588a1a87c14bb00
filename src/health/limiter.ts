// A counting semaphore: at most `limit` probes in flight, the rest wait in FIFO order (checks never block the API).

export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** The most that were ever in flight at once (tests hold the bound with it). */
  peak = 0;

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, not ${limit}`);
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    this.peak = Math.max(this.peak, this.active);
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next in line: `active` stays the same.
      if (next) next();
      else this.active--;
    }
  }
}
