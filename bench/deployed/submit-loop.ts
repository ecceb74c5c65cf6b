/**
 * The load shape every benchmark producer drives, whatever it submits to:
 * a closed loop with `inFlight` submits outstanding, or an open loop at
 * `ratePerSec`. Returns the figures the orchestrator reads from `done`.
 *
 * Open loop: submit i is due at t0 + i / rate whatever happened before it,
 * and its latency (and the stamp in its payload) counts from when it was
 * due, not from when the loop got to it, so a stalled loop cannot hide the
 * queueing (coordinated omission).
 */
import { epochMs, percentile } from './clock';

export interface LoadShape {
  tasks: number;
  inFlight: number;
  ratePerSec?: number;
}

/** `submitOne(dueMs)` submits one task; `dueMs` is when it was due (open loop) or now (closed loop). */
export async function driveSubmits(shape: LoadShape, submitOne: (dueMs: number) => Promise<unknown>, perCall = 1): Promise<Record<string, number>> {
  const latencies: number[] = [];
  const timed = async (dueMs: number): Promise<void> => {
    await submitOne(dueMs);
    latencies.push(epochMs() - dueMs);
  };
  const calls = Math.ceil(shape.tasks / perCall);
  const t0 = epochMs();
  if (shape.ratePerSec !== undefined) {
    const pending: Promise<void>[] = [];
    const intervalMs = (1000 * perCall) / shape.ratePerSec;
    for (let i = 0; i < calls; i++) {
      const dueMs = t0 + i * intervalMs;
      const waitMs = dueMs - epochMs();
      if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
      pending.push(timed(dueMs));
    }
    await Promise.all(pending);
  } else {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(shape.inFlight, calls) }, async () => {
        while (next++ < calls) await timed(epochMs());
      }),
    );
  }
  const elapsedMs = epochMs() - t0;
  const cpu = process.cpuUsage();
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    submitted: calls * perCall,
    elapsedMs,
    submitPerSec: (calls * perCall) / (elapsedMs / 1000),
    submitP50Ms: percentile(latencies, 50),
    submitP99Ms: percentile(latencies, 99),
  };
}
