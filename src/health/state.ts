// One checker's state machine, keepalived 2.2's (check_api.c / check_tcp.c epilogues) plus `rise`:
//
//   up, a probe fails      -> retry after delay_before_retry; after retry + 1 CONSECUTIVE failures -> down
//   up, a probe succeeds   -> the failure count resets; next probe after delay_loop
//   down, a probe succeeds -> after `rise` successes in a row -> up (keepalived: rise 1)
//   down, a probe fails    -> the success count resets; next probe after delay_loop
//
// It starts up ("unchecked" until its first verdict), or down with alpha. Pure: no timers, no I/O.

import type { CheckTiming } from './types.js';

export type Verdict = 'unchecked' | 'up' | 'down';

export interface StepResult {
  /** The verdict changed with this result (unchecked -> up/down counts). */
  changed: boolean;
  /** When to probe next, in ms from now. */
  delayMs: number;
}

export class CheckerState {
  /** In rotation as far as this checker is concerned. */
  up: boolean;
  verdict: Verdict = 'unchecked';
  /** Consecutive failures while up (keepalived retry_it). */
  failures = 0;
  /** Consecutive successes while down. */
  successes = 0;
  lastError: string | null = null;

  constructor(readonly timing: CheckTiming) {
    this.up = !timing.alpha;
  }

  record(ok: boolean, error?: string): StepResult {
    const t = this.timing;
    const before = this.verdict;
    let delayMs = t.intervalMs;
    if (ok) {
      this.failures = 0;
      if (this.up) {
        this.verdict = 'up';
      } else if (++this.successes >= Math.max(1, t.rise)) {
        this.up = true;
        this.successes = 0;
        this.verdict = 'up';
      }
    } else {
      this.lastError = error ?? 'check failed';
      this.successes = 0;
      if (this.up) {
        if (this.failures >= t.retries) {
          this.up = false;
          this.failures = 0;
          this.verdict = 'down';
        } else {
          this.failures++;
          delayMs = t.delayBeforeRetryMs;
        }
      } else {
        this.verdict = 'down';
      }
    }
    return { changed: this.verdict !== before, delayMs };
  }
}
