import * as fs from 'node:fs';
import { loadAccessPolicy, type CompiledAccessPolicy } from './access-policy';

export interface PolicyFileEvents {
  /** A changed policy was read and is in force. */
  onReload?(): void;
  /** A changed policy (or a token file it names) could not be used; the last good policy stays. */
  onError?(error: Error): void;
}

/**
 * The access policy file, and the token files it names, polled every
 * `reloadIntervalMs`: a valid change is in force for the next call (no
 * restart, no dropped stream: streams already open keep the queues they
 * were let in for), an invalid one is logged and the last good policy
 * stays. The first read throws, so a dispatcher never starts on a bad
 * policy.
 */
export class AccessPolicyFile {
  private policy: CompiledAccessPolicy;
  private watched = new Set<string>();
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly reloadIntervalMs: number,
    private readonly events: PolicyFileEvents = {},
  ) {
    this.policy = loadAccessPolicy(file);
    this.watch();
  }

  current(): CompiledAccessPolicy {
    return this.policy;
  }

  /** Reads the policy again now (the poll does this when a file changes). */
  reload(): boolean {
    if (this.closed) return false;
    try {
      this.policy = loadAccessPolicy(this.file);
    } catch (err) {
      this.events.onError?.(err instanceof Error ? err : new Error(String(err)));
      return false;
    }
    this.watch();
    this.events.onReload?.();
    return true;
  }

  close(): void {
    this.closed = true;
    for (const file of this.watched) fs.unwatchFile(file, this.onChange);
    this.watched.clear();
  }

  private watch(): void {
    const wanted = new Set([this.file, ...this.policy.tokenFiles]);
    for (const file of this.watched) {
      if (!wanted.has(file)) {
        fs.unwatchFile(file, this.onChange);
        this.watched.delete(file);
      }
    }
    for (const file of wanted) {
      if (this.watched.has(file)) continue;
      fs.watchFile(file, { interval: this.reloadIntervalMs, persistent: false }, this.onChange);
      this.watched.add(file);
    }
  }

  private readonly onChange = (current: fs.Stats, previous: fs.Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino) return;
    this.reload();
  };
}
