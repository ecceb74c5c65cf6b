import * as fs from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';
import { createLogger } from '../log';
import type { ConfigSource } from './config-source';

const log = createLogger('config');

/**
 * A YAML or JSON file, read at start and again whenever it changes.
 * chokidar watches it: it follows editors that write a temporary file and
 * rename it over the original, and Kubernetes ConfigMaps that swap a
 * symlink, which a bare fs.watch on the file would lose. A deleted file
 * delivers null (ignored by the gate; the config in force stays).
 */
export class FileSource implements ConfigSource {
  private watcher: FSWatcher | undefined;
  private closed = false;

  constructor(readonly path: string) {}

  get description(): string {
    return `file ${this.path}`;
  }

  start(deliver: (text: string | null) => void): void {
    deliver(readOrNull(this.path));
    this.watcher = watch(this.path, { ignoreInitial: true, persistent: true, atomic: true, awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 } });
    const reread = (): void => {
      if (!this.closed) deliver(readOrNull(this.path));
    };
    // A change made between the first read and the watcher being ready
    // raises no event: read once more when it is ready (a repeat of the
    // same text is a harmless duplicate).
    this.watcher.on('ready', reread);
    this.watcher.on('add', reread).on('change', reread).on('unlink', () => {
      if (!this.closed) deliver(null);
    });
    this.watcher.on('error', (err) => log.warn('watching the config file failed', { path: this.path, error: err }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.close();
    this.watcher = undefined;
  }
}

function readOrNull(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('reading the config file failed', { path, error: err });
    return null;
  }
}
