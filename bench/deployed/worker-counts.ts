import { epochMs, percentile } from './clock';
import { emit, waitForLine } from './messages';

/** What a benchmark worker counts: tasks completed (durably, as its peer counts them) and when the last one was. */
export interface Counts {
  completed: number;
  lastMs: number;
}

/** Submit -> start (the handler runs) and submit -> completed (the completion is durable), in ms. */
export interface Latencies {
  start: number[];
  completed: number[];
}

/**
 * Prints `{"event":"count"}` with the tasks completed so far every 50 ms while
 * the count changes, so the orchestrator can sum several workers. Returns a
 * function that stops it.
 */
export function reportCounts(counts: Counts): () => void {
  let reported = -1;
  const timer = setInterval(() => {
    if (counts.completed === reported) return;
    reported = counts.completed;
    emit('count', { completed: counts.completed, lastMs: counts.lastMs });
  }, 50);
  return () => clearInterval(timer);
}

function summary(values: number[]): Record<string, number> {
  return { p50: percentile(values, 50), p99: percentile(values, 99), p999: percentile(values, 99.9), n: values.length };
}

/**
 * The rest of a benchmark worker's life, after it is ready: says so, starts
 * counting at `go` (`onGo` marks the instant: tasks stamped before it are
 * warm-up), reports its figures at `report`, and closes at `stop`.
 */
export async function followOrchestrator(counts: Counts, latencies: Latencies, onGo: (goMs: number) => void, close: () => Promise<void>): Promise<never> {
  emit('ready');
  await waitForLine('go');
  onGo(epochMs());
  emit('going');
  const stopCounting = reportCounts(counts);
  await waitForLine('report');
  stopCounting();
  const cpu = process.cpuUsage();
  emit('report', {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    completed: counts.completed,
    lastMs: counts.lastMs,
    start: summary(latencies.start),
    completedLatency: summary(latencies.completed),
  });
  await waitForLine('stop');
  await close();
  process.exit(0);
}
