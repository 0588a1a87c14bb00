// The schedule tables of every service: inner maps of `rings` that stay in place from one change to the next.
// A change writes only the slots that differ between the new table and what a spare table of the service holds
// (one batch update), then the caller switches the service record to it (one hash update, no grace-period wait).
//
// A table packets may still read is never written: a table stops being read one RCU grace period after the switch
// away from it (src/lb/grace-periods.ts); then it is brought up to date in the background, so that the next change
// writes just the slots it changes. A change whose service has no such table ready takes another table
// (its second fixed slot, then spare slots shared by all services, up to MAX_TABLES_PER_SERVICE) or, when none is
// left, waits for the grace period of its oldest table. Placing a new inner map into `rings` costs a grace period in
// the kernel; placements run off the event loop and those that queue up meanwhile go into the kernel as one batch.
// Spare tables a service has not written for SPARE_IDLE_MS go back to the pool. See docs/bench.md.

import type { InnerMap } from '../maps/backend.js';
import { LB_MAPS, writeTableSlots, type LbMaps } from '../maps/lb-maps.js';
import { GracePeriods } from './grace-periods.js';

/** Tables one service may hold at once: 2 fixed, the rest borrowed (65,537-slot Maglev tables are 256 KiB each). */
export const MAX_TABLES_PER_SERVICE = 24;
/** How long a change waits for a table of its service to be left by packets before it borrows a spare one. */
const GRACE_PATIENCE_MS = 10;
/** A borrowed table not written for this long is given back. */
const SPARE_IDLE_MS = 10_000;

interface Table {
  slot: number;
  map: InnerMap;
  /** What the map holds at indexes below contents.length; null when unknown (adopted after a restart). */
  contents: Uint32Array | null;
  /** Grace-period ticket of the switch away from it; 0 when packets never saw it. */
  ticket: number;
  lastWritten: number;
}

interface ServiceTables {
  tables: Table[];
  active: Table | null;
  /** Publishes of one service run one after the other. */
  chain: Promise<unknown>;
}

/** `from` copied into `to` when it has the same length (no new 256 KiB array per change), else a copy. */
function copyInto(to: Uint32Array | null, from: Uint32Array): Uint32Array {
  if (to && to.length === from.length) {
    to.set(from);
    return to;
  }
  return from.slice();
}

/** Entries a table of `len` entries gets: room to grow a little, so that tables whose length changes (wrr) rarely need a new map. */
function capacityFor(len: number): number {
  if (len <= 16) return 16;
  if (len < 65536) return 2 ** Math.ceil(Math.log2(len));
  return Math.ceil(len / 1024) * 1024;
}

export class RingTables {
  private readonly services = new Map<number, ServiceTables>();
  private readonly grace: GracePeriods;
  private readonly freeSpare: number[];
  private readonly firstSpare: number;
  private pending = new Map<number, { inner: InnerMap | null; waiters: { resolve: () => void; reject: (e: unknown) => void }[] }>();
  private placing = false;
  private trimTimer: NodeJS.Timeout | undefined;
  /** Slots written by the last publish (the benchmark reports it). */
  lastSlotsWritten = 0;
  /** Slots written off the request path to bring idle tables up to date (catchUpLater). */
  catchUpSlots = 0;

  constructor(
    private readonly maps: LbMaps,
    private readonly now: () => number = () => Date.now(),
  ) {
    const waitNow = maps.backend.gracePeriodNow?.bind(maps.backend);
    this.grace = new GracePeriods(() => maps.backend.gracePeriod(), undefined, waitNow);
    const total = maps.backend.map(LB_MAPS.rings.name).maxEntries;
    this.firstSpare = 2 * maps.maxServices;
    this.freeSpare = Array.from({ length: Math.max(0, total - this.firstSpare) }, (_, i) => this.firstSpare + i);
  }

  private state(svcId: number): ServiceTables {
    let st = this.services.get(svcId);
    if (!st) this.services.set(svcId, (st = { tables: [], active: null, chain: Promise.resolve() }));
    return st;
  }

  /**
   * Puts table (destination ids) in place for service svcId: writes it into a table packets do not read, then calls
   * switchTo(slot, length) which must switch the service record to it (length 0: no table; the slot is then only
   * a placeholder). Resolves once the record is switched.
   */
  publish(svcId: number, table: Uint32Array, switchTo: (slot: number, len: number) => void): Promise<void> {
    const st = this.state(svcId);
    const run = st.chain.then(() => this.publishNow(svcId, st, table, switchTo));
    st.chain = run.catch(() => undefined);
    return run;
  }

  private async publishNow(svcId: number, st: ServiceTables, table: Uint32Array, switchTo: (slot: number, len: number) => void): Promise<void> {
    if (table.length === 0) {
      switchTo(st.active?.slot ?? 2 * svcId, 0);
      this.retire(st);
      this.lastSlotsWritten = 0;
      return;
    }
    const t = await this.spareFor(svcId, st, table.length);
    this.lastSlotsWritten = writeTableSlots(t.map, table, t.contents);
    t.contents = copyInto(t.contents, table);
    t.lastWritten = this.now();
    switchTo(t.slot, table.length);
    const left = st.active;
    this.retire(st);
    st.active = t;
    if (left) this.catchUpLater(svcId, st, left);
  }

  /**
   * Once packets have let go of `left`, brings it up to the active table off the request path, so that the next
   * change writes only its own slots rather than those of the last two changes.
   */
  private catchUpLater(svcId: number, st: ServiceTables, left: Table): void {
    this.grace.whenSafe(left.ticket).then(
      () => {
        st.chain = st.chain.then(() => {
          const cur = st.active;
          if (this.services.get(svcId) !== st || !cur?.contents || left === cur || !st.tables.includes(left)) return;
          if (!this.grace.isSafe(left.ticket) || left.map.maxEntries < cur.contents.length) return;
          this.catchUpSlots += writeTableSlots(left.map, cur.contents, left.contents);
          left.contents = copyInto(left.contents, cur.contents);
        }).catch(() => {
          // Unknown contents: the next write to it is a full one.
          left.contents = null;
        });
      },
      () => undefined,
    );
  }

  /** The active table is no longer read by new packets: it becomes reusable one grace period from now. */
  private retire(st: ServiceTables): void {
    if (st.active) st.active.ticket = this.grace.ticket();
    st.active = null;
  }

  /** A table of the service that no packet reads, with room for len entries. */
  private async spareFor(svcId: number, st: ServiceTables, len: number): Promise<Table> {
    for (;;) {
      const idle = st.tables.filter((t) => t !== st.active && this.grace.isSafe(t.ticket));
      const fits = idle.filter((t) => t.map.maxEntries >= len);
      // Known contents first (fewer slots to write), then the fixed slots (borrowed ones can then go back).
      const best = fits.find((t) => t.contents !== null && t.slot < this.firstSpare) ?? fits.find((t) => t.contents !== null) ?? fits[0];
      if (best) return best;
      if (idle.length > 0) {
        // Outgrown: a larger map in the same slot (no packet reads it, so replacing it is as safe as writing it).
        const t = idle[0];
        const map = this.maps.backend.createInnerArray(LB_MAPS.rings.name, capacityFor(len));
        try {
          await this.place(t.slot, map);
        } catch (e) {
          map.close();
          throw e;
        }
        t.map.close();
        t.map = map;
        t.contents = null;
        return t;
      }
      // A table packets just left is usually free within a fraction of a millisecond (the grace period runs off the
      // event loop, which a change's synchronous table build keeps busy): a short wait beats creating, placing and
      // fully writing a spare. Only when grace periods are slow (a busy machine, RCU not expedited) is one borrowed.
      const leaving = st.tables.filter((t) => t !== st.active && t.map.maxEntries >= len);
      if (leaving.length > 0 && (this.grace.settleNow() || (await this.safeWithin(Math.min(...leaving.map((t) => t.ticket)), GRACE_PATIENCE_MS)))) continue;
      const slot = this.freeSlot(svcId, st);
      if (slot !== undefined) {
        const map = this.maps.backend.createInnerArray(LB_MAPS.rings.name, capacityFor(len));
        const t: Table = { slot, map, contents: null, ticket: 0, lastWritten: this.now() };
        try {
          await this.place(slot, map);
        } catch (e) {
          map.close();
          if (slot >= this.firstSpare) this.freeSpare.push(slot);
          throw e;
        }
        st.tables.push(t);
        if (slot >= this.firstSpare) this.scheduleTrim();
        return t;
      }
      const waiting = st.tables.filter((t) => t !== st.active).map((t) => t.ticket);
      await this.grace.whenSafe(Math.min(...waiting));
    }
  }

  /** Whether ticket becomes safe within ms (false at once if the kernel refused a grace period). */
  private safeWithin(ticket: number, ms: number): Promise<boolean> {
    if (this.grace.isSafe(ticket)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.grace.whenSafe(ticket).then(
        () => {
          clearTimeout(timer);
          resolve(true);
        },
        () => {
          clearTimeout(timer);
          resolve(false);
        },
      );
    });
  }

  private freeSlot(svcId: number, st: ServiceTables): number | undefined {
    const used = new Set(st.tables.map((t) => t.slot));
    for (const s of [2 * svcId, 2 * svcId + 1]) if (!used.has(s)) return s;
    if (st.tables.length >= MAX_TABLES_PER_SERVICE) return undefined;
    return this.freeSpare.shift();
  }

  /** Queues a placement; placements queued while one runs go to the kernel together (one grace period). */
  private place(slot: number, inner: InnerMap | null): Promise<void> {
    return new Promise((resolve, reject) => {
      const p = this.pending.get(slot);
      if (p) {
        p.inner = inner;
        p.waiters.push({ resolve, reject });
      } else this.pending.set(slot, { inner, waiters: [{ resolve, reject }] });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.placing || this.pending.size === 0) return;
    this.placing = true;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.maps.backend.placeInners(
        LB_MAPS.rings.name,
        [...batch].map(([index, p]) => ({ index, inner: p.inner })),
      );
      for (const p of batch.values()) for (const w of p.waiters) w.resolve();
    } catch (e) {
      for (const p of batch.values()) for (const w of p.waiters) w.reject(e);
    } finally {
      this.placing = false;
    }
    void this.pump();
  }

  /**
   * The service is gone: its tables leave `rings` (a program run still holding one keeps it until the run ends) and
   * borrowed slots return to the pool.
   */
  forget(svcId: number): Promise<void> {
    const st = this.services.get(svcId);
    if (!st) return Promise.resolve();
    this.services.delete(svcId);
    const run = st.chain.then(async () => {
      await Promise.all(
        st.tables.map(async (t) => {
          try {
            await this.place(t.slot, null);
          } finally {
            t.map.close();
          }
          if (t.slot >= this.firstSpare) this.freeSpare.push(t.slot);
        }),
      );
    });
    // A new service with this id queues its placements after these (place() keeps the last word per slot).
    return run;
  }

  /**
   * After a daemon restart: takes over the tables the pinned `rings` holds for service svcId (its fixed slots and
   * activeSlot, the one its record points at). Their contents are unknown, so the first write to each is a full one,
   * and none is written before a grace period from now has passed.
   */
  adopt(svcId: number, activeSlot: number | undefined): void {
    const st = this.state(svcId);
    const ticket = this.grace.ticket();
    const slots = new Set([2 * svcId, 2 * svcId + 1]);
    if (activeSlot !== undefined) slots.add(activeSlot);
    for (const slot of slots) {
      if (st.tables.some((t) => t.slot === slot)) continue;
      const map = this.maps.backend.getInner(LB_MAPS.rings.name, slot);
      if (!map) continue;
      const t: Table = { slot, map, contents: null, ticket, lastWritten: this.now() };
      st.tables.push(t);
      if (slot >= this.firstSpare) {
        const i = this.freeSpare.indexOf(slot);
        if (i >= 0) this.freeSpare.splice(i, 1);
        this.scheduleTrim();
      }
      if (slot === activeSlot) {
        t.ticket = 0;
        st.active = t;
      }
    }
  }

  /** After restore: empties every slot of `rings` that no service of `keep` owns (left by services removed meanwhile). */
  async dropUnowned(): Promise<void> {
    const owned = new Set([...this.services.values()].flatMap((st) => st.tables.map((t) => t.slot)));
    const rings = this.maps.backend.map(LB_MAPS.rings.name);
    const key = Buffer.alloc(4);
    const drops: Promise<void>[] = [];
    for (let slot = 0; slot < rings.maxEntries; slot++) {
      if (owned.has(slot)) continue;
      key.writeUInt32LE(slot);
      if (rings.lookup(key)) drops.push(this.place(slot, null));
    }
    await Promise.all(drops);
  }

  /** Gives back borrowed tables idle for SPARE_IDLE_MS, checking again while any are out. */
  private scheduleTrim(): void {
    if (this.trimTimer) return;
    this.trimTimer = setTimeout(() => {
      this.trimTimer = undefined;
      let out = 0;
      for (const [svcId, st] of this.services) {
        const stale = st.tables.filter((t) => t.slot >= this.firstSpare && t !== st.active && this.now() - t.lastWritten >= SPARE_IDLE_MS);
        out += st.tables.filter((t) => t.slot >= this.firstSpare).length - stale.length;
        if (stale.length === 0) continue;
        st.chain = st.chain.then(async () => {
          if (this.services.get(svcId) !== st) return;
          // Still idle and unread (a publish may have run since): only those leave.
          const gone = stale.filter((t) => t !== st.active && this.grace.isSafe(t.ticket) && this.now() - t.lastWritten >= SPARE_IDLE_MS);
          st.tables = st.tables.filter((t) => !gone.includes(t));
          await Promise.all(
            gone.map(async (t) => {
              try {
                await this.place(t.slot, null);
                this.freeSpare.push(t.slot);
              } finally {
                t.map.close();
              }
            }),
          );
        }).catch(() => undefined);
      }
      if (out > 0) this.scheduleTrim();
    }, SPARE_IDLE_MS);
    this.trimTimer.unref();
  }

  /**
   * Resolves once packets read only the active table of service svcId and the others have caught up with it: the
   * state in which a change writes just its own slots (the benchmark waits for it between changes).
   */
  async settled(svcId: number): Promise<void> {
    const st = this.services.get(svcId);
    if (!st) return;
    await this.grace.whenSafe(Math.max(0, ...st.tables.filter((t) => t !== st.active).map((t) => t.ticket)));
    // The catch-ups the grace period released were queued on the chain before this continuation ran.
    await st.chain;
  }

  /** Stops the trim timer (the balancer's owner is shutting down). */
  close(): void {
    if (this.trimTimer) clearTimeout(this.trimTimer);
    this.trimTimer = undefined;
  }
}
