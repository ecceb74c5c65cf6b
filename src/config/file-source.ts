import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';
import { createLogger } from '../log';
import type { ConfigSource } from './config-source';
import { MAX_DOCUMENT_BYTES } from './document-text';

const log = createLogger('config');

/** How long a file must stay unchanged before it is delivered. */
export const FILE_STABLE_MS = 1_000;

export interface FileSourceOptions {
  /** How long the file must stay byte-for-byte unchanged before it is delivered; default FILE_STABLE_MS. */
  stableMs?: number;
  /** Wall clock (ms since the epoch), compared with the file's mtime at start. */
  nowMs?: () => number;
}

/** What one look at the file saw. `key` is equal for two looks only if the file did not change between them. */
interface Observation {
  key: string;
  /** The raw bytes (at most MAX_DOCUMENT_BYTES + 1: enough for the gate to refuse a larger file), or null when missing. */
  bytes: Uint8Array | null;
  mtimeMs: number;
}

/**
 * A YAML or JSON file, delivered as raw bytes (the gate decodes them
 * strictly) at start and whenever it changes.
 *
 * A file is delivered only once it is complete, as far as can be told: it
 * must look the same (inode, size, mtime to the nanosecond and SHA-256 of
 * the bytes) in two reads `stableMs` apart, with no change event between
 * them. Any event or difference starts the window again. So a writer that
 * truncates the file, writes half, pauses (up to `stableMs`) and writes the
 * rest is seen only whole. A writer that pauses longer than `stableMs` in
 * the middle of a write cannot be told from one that finished; writers
 * should write a temporary file and rename it over this one (atomic), or
 * sign documents (a truncated signed document fails its signature).
 *
 * At start, a file whose mtime is already `stableMs` old is delivered before
 * `start` returns; a fresher one waits for the window like any change.
 * chokidar watches the path, following editors that rename a temporary file
 * over it and Kubernetes ConfigMap symlink swaps. A deleted file delivers
 * null (ignored by the gate; the config in force stays).
 *
 * Invariant: at most one confirmation timer is pending; close() clears it.
 */
export class FileSource implements ConfigSource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The key of the last delivered observation: the same file seen again is not delivered again. */
  private delivered: string | undefined;
  private readonly stableMs: number;
  private readonly nowMs: () => number;
  private deliver: (document: Uint8Array | null) => void = () => {};

  constructor(
    readonly path: string,
    options: FileSourceOptions = {},
  ) {
    this.stableMs = options.stableMs ?? FILE_STABLE_MS;
    this.nowMs = options.nowMs ?? Date.now;
  }

  get description(): string {
    return `file ${this.path}`;
  }

  start(deliver: (document: Uint8Array | null) => void): void {
    this.deliver = deliver;
    const first = observe(this.path);
    if (this.nowMs() - first.mtimeMs >= this.stableMs) this.settle(first);
    else this.confirmLater(first);
    this.watcher = watch(this.path, { ignoreInitial: true, persistent: true, atomic: true });
    // Any event (and 'ready', which covers a change made before the watcher
    // was watching) starts a new window from what the file holds now.
    const changed = (): void => this.changed();
    this.watcher.on('ready', changed).on('add', changed).on('change', changed).on('unlink', changed);
    this.watcher.on('error', (err) => log.warn('watching the config file failed', { path: this.path, error: err }));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.watcher?.close();
    this.watcher = undefined;
  }

  private changed(): void {
    if (this.closed) return;
    const now = observe(this.path);
    clearTimeout(this.timer);
    this.timer = undefined;
    if (now.key !== this.delivered) this.confirmLater(now);
  }

  /** Reads again after `stableMs`; delivers if nothing changed, else waits again from the new state. */
  private confirmLater(before: Observation): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      const after = observe(this.path);
      if (after.key === before.key) this.settle(after);
      else this.confirmLater(after);
    }, this.stableMs);
  }

  private settle(observation: Observation): void {
    if (observation.key === this.delivered) return;
    this.delivered = observation.key;
    this.deliver(observation.bytes);
  }
}

let unstableLooks = 0;

/**
 * One look at the file: stat, read (bounded), stat again. A file that
 * changed during the read gets a key no other look has.
 */
function observe(path: string): Observation {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('reading the config file failed', { path, error: err });
    return { key: `missing:${(err as NodeJS.ErrnoException).code ?? ''}`, bytes: null, mtimeMs: 0 };
  }
  try {
    const before = fs.fstatSync(fd, { bigint: true });
    const buffer = Buffer.alloc(MAX_DOCUMENT_BYTES + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) n = fs.readSync(fd, buffer, length, buffer.length - length, length);
    const after = fs.fstatSync(fd, { bigint: true });
    const bytes = buffer.subarray(0, length);
    const stat = (s: fs.BigIntStats): string => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    const hash = createHash('sha256').update(bytes).digest('hex');
    const key = stat(before) === stat(after) ? `${stat(after)}:${hash}` : `changing:${++unstableLooks}`;
    return { key, bytes, mtimeMs: Number(after.mtimeMs) };
  } catch (err) {
    log.warn('reading the config file failed', { path, error: err });
    return { key: `unreadable:${(err as NodeJS.ErrnoException).code ?? String(err)}`, bytes: null, mtimeMs: 0 };
  } finally {
    fs.closeSync(fd);
  }
}
