/**
 * The bench's child processes talk to the orchestrator in JSON lines:
 * they print `{"event": ...}` on stdout and read commands on stdin.
 */
import * as readline from 'node:readline';

export function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

/** Resolves when the orchestrator writes `line` on stdin. */
export function waitForLine(line: string): Promise<void> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (got) => {
      if (got.trim() !== line) return;
      rl.close();
      resolve();
    });
  });
}

/** The child's settings, passed as one JSON argument. */
export function settings<T>(): T {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('expected the settings as one JSON argument');
  return JSON.parse(raw) as T;
}
