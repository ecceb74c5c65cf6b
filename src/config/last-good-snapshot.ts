import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The last document that was applied, kept under the data dir so a restart
 * starts from it at once, whatever state the config source is in. Written
 * only after validation, atomically: a temporary file is written and synced,
 * then renamed over the old one, and the directory is synced, so a crash
 * leaves either the old snapshot or the new one, never a torn file.
 * The text is stored as delivered (signature line included) and is verified
 * again when it is loaded, so a rotated key also retires old snapshots.
 *
 * Writes are serialized and coalesced: while one is in progress only the
 * newest pending text is kept, so a burst of updates costs two writes.
 */
export class LastGoodSnapshot {
  readonly path: string;
  private pending: string | undefined;
  private writing: Promise<void> | undefined;
  private lastError: Error | undefined;

  constructor(
    dataDir: string,
    private readonly onError: (error: Error) => void = () => {},
    fileName = 'runtime-config.last-good',
  ) {
    this.path = path.join(dataDir, fileName);
  }

  /** The stored text, or undefined when there is none or it cannot be read. Removes temp files a crash left. */
  load(): string | undefined {
    const dir = path.dirname(this.path);
    const prefix = `${path.basename(this.path)}.`;
    try {
      for (const name of fs.readdirSync(dir)) if (name.startsWith(prefix) && name.endsWith('.tmp')) fs.rmSync(path.join(dir, name), { force: true });
    } catch {
      // No directory yet: nothing to clean.
    }
    try {
      return fs.readFileSync(this.path, 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Schedules `text` to be stored; resolves once it (or a newer text) is on disk. */
  save(text: string): Promise<void> {
    this.pending = text;
    this.writing ??= this.drain();
    return this.writing;
  }

  /** Resolves when every scheduled write is done. */
  async flush(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

  get error(): Error | undefined {
    return this.lastError;
  }

  /** Never rejects: a failed write is reported through `onError` and kept in `error`. */
  private async drain(): Promise<void> {
    try {
      while (this.pending !== undefined) {
        const text = this.pending;
        this.pending = undefined;
        try {
          await writeAtomically(this.path, text);
          this.lastError = undefined;
        } catch (err) {
          this.lastError = err as Error;
          this.onError(err as Error);
        }
      }
    } finally {
      this.writing = undefined;
    }
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  await fs.promises.mkdir(dir, { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  const handle = await fs.promises.open(temp, 'w', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(temp, file);
  const dirHandle = await fs.promises.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
