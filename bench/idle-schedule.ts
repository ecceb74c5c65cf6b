/**
 * When, and on which streams, a server wrote its Pings, as the clients saw
 * it: the dispatcher's schedule is recorded in its window and replayed by
 * the baseline, so both pay for the same writes on the same connections.
 */

/** [ms since the first recorded millisecond, indices of the streams pinged in it], in time order. */
export type SendSchedule = [number, number[]][];

/** Worker ids carry the stream's index, so a Ping can be replayed on the same stream (and connection). */
export function workerIdOf(index: number): string {
  return `idle-${index}`;
}

export function streamIndexOf(workerId: string): number {
  return Number(workerId.slice(workerId.lastIndexOf('-') + 1));
}

/** Merges the clients' [sentUnixMs, stream indices] lists into one schedule. */
export function mergeSchedules(lists: [number, number[]][][]): SendSchedule {
  const byMs = new Map<number, number[]>();
  for (const list of lists) {
    for (const [ms, indices] of list) {
      const slot = byMs.get(ms);
      if (slot === undefined) byMs.set(ms, [...indices]);
      else slot.push(...indices);
    }
  }
  const sorted = [...byMs.entries()].sort((a, b) => a[0] - b[0]);
  const first = sorted[0]?.[0] ?? 0;
  return sorted.map(([ms, indices]) => [ms - first, indices]);
}

export function pingsIn(schedule: SendSchedule): number {
  return schedule.reduce((sum, [, indices]) => sum + indices.length, 0);
}

/** Mean Pings per millisecond in which the server wrote any: how bunched its writes are. */
export function burstOf(schedule: SendSchedule): number {
  return schedule.length > 0 ? pingsIn(schedule) / schedule.length : NaN;
}

/** Mean distinct connections per such millisecond (each costs its own flush and syscall). */
export function connectionsPerBurst(schedule: SendSchedule, streamsPerConnection: number): number {
  if (schedule.length === 0) return NaN;
  let total = 0;
  for (const [, indices] of schedule) total += new Set(indices.map((i) => Math.floor(i / streamsPerConnection))).size;
  return total / schedule.length;
}

/** The loop period that replays `schedule` at `perSec`. */
export function replayPeriodMs(schedule: SendSchedule, perSec: number): number {
  const last = schedule[schedule.length - 1]?.[0] ?? 0;
  return Math.max(last + 1, Math.round((pingsIn(schedule) / perSec) * 1000));
}
