import { BoundedLabels, MAX_ZONE_LABELS } from './bounded-labels';
import { bucketIndex, LATENCY_BUCKETS_MS, quantileMs } from './latency-buckets';

/**
 * Latency histograms per zone pair, in time slots: what the heatmap page,
 * its JSON API and the SLO check read. Pure: every call takes the time.
 *
 * A series is one kind of latency by one kind of row:
 * - `dispatch.producer`: submit to a worker holding the task, producer zone -> worker zone;
 * - `dispatch.dispatcher`: the same, dispatcher zone -> worker zone;
 * - `rtt`: heartbeat round trips, dispatcher zone -> worker zone.
 *
 * Each (series, from, to) keeps bucket counts per `SLOT_MS` slot for the
 * longest window (1 h). Rows from other dispatchers (shared through
 * PostgreSQL) are kept apart per dispatcher and replaced whole, so this
 * dispatcher's own counts are never counted twice.
 */
export const SERIES = ['dispatch.producer', 'dispatch.dispatcher', 'rtt'] as const;
export type Series = (typeof SERIES)[number];

export const SLOT_MS = 10_000;
export const WINDOWS_MS = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000 } as const;
export type WindowName = keyof typeof WINDOWS_MS;
const KEEP_MS = WINDOWS_MS['1h'] + SLOT_MS;
const BUCKETS = LATENCY_BUCKETS_MS.length + 1;

/** A slot's histogram for one pair: shared between dispatchers as is. */
export interface SlotRow {
  series: Series;
  fromZone: string;
  toZone: string;
  slotMs: number;
  /** Counts per bucket of LATENCY_BUCKETS_MS, then +Inf. */
  buckets: number[];
  sumMs: number;
}

interface Cell {
  counts: Float64Array;
  sumMs: number;
}

export interface PairSummary {
  from: string;
  to: string;
  count: number;
  /** The quantile asked for, in ms; undefined without samples. */
  valueMs: number | undefined;
  p50Ms: number | undefined;
  p95Ms: number | undefined;
  p99Ms: number | undefined;
  meanMs: number | undefined;
}

export class LatencyMatrix {
  /** series|from|to -> slot start -> histogram. */
  private readonly local = new Map<string, Map<number, Cell>>();
  /** dispatcher id -> series|from|to|slot -> its row; the newest copy of a row replaces the older. */
  private readonly remote = new Map<string, { rows: Map<string, SlotRow>; seenMs: number }>();
  /** One zone budget for this dispatcher's samples and everyone else's: the matrix never holds more than 32 zones (then "other"). */
  private readonly zones = new BoundedLabels(MAX_ZONE_LABELS);

  /** One sample. */
  record(series: Series, from: string, to: string, ms: number, nowMs: number): void {
    const key = `${series}\u0000${this.zones.value(from)}\u0000${this.zones.value(to)}`;
    let slots = this.local.get(key);
    if (slots === undefined) {
      slots = new Map();
      this.local.set(key, slots);
    }
    const slotMs = slotStart(nowMs);
    let cell = slots.get(slotMs);
    if (cell === undefined) {
      cell = { counts: new Float64Array(BUCKETS), sumMs: 0 };
      slots.set(slotMs, cell);
      for (const old of slots.keys()) if (old < nowMs - KEEP_MS) slots.delete(old);
    }
    cell.counts[bucketIndex(ms)]! += 1;
    cell.sumMs += ms;
  }

  /** This dispatcher's rows of slots starting at or after `sinceMs` (for sharing). */
  localRows(sinceMs: number): SlotRow[] {
    const rows: SlotRow[] = [];
    for (const [key, slots] of this.local) {
      const [series, fromZone = '', toZone = ''] = key.split('\u0000') as [Series, string, string];
      for (const [slotMs, cell] of slots) {
        if (slotMs >= sinceMs) rows.push({ series, fromZone, toZone, slotMs, buckets: Array.from(cell.counts), sumMs: cell.sumMs });
      }
    }
    return rows;
  }

  /** Another dispatcher's rows: each replaces its older copy (a slot is rewritten while it is current). */
  mergeRemote(dispatcherId: string, rows: readonly SlotRow[], nowMs: number): void {
    let entry = this.remote.get(dispatcherId);
    if (entry === undefined) {
      entry = { rows: new Map(), seenMs: nowMs };
      this.remote.set(dispatcherId, entry);
    }
    entry.seenMs = nowMs;
    // Rows whose zones fall under "other" here add up; a read brings every row of the slots it covers, so each slot is summed whole.
    const merged = new Map<string, SlotRow>();
    for (const row of rows) {
      if (row.buckets.length !== BUCKETS || !(SERIES as readonly string[]).includes(row.series)) continue;
      const fromZone = this.zones.value(row.fromZone);
      const toZone = this.zones.value(row.toZone);
      const key = `${row.series}\u0000${fromZone}\u0000${toZone}\u0000${row.slotMs}`;
      const sum = merged.get(key);
      if (sum === undefined) merged.set(key, { ...row, fromZone, toZone, buckets: [...row.buckets] });
      else {
        for (let i = 0; i < BUCKETS; i++) sum.buckets[i]! += row.buckets[i]!;
        sum.sumMs += row.sumMs;
      }
    }
    for (const [key, row] of merged) entry.rows.set(key, row);
  }

  /** Dispatchers whose rows are merged in. */
  remoteDispatchers(): string[] {
    return [...this.remote.keys()];
  }

  /** Drops what is older than the longest window, and dispatchers not heard from in it. */
  prune(nowMs: number): void {
    for (const [key, slots] of this.local) {
      for (const slotMs of slots.keys()) if (slotMs < nowMs - KEEP_MS) slots.delete(slotMs);
      if (slots.size === 0) this.local.delete(key);
    }
    for (const [id, entry] of this.remote) {
      if (entry.seenMs < nowMs - KEEP_MS) {
        this.remote.delete(id);
        continue;
      }
      for (const [key, row] of entry.rows) if (row.slotMs < nowMs - KEEP_MS) entry.rows.delete(key);
    }
  }

  /** Every pair of a series with samples in the window, with its quantiles. */
  summary(series: Series, windowMs: number, quantile: number, nowMs: number): PairSummary[] {
    const merged = new Map<string, Cell>();
    this.each(series, firstSlotMs(nowMs, windowMs), (from, to, _slotMs, counts, sumMs) => {
      const key = `${from}\u0000${to}`;
      let cell = merged.get(key);
      if (cell === undefined) {
        cell = { counts: new Float64Array(BUCKETS), sumMs: 0 };
        merged.set(key, cell);
      }
      for (let i = 0; i < BUCKETS; i++) cell.counts[i]! += counts[i]!;
      cell.sumMs += sumMs;
    });
    const out: PairSummary[] = [];
    for (const [key, cell] of merged) {
      const [from = '', to = ''] = key.split('\u0000');
      const count = cell.counts.reduce((a, b) => a + b, 0);
      out.push({
        from,
        to,
        count,
        valueMs: quantileMs(cell.counts, quantile),
        p50Ms: quantileMs(cell.counts, 0.5),
        p95Ms: quantileMs(cell.counts, 0.95),
        p99Ms: quantileMs(cell.counts, 0.99),
        meanMs: count > 0 ? cell.sumMs / count : undefined,
      });
    }
    return out.sort((a, b) => (a.from === b.from ? a.to.localeCompare(b.to) : a.from.localeCompare(b.from)));
  }

  /** One pair's histogram per slot over the window, oldest first (every slot, empty ones too). */
  timeline(series: Series, from: string, to: string, windowMs: number, nowMs: number): { startMs: number; counts: number[] }[] {
    const first = firstSlotMs(nowMs, windowMs);
    const slots = new Map<number, Float64Array>();
    for (let t = first; t <= nowMs; t += SLOT_MS) slots.set(t, new Float64Array(BUCKETS));
    this.each(series, first, (f, t, slotMs, counts) => {
      if (f !== from || t !== to) return;
      const target = slots.get(slotMs);
      if (target !== undefined) for (let i = 0; i < BUCKETS; i++) target[i]! += counts[i]!;
    });
    return [...slots].map(([startMs, counts]) => ({ startMs, counts: Array.from(counts) }));
  }

  private each(series: Series, sinceMs: number, fn: (from: string, to: string, slotMs: number, counts: ArrayLike<number>, sumMs: number) => void): void {
    const since = slotStart(sinceMs);
    for (const [key, slots] of this.local) {
      const [s, from = '', to = ''] = key.split('\u0000');
      if (s !== series) continue;
      for (const [slotMs, cell] of slots) if (slotMs >= since) fn(from, to, slotMs, cell.counts, cell.sumMs);
    }
    for (const { rows } of this.remote.values()) {
      for (const row of rows.values()) if (row.series === series && row.slotMs >= since) fn(row.fromZone, row.toZone, row.slotMs, row.buckets, row.sumMs);
    }
  }
}

/**
 * The oldest slot a window covers: the slot now is in, and the ones before
 * it, windowMs / SLOT_MS slots in all: the oldest starts at or after
 * now - windowMs, so a window reaches back between windowMs - SLOT_MS and
 * windowMs. The matrix and the pair's timeline use the same.
 */
export function firstSlotMs(nowMs: number, windowMs: number): number {
  return slotStart(nowMs) - windowMs + SLOT_MS;
}

export function slotStart(ms: number): number {
  return ms - (((ms % SLOT_MS) + SLOT_MS) % SLOT_MS);
}
