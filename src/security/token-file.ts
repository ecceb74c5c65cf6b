import { timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import { tokenDigest, TOKEN_PATTERN } from './token';

/**
 * A file of shared bearer tokens (the admin port's, the control plane's
 * registration port's): one token per line, so a rotation adds the new
 * token, moves every client to it, then removes the old one, with no
 * restart: the file is polled every `reloadIntervalMs`. A client presents
 * the first line. An unusable change keeps the last good tokens (reported
 * to `onError`); the first read throws.
 *
 * Checks hash the presented token and compare digests with timingSafeEqual
 * against every line, without stopping at a match.
 */
export class TokenFile {
  private digests: Buffer[] = [];
  private first = '';
  private closed = false;

  constructor(
    readonly file: string,
    reloadIntervalMs: number,
    private readonly onError: (error: Error) => void = () => undefined,
  ) {
    this.read();
    fs.watchFile(file, { interval: reloadIntervalMs, persistent: false }, this.onChange);
  }

  /** The token a client presents (the file's first line). */
  get token(): string {
    return this.first;
  }

  /** Whether `presented` is one of the file's tokens. */
  matches(presented: string): boolean {
    const digest = Buffer.from(tokenDigest(presented), 'hex');
    let found = false;
    for (const known of this.digests) if (timingSafeEqual(known, digest)) found = true;
    return found;
  }

  /** Whether an `authorization` header value is "Bearer <one of the tokens>". */
  matchesHeader(header: string | undefined): boolean {
    if (header === undefined || !header.startsWith('Bearer ')) return false;
    return this.matches(header.slice('Bearer '.length));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.unwatchFile(this.file, this.onChange);
  }

  private read(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read token file ${this.file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const tokens = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    if (tokens.length === 0 || tokens.length > 16) throw new Error(`token file ${this.file} must hold 1 to 16 tokens, one per line`);
    if (!tokens.every((t) => TOKEN_PATTERN.test(t))) throw new Error(`token file ${this.file}: each token must be 16 to 4096 visible ASCII characters`);
    this.digests = tokens.map((t) => Buffer.from(tokenDigest(t), 'hex'));
    this.first = tokens[0]!;
  }

  private readonly onChange = (): void => {
    if (this.closed) return;
    try {
      this.read();
    } catch (err) {
      this.onError(err instanceof Error ? err : new Error(String(err)));
    }
  };
}
