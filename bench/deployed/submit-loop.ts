/**
 * The load shape every benchmark producer drives, whatever it submits to:
 * a closed loop with `inFlight` submits outstanding, or an open loop at
 * `ratePerSec`. Returns the figures the orchestrator reads from `done`.
 */
import { epochMs, percentile } from './clock';

export interface LoadShape {
  tasks: number;
  inFlight: number;
  ratePerSec?: number;
}

export async function driveSubmits(shape: LoadShape, submitOne: () => Promise<unknown>): Promise<Record<string, number>> {
  const latencies: number[] = [];
  const timed = async (): Promise<void> => {
    const startedMs = epochMs();
    await submitOne();
    latencies.push(epochMs() - startedMs);
  };
  const t0 = epochMs();
  if (shape.ratePerSec !== undefined) {
    const pending: Promise<void>[] = [];
    const intervalMs = 1000 / shape.ratePerSec;
    for (let i = 0; i < shape.tasks; i++) {
      const waitMs = t0 + i * intervalMs - epochMs();
      if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
      pending.push(timed());
    }
    await Promise.all(pending);
  } else {
    let next = 0;
    await Promise.all(
      Array.from({ length: shape.inFlight }, async () => {
        while (next++ < shape.tasks) await timed();
      }),
    );
  }
  const elapsedMs = epochMs() - t0;
  const cpu = process.cpuUsage();
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    submitted: shape.tasks,
    elapsedMs,
    submitPerSec: shape.tasks / (elapsedMs / 1000),
    submitP50Ms: percentile(latencies, 50),
    submitP99Ms: percentile(latencies, 99),
  };
}
