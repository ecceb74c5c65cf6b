import { epochMs, percentile } from './clock';
import { emit, waitForLine } from './messages';

/**
 * Prints `{"event":"count"}` with the tasks started so far every 50 ms while
 * the count changes, so the orchestrator can sum several workers. Returns a
 * function that stops it.
 */
export function reportCounts(counts: { started: number; lastMs: number }): () => void {
  let reported = -1;
  const timer = setInterval(() => {
    if (counts.started === reported) return;
    reported = counts.started;
    emit('count', { started: counts.started, lastMs: counts.lastMs });
  }, 50);
  return () => clearInterval(timer);
}

/**
 * The rest of a benchmark worker's life, after it is ready: says so, starts
 * counting at `go` (`onGo` marks the instant: tasks stamped before it are
 * warm-up), reports its figures at `report`, and closes at `stop`.
 */
export async function followOrchestrator(counts: { started: number; lastMs: number }, latencies: number[], onGo: (goMs: number) => void, close: () => Promise<void>): Promise<never> {
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
    started: counts.started,
    lastMs: counts.lastMs,
    latencies: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), p999: percentile(latencies, 99.9), n: latencies.length },
  });
  await waitForLine('stop');
  await close();
  process.exit(0);
}
