import { performance } from 'node:perf_hooks';

/**
 * Milliseconds since the epoch with sub-millisecond resolution. Every bench
 * process on the machine reads the same system clock at its start
 * (`timeOrigin`), so a stamp written by a producer can be compared with one
 * read in a worker.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A payload of `bytes` bytes that starts with the submit stamp: now, or the
 * instant an open loop meant to send it (so a late send counts as latency).
 */
export function stampedPayload(bytes: number, atMs: number = epochMs()): Buffer {
  const stamp = atMs.toFixed(3);
  const out = Buffer.alloc(Math.max(bytes, stamp.length + 1), 0x20);
  out.write(stamp, 0, 'ascii');
  return out;
}

/** The stamp a payload made by `stampedPayload` starts with. */
export function stampOf(payload: Uint8Array): number {
  const text = Buffer.from(payload.buffer, payload.byteOffset, Math.min(payload.byteLength, 24)).toString('ascii');
  return Number.parseFloat(text);
}

/** p-th percentile (0..100) of an unsorted list; sorts a copy. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
