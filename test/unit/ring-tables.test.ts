// Schedule tables in place (src/lb/ring-tables.ts) and the grace periods that say when packets have let go of one
// (src/lb/grace-periods.ts), over in-memory maps whose grace periods the test ends by hand.

import { describe, expect, it } from 'vitest';
import { GracePeriods } from '../../src/lb/grace-periods.js';
import { RingTables } from '../../src/lb/ring-tables.js';
import { LB_MAPS, LbMaps } from '../../src/maps/lb-maps.js';
import { MemoryMapBackend } from '../../src/maps/memory-backend.js';

/** In-memory maps whose grace periods last until the test calls endGrace(). */
class ManualGraceBackend extends MemoryMapBackend {
  private ends: (() => void)[] = [];
  manual = false;
  override gracePeriod(): Promise<void> {
    if (!this.manual) return Promise.resolve();
    return new Promise((resolve) => this.ends.push(resolve));
  }
  get waiting(): number {
    return this.ends.length;
  }
  endGrace(): void {
    const ends = this.ends;
    this.ends = [];
    for (const e of ends) e();
  }
}

const MAX_SERVICES = 4;

function setup() {
  const sizes: Record<string, number> = { rings: 2 * MAX_SERVICES + 8, services: MAX_SERVICES, sched_state: MAX_SERVICES, dests: 64 };
  const backend = new ManualGraceBackend(Object.values(LB_MAPS).map((m) => ({ ...m, maxEntries: sizes[m.name] ?? 64 })));
  const maps = new LbMaps(backend);
  const rings = new RingTables(maps);
  /** What packets would read: the slot and length the service record points at. */
  const record = { slot: -1, len: 0 };
  const switchTo = (slot: number, len: number) => Object.assign(record, { slot, len });
  const read = (slot: number, len: number): number[] => {
    const inner = backend.getInner('rings', slot)!;
    const key = Buffer.alloc(4);
    return Array.from({ length: len }, (_, i) => {
      key.writeUInt32LE(i);
      return inner.lookup(key)!.readUInt32LE(0);
    });
  };
  return { backend, rings, record, switchTo, read };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('GracePeriods', () => {
  it('a ticket is safe only after a grace period that started after it has ended', async () => {
    const ends: (() => void)[] = [];
    const g = new GracePeriods(() => new Promise<void>((r) => ends.push(r)));
    const t1 = g.ticket();
    expect(g.isSafe(t1)).toBe(false);
    expect(ends).toHaveLength(1);
    // Issued while the first period runs: that period may have started before its switch, so it does not cover it.
    const t2 = g.ticket();
    let t2Safe = false;
    void g.whenSafe(t2).then(() => (t2Safe = true));
    ends.shift()!();
    await flush();
    expect(g.isSafe(t1)).toBe(true);
    expect(g.isSafe(t2)).toBe(false);
    expect(t2Safe).toBe(false);
    expect(ends).toHaveLength(1); // the next period started at once, for t2
    ends.shift()!();
    await flush();
    expect(t2Safe).toBe(true);
    expect(g.isSafe(0)).toBe(true);
  });

  it('a period the kernel refuses makes nothing safe and rejects the waiters', async () => {
    const errors: unknown[] = [];
    const g = new GracePeriods(() => Promise.reject(new Error('membarrier: EINVAL')), (e) => errors.push(e));
    const t = g.ticket();
    await expect(g.whenSafe(t)).rejects.toThrow('EINVAL');
    expect(g.isSafe(t)).toBe(false);
    expect(errors).toHaveLength(1);
  });
  it('settleNow ends a grace period on the calling thread while that is quick, and stops once it is not', async () => {
    let nowCalls = 0;
    let slow = false;
    const g = new GracePeriods(() => new Promise<void>(() => undefined), undefined, () => {
      nowCalls++;
      if (slow) {
        const end = performance.now() + 3;
        while (performance.now() < end);
      }
    });
    const t = g.ticket();
    let resolved = false;
    void g.whenSafe(t).then(() => (resolved = true));
    expect(g.settleNow()).toBe(true);
    expect(g.isSafe(t)).toBe(true);
    await flush();
    expect(resolved).toBe(true);
    slow = true;
    g.ticket();
    expect(g.settleNow()).toBe(true); // measured: 3 ms, over the budget
    const later = g.ticket();
    expect(g.settleNow()).toBe(false);
    expect(g.isSafe(later)).toBe(false);
    expect(nowCalls).toBe(2);
  });
});

describe('RingTables', () => {
  it('switches the record to a full table, and a one-server change writes only the slots that changed', async () => {
    const { rings, record, switchTo, read } = setup();
    const a = Uint32Array.from({ length: 100 }, (_, i) => i % 10);
    await rings.publish(1, a, switchTo);
    expect(record.len).toBe(100);
    expect(read(record.slot, 100)).toEqual([...a]);
    const first = record.slot;

    await rings.publish(1, a, switchTo);
    expect(record.slot).not.toBe(first); // never written in place: packets may be reading it
    expect(rings.lastSlotsWritten).toBe(100); // a table it never held: written whole

    // Server 3 leaves: its ten slots go to others. The idle table holds `a`: only those ten are written.
    const b = a.map((d) => (d === 3 ? 4 : d));
    await rings.publish(1, b, switchTo);
    expect(record.slot).toBe(first);
    expect(rings.lastSlotsWritten).toBe(10);
    expect(read(record.slot, 100)).toEqual([...b]);
  });

  it('brings the table packets left up to date once they let go of it: the next change writes only its own slots', async () => {
    const { rings, record, switchTo, read } = setup();
    const a = Uint32Array.from({ length: 100 }, (_, i) => i % 10);
    await rings.publish(1, a, switchTo);
    await rings.publish(1, a, switchTo);
    const b = a.map((d) => (d === 3 ? 4 : d)); // ten slots
    await rings.publish(1, b, switchTo);
    await flush(); // the grace period ends; `a`'s old table catches up to `b` in the background
    const c = b.map((d, i) => (i < 5 ? 9 : d)); // five more slots, none of them among the ten
    await rings.publish(1, c, switchTo);
    expect(rings.lastSlotsWritten).toBe(5);
    expect(read(record.slot, 100)).toEqual([...c]);
  });

  it('never writes a table packets may still read: it waits a little for the grace period, then takes another table', async () => {
    const { backend, rings, record, switchTo, read } = setup();
    const t = (v: number) => new Uint32Array(20).fill(v);
    await rings.publish(2, t(1), switchTo);
    await rings.publish(2, t(2), switchTo);
    await flush(); // the grace period after the switch away from t(1) ends
    const slotOf2 = record.slot;

    backend.manual = true;
    await rings.publish(2, t(3), switchTo); // into t(1)'s table: packets let go of it
    const slotOf3 = record.slot;
    expect(slotOf3).not.toBe(slotOf2);

    // t(2)'s table was switched away from and no grace period ends: after a short wait the change borrows a table,
    // whose placement into `rings` is itself a grace period in the kernel.
    const p4 = rings.publish(2, t(4), switchTo);
    await new Promise((r) => setTimeout(r, 30));
    expect(record.slot).toBe(slotOf3);
    expect(backend.waiting).toBeGreaterThan(0);
    backend.manual = false;
    backend.endGrace();
    await p4;
    expect([slotOf2, slotOf3]).not.toContain(record.slot);
    expect(read(record.slot, 20)).toEqual(new Array(20).fill(4));
    // What packets may have been reading was left as it was.
    expect(read(slotOf2, 20)).toEqual(new Array(20).fill(2));
    expect(read(slotOf3, 20)).toEqual(new Array(20).fill(3));
    rings.close();
  });

  it('a grace period that ends within the wait lets the change reuse the table packets left (no spare)', async () => {
    const { backend, rings, record, switchTo } = setup();
    const t = (v: number) => new Uint32Array(20).fill(v);
    await rings.publish(2, t(1), switchTo);
    await rings.publish(2, t(2), switchTo);
    const slotOf1 = record.slot === 4 ? 5 : 4;
    backend.manual = true;
    const slotOf2 = record.slot;
    const p3 = rings.publish(2, t(3), switchTo);
    await flush();
    backend.manual = false;
    backend.endGrace();
    await p3;
    expect(record.slot).toBe(slotOf1);
    const p4 = rings.publish(2, t(4), switchTo); // t(2)'s table: its grace period ends on its own now
    await p4;
    expect(record.slot).toBe(slotOf2);
    rings.close();
  });

  it('an empty table switches the record to length 0; forget() empties the service\'s slots', async () => {
    const { backend, rings, record, switchTo } = setup();
    await rings.publish(3, new Uint32Array([5, 6, 7]), switchTo);
    await rings.publish(3, new Uint32Array(0), switchTo);
    expect(record.len).toBe(0);
    await rings.forget(3);
    expect(backend.getInner('rings', 6)).toBeUndefined();
    expect(backend.getInner('rings', 7)).toBeUndefined();
  });

  it('adopts the pinned table a record points at after a restart and does not write it before a grace period', async () => {
    const { backend, rings, switchTo, record, read } = setup();
    await rings.publish(1, new Uint32Array([1, 2, 3]), switchTo);
    const served = record.slot;
    rings.close();

    // A new daemon over the same maps: the pinned table goes on serving until its first change.
    const again = new RingTables(new LbMaps(backend));
    again.adopt(1, served);
    await again.publish(1, new Uint32Array([1, 2, 4]), switchTo);
    expect(record.slot).not.toBe(served);
    expect(read(record.slot, 3)).toEqual([1, 2, 4]);
    expect(read(served, 3)).toEqual([1, 2, 3]);
    again.close();
  });
});
