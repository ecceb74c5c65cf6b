/**
 * Structured logging: one JSON line per event on stderr. The level comes from
 * ZONAL_LOG_LEVEL (debug, info, warn, error; default info). Each module has a
 * trace name; ZONAL_TRACE=name1,name2 (or "all") turns on its debug lines.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

let threshold: LogLevel = parseLevel(process.env['ZONAL_LOG_LEVEL']);
const traced = new Set((process.env['ZONAL_TRACE'] ?? '').split(',').map((s) => s.trim()).filter(Boolean));

function parseLevel(value: string | undefined): LogLevel {
  return value !== undefined && value in ORDER ? (value as LogLevel) : 'info';
}

export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

export function currentLogLevel(): LogLevel {
  return threshold;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(name: string): Logger {
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    const debugOn = level === 'debug' && (traced.has(name) || traced.has('all'));
    if (ORDER[level] < ORDER[threshold] && !debugOn) return;
    const line = JSON.stringify({ t: new Date().toISOString(), level, mod: name, msg, ...fields }, (_k, v: unknown) =>
      v instanceof Error ? { name: v.name, message: v.message } : v,
    );
    process.stderr.write(line + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/**
 * Lets at most `maxLines` log lines through per window of `windowMs`, so a
 * flood of the same event does not flood the log; counts the ones it holds
 * back. `take` tells whether to log now, and how many were held back in the
 * window that just ended (0 while a window runs). Pure: the time is passed
 * in. RateLimitedLog (below) owns the timer that reports a held-back count
 * when no later line comes to carry it.
 */
export class LogLimiter {
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private lines = 0;
  private suppressed = 0;

  constructor(
    private readonly maxLines: number,
    private readonly windowMs: number,
  ) {}

  take(nowMs: number): { log: boolean; suppressedBefore: number } {
    let suppressedBefore = 0;
    if (nowMs - this.windowStartMs >= this.windowMs) {
      suppressedBefore = this.suppressed;
      this.windowStartMs = nowMs;
      this.lines = 0;
      this.suppressed = 0;
    }
    if (this.lines < this.maxLines) {
      this.lines += 1;
      return { log: true, suppressedBefore };
    }
    this.suppressed += 1;
    return { log: false, suppressedBefore };
  }

  /** When the window holding back lines ends; undefined when none is held back. */
  get flushDueMs(): number | undefined {
    return this.suppressed > 0 ? this.windowStartMs + this.windowMs : undefined;
  }

  /** The count held back in a window that has ended by `nowMs` (then forgotten); 0 while the window runs. */
  flush(nowMs: number): number {
    if (nowMs - this.windowStartMs < this.windowMs) return 0;
    return this.drain();
  }

  /** The count held back so far, whatever the time (then forgotten). */
  drain(): number {
    const count = this.suppressed;
    this.suppressed = 0;
    return count;
  }
}

/**
 * A LogLimiter with the timer that makes its count reach the log: lines
 * held back are reported when the next line gets through, or at the end of
 * their window if none does, or at close().
 *
 * Invariant: a timer is pending only while lines are held back; it is
 * unref'd (it never keeps a process alive) and close() clears it.
 */
export class RateLimitedLog {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly limiter: LogLimiter,
    /** Writes the one line that says how many were held back. */
    private readonly reportHeldBack: (count: number) => void,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Runs `write` if the limiter lets a line through now. */
  write(write: () => void): void {
    const { log, suppressedBefore } = this.limiter.take(this.nowMs());
    if (suppressedBefore > 0) this.reportHeldBack(suppressedBefore);
    if (log) write();
    else this.schedule();
  }

  /** Reports what is held back now, and leaves no timer. Idempotent. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const count = this.limiter.drain();
    if (count > 0) this.reportHeldBack(count);
  }

  private schedule(): void {
    const due = this.limiter.flushDueMs;
    if (this.closed || this.timer !== undefined || due === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const count = this.limiter.flush(this.nowMs());
      if (count > 0) this.reportHeldBack(count);
      else this.schedule(); // woke early by the clock: wait for the rest of the window
    }, Math.max(1, due - this.nowMs()));
    this.timer.unref();
  }
}
