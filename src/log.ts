/**
 * Structured logging, on pino: one JSON line per event on stderr (stdout
 * carries the CLI's machine-readable `event` lines), shaped
 *   {"level":"warn","t":"<ISO time>","mod":"<module>","msg":"...",...fields}
 * Each line is written before the log call returns (through
 * process.stderr.write, synchronous for files, and on POSIX for pipes and
 * terminals), so a process that logs and then calls process.exit() keeps it.
 *
 * Environment, read once at load:
 * - ZONAL_LOG_LEVEL: debug, info, warn, error or silent (default info);
 *   setLogLevel() changes it later, for every logger at once.
 * - ZONAL_LOG_FORMAT: json or pretty. By default, readable lines (pino-pretty,
 *   loaded only then) when stderr is a terminal, JSON lines otherwise.
 * - ZONAL_TRACE=name1,name2 (or "all"): the debug lines of those modules
 *   (the names given to createLogger), whatever the level.
 */
import type { DestinationStream, Logger as PinoLogger } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

function parseLevel(value: string | undefined): LogLevel | undefined {
  const level = value?.trim().toLowerCase();
  return LEVELS.find((l) => l === level);
}

let threshold: LogLevel = parseLevel(process.env['ZONAL_LOG_LEVEL']) ?? 'info';
const traced = new Set((process.env['ZONAL_TRACE'] ?? '').split(',').map((s) => s.trim()).filter(Boolean));

/** How deep inside the fields an Error is still turned into its fields. */
const ERROR_SEARCH_DEPTH = 3;

/** What a log line says of an Error: JSON.stringify alone would give `{}`. */
function errorFields(err: Error): Record<string, unknown> {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' || typeof code === 'number' ? { name: err.name, message: err.message, code } : { name: err.name, message: err.message };
}

/** `value` with every Error in it (in plain objects and arrays, down to `depth`) replaced by errorFields; copies only what changes. */
function withPlainErrors(value: unknown, depth: number): unknown {
  if (value instanceof Error) return errorFields(value);
  if (depth === 0 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((item: unknown, i) => {
      const plain = withPlainErrors(item, depth - 1);
      if (plain !== item) (out ??= value.slice())[i] = plain;
    });
    return out ?? value;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // class instances go to JSON as they are
  let out: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const plain = withPlainErrors(item, depth - 1);
    if (plain !== item) (out ??= { ...value })[key] = plain;
  }
  return out ?? value;
}

/** Writes through process.stderr.write, looked up at each line, so whoever replaces it (a test) sees the lines. */
function stderrDestination(format: (line: string) => string): DestinationStream {
  return { write: (line: string) => void process.stderr.write(format(line)) };
}

function chooseFormat(): 'json' | 'pretty' {
  const forced = process.env['ZONAL_LOG_FORMAT']?.trim().toLowerCase();
  if (forced === 'json' || forced === 'pretty') return forced;
  return process.stderr.isTTY === true ? 'pretty' : 'json';
}

function prettyLines(): (line: string) => string {
  // Lazy: a process that does not log to a terminal never loads pino-pretty.
  const { prettyFactory } = require('pino-pretty') as typeof import('pino-pretty');
  return prettyFactory({
    colorize: process.stderr.isTTY === true && process.env['NO_COLOR'] === undefined,
    messageKey: 'msg',
    timestampKey: 't',
    translateTime: 'SYS:HH:MM:ss.l',
    messageFormat: '[{mod}] {msg}',
    ignore: 'mod',
    singleLine: true,
    errorLikeObjectKeys: [], // errors are already {name, message, code}: keep them on the line
  });
}

/**
 * The one pino logger behind every Logger. Invariant: its level is
 * `threshold`; the module name goes in each line's fields, not in child
 * bindings, because a pino child keeps its own level and would miss
 * setLogLevel.
 */
/** Decided when the module loads, from the environment and whether stderr is a terminal then. */
const FORMAT = chooseFormat();
let rootLogger: PinoLogger | undefined;

/** Lazy: an SDK process that never logs (or logs below the level) never loads pino (~30 ms of import). */
function root(): PinoLogger {
  rootLogger ??= makeRoot();
  return rootLogger;
}

function makeRoot(): PinoLogger {
  const { pino } = require('pino') as typeof import('pino');
  return pino(
  {
    level: threshold,
    base: null, // no pid, no hostname
    timestamp: () => `,"t":"${new Date().toISOString()}"`,
    formatters: {
      level: (label) => ({ level: label }),
      log: (fields) => withPlainErrors(fields, ERROR_SEARCH_DEPTH) as Record<string, unknown>,
    },
    // Errors are already plain by then; keep pino's err serializer from reshaping an `err` field.
    serializers: { err: (value: unknown) => value },
  },
  stderrDestination(FORMAT === 'pretty' ? prettyLines() : (line) => line),
  );
}

/** Debug lines of ZONAL_TRACE modules: a child that stays at debug whatever `threshold` is. */
let tracer: PinoLogger | undefined;

export function setLogLevel(level: LogLevel): void {
  const parsed = parseLevel(level);
  if (parsed === undefined) {
    // The CLI passes its --log-level flag through unchecked: say so rather than throw.
    root().warn({ mod: 'log', msg: 'unknown log level; the level stays as it was', asked: level, kept: threshold });
    return;
  }
  threshold = parsed;
  if (rootLogger !== undefined) rootLogger.level = parsed;
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
  const write = (target: () => PinoLogger, level: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>): void => {
    // Below the level nothing is built (and pino is not loaded).
    if (target === root && LEVELS.indexOf(level) < LEVELS.indexOf(threshold)) return;
    const logger = target();
    // msg goes in the object, not as pino's message argument, so it comes before the fields, as it always has.
    if (logger.isLevelEnabled(level)) logger[level]({ mod: name, msg, ...fields });
  };
  const isTraced = traced.has(name) || traced.has('all');
  const traceTarget = (): PinoLogger => (tracer ??= root().child({}, { level: 'debug' }));
  return {
    debug: (m, f) => write(isTraced ? traceTarget : root, 'debug', m, f),
    info: (m, f) => write(root, 'info', m, f),
    warn: (m, f) => write(root, 'warn', m, f),
    error: (m, f) => write(root, 'error', m, f),
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
