import { emit } from './messages';

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
