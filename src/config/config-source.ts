/**
 * Where runtime documents come from. A source delivers the full document
 * each time it may have changed: its raw bytes when it has them (decoded by
 * the gate, strictly), or its text when a client decoded it, and null when
 * it was deleted. A source delivers only a complete document; the
 * caller decides what to do with it (config-gate.ts), so a source never
 * filters, parses or caches.
 */
export interface ConfigSource {
  /** For logs and `zonal config show`: a file path or a nacos:// URL without credentials. */
  readonly description: string;
  /**
   * Starts watching. A source that can read its current text without the
   * network (a file) delivers it before `start` returns; a remote one
   * delivers it when it answers, so startup never waits on it.
   */
  start(deliver: (document: Uint8Array | string | null) => void): void;
  /** Stops watching; leaves no timer, socket or pending request behind. */
  close(): Promise<void>;
}
