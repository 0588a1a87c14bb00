// Which authenticated sync datagrams are fresh: per sender, a sequence window (as IPsec's anti-replay), and a
// bound on the sender's clock against ours, so that a datagram recorded earlier cannot be played again.

/** How far behind the newest sequence number of a sender a late datagram is still taken (UDP may reorder). */
export const REPLAY_WINDOW = 64;
/** Most senders remembered; the one heard from longest ago is forgotten first. */
export const MAX_SENDERS = 64;
/** Largest difference between the sender's clock and ours (ms) a datagram may show. */
export const DEFAULT_MAX_SKEW_MS = 30_000;

export type Verdict = 'fresh' | 'replay' | 'stale' | 'own';

interface SenderWindow {
  /** Newest sequence number accepted. */
  top: bigint;
  /** Bit i set: top - i was accepted (bit 0 is top itself). */
  seen: bigint;
}

const WINDOW_MASK = (1n << BigInt(REPLAY_WINDOW)) - 1n;

export class ReplayGuard {
  readonly #senders = new Map<bigint, SenderWindow>();

  /** self: this daemon's own sender id (its datagrams reflected back are refused). */
  constructor(
    private readonly self: bigint,
    private readonly maxSkewMs = DEFAULT_MAX_SKEW_MS,
  ) {}

  /**
   * Whether to take the datagram (sender, sequence) sent at sentMs, when it is nowMs here; records it when fresh.
   * Call only for datagrams whose MAC was checked: only an authenticated datagram may move a window.
   */
  check(sender: bigint, sequence: bigint, sentMs: number, nowMs: number): Verdict {
    if (sender === this.self) return 'own';
    if (Math.abs(nowMs - sentMs) > this.maxSkewMs) return 'stale';
    if (sequence < 1n) return 'replay';
    let w = this.#senders.get(sender);
    if (!w) {
      if (this.#senders.size >= MAX_SENDERS) this.#senders.delete(this.#senders.keys().next().value!);
      w = { top: sequence, seen: 1n };
      this.#senders.set(sender, w);
      return 'fresh';
    }
    // Map order is the order of last use: move this sender to the end.
    this.#senders.delete(sender);
    this.#senders.set(sender, w);
    if (sequence > w.top) {
      const shift = sequence - w.top;
      w.seen = shift >= BigInt(REPLAY_WINDOW) ? 1n : ((w.seen << shift) | 1n) & WINDOW_MASK;
      w.top = sequence;
      return 'fresh';
    }
    const back = w.top - sequence;
    if (back >= BigInt(REPLAY_WINDOW)) return 'replay';
    const bit = 1n << back;
    if (w.seen & bit) return 'replay';
    w.seen |= bit;
    return 'fresh';
  }
}
