import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, currentLogLevel, setLogLevel } from '../../src/log';

type LogModule = typeof import('../../src/log');

/** What is written to process.stderr from now on (the logger's stream), one entry per line. */
function captureStderr(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    lines.push(...text.split('\n').filter(Boolean));
    return true;
  });
  return lines;
}

const parsed = (lines: string[]): Record<string, unknown>[] => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

/** A fresh copy of src/log, loaded under `env` (it reads the environment once, at load). */
async function loadLog(env: Record<string, string | undefined>): Promise<LogModule> {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  vi.resetModules();
  return import('../../src/log');
}

describe('log lines', () => {
  const levelBefore = currentLogLevel();
  let lines: string[] = [];

  beforeEach(() => {
    lines = captureStderr();
  });

  afterEach(() => {
    setLogLevel(levelBefore);
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('are one JSON object per line: t (ISO time), level (its name), mod, msg and the fields, nothing else', () => {
    setLogLevel('info');
    createLogger('shape').info('hello', { taskId: 't1', attempt: 2, nested: { ok: true } });
    expect(lines).toHaveLength(1);
    const [line] = parsed(lines);
    expect(Object.keys(line!).sort()).toEqual(['attempt', 'level', 'mod', 'msg', 'nested', 't', 'taskId']);
    expect(line).toMatchObject({ level: 'info', mod: 'shape', msg: 'hello', taskId: 't1', attempt: 2, nested: { ok: true } });
    expect(line!['t']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(new Date(String(line!['t'])).toISOString()).toBe(line!['t']);
    // The message comes before the fields, so a grep for "msg.*field" finds the line.
    expect(lines[0]).toMatch(/^\{"level":"info","t":"[^"]+","mod":"shape","msg":"hello","taskId":"t1",/);
  });

  it('write the message as given, with no printf-style substitution', () => {
    setLogLevel('info');
    createLogger('verbatim').info('100%s done %d %j', { n: 1 });
    expect(parsed(lines)[0]).toMatchObject({ msg: '100%s done %d %j', n: 1 });
  });

  it('leave out undefined fields, as JSON.stringify does, and take a line without fields', () => {
    setLogLevel('debug');
    const log = createLogger('sparse');
    log.debug('no fields');
    log.warn('one undefined', { gone: undefined, kept: 0 });
    expect(parsed(lines)).toEqual([
      { t: expect.any(String), level: 'debug', mod: 'sparse', msg: 'no fields' },
      { t: expect.any(String), level: 'warn', mod: 'sparse', msg: 'one undefined', kept: 0 },
    ]);
  });

  it('follow setLogLevel at once, in loggers created before the change', () => {
    const early = createLogger('early');
    setLogLevel('error');
    early.debug('d1');
    early.info('i1');
    early.warn('w1');
    early.error('e1');
    setLogLevel('debug');
    const late = createLogger('late');
    early.debug('d2');
    late.info('i2');
    setLogLevel('warn');
    early.info('i3');
    late.warn('w3');
    expect(parsed(lines).map((l) => `${String(l['mod'])}:${String(l['msg'])}`)).toEqual(['early:e1', 'early:d2', 'late:i2', 'late:w3']);
    expect(currentLogLevel()).toBe('warn');
  });

  it('stop altogether at silent, and come back after it', () => {
    const log = createLogger('quiet');
    setLogLevel('silent');
    log.error('not written');
    expect(currentLogLevel()).toBe('silent');
    expect(lines).toEqual([]);
    setLogLevel('error');
    log.error('written');
    expect(parsed(lines).map((l) => l['msg'])).toEqual(['written']);
  });

  it('turn an Error in the fields into its name, message and code, nested too, and leave other values alone', () => {
    setLogLevel('info');
    const coded = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    createLogger('errors').error('failed', {
      error: coded,
      err: new TypeError('bad type'),
      cause: { inner: new RangeError('out of range'), list: [new Error('in a list'), 'text'] },
      thrown: 'a string',
      when: new Date(0),
    });
    const [line] = parsed(lines);
    expect(line).toMatchObject({
      error: { name: 'Error', message: 'no such file', code: 'ENOENT' },
      err: { name: 'TypeError', message: 'bad type' },
      cause: { inner: { name: 'RangeError', message: 'out of range' }, list: [{ name: 'Error', message: 'in a list' }, 'text'] },
      thrown: 'a string',
      when: '1970-01-01T00:00:00.000Z',
    });
    expect(Object.keys(line!['err'] as object).sort()).toEqual(['message', 'name']);
  });

  it('keep the fields object the caller passed as it was', () => {
    setLogLevel('info');
    const error = new Error('kept');
    const fields = { error, list: [error] };
    createLogger('untouched').warn('w', fields);
    expect(fields.error).toBe(error);
    expect(fields.list[0]).toBe(error);
  });

  it('are kept at the level in force when setLogLevel gets a name it does not know, with one line saying so', () => {
    setLogLevel('warn');
    setLogLevel('verbose' as never);
    expect(currentLogLevel()).toBe('warn');
    createLogger('after').info('not written');
    expect(parsed(lines)).toEqual([expect.objectContaining({ level: 'warn', mod: 'log', asked: 'verbose', kept: 'warn' })]);
  });
});

describe('the environment, read at load', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('ZONAL_LOG_LEVEL sets the first level, case aside; an unknown name means info', async () => {
    expect((await loadLog({ ZONAL_LOG_LEVEL: 'error' })).currentLogLevel()).toBe('error');
    expect((await loadLog({ ZONAL_LOG_LEVEL: 'Silent' })).currentLogLevel()).toBe('silent');
    expect((await loadLog({ ZONAL_LOG_LEVEL: 'verbose' })).currentLogLevel()).toBe('info');
    expect((await loadLog({ ZONAL_LOG_LEVEL: 'toString' })).currentLogLevel()).toBe('info');
    expect((await loadLog({ ZONAL_LOG_LEVEL: undefined })).currentLogLevel()).toBe('info');
  });

  it('ZONAL_TRACE lets the debug lines of the named modules through, at any level', async () => {
    const log = await loadLog({ ZONAL_LOG_LEVEL: 'error', ZONAL_TRACE: 'xds, other' });
    const lines = captureStderr();
    log.createLogger('xds').debug('traced');
    log.createLogger('xds').info('not traced: info follows the level');
    log.createLogger('server').debug('not traced');
    log.setLogLevel('silent');
    log.createLogger('other').debug('traced at silent too');
    expect(parsed(lines).map((l) => [l['mod'], l['level'], l['msg']])).toEqual([
      ['xds', 'debug', 'traced'],
      ['other', 'debug', 'traced at silent too'],
    ]);
  });

  it('ZONAL_LOG_FORMAT=pretty writes readable lines: time, level, [module] message, then the fields', async () => {
    const log = await loadLog({ ZONAL_LOG_LEVEL: 'info', ZONAL_LOG_FORMAT: 'pretty' });
    const lines = captureStderr();
    log.createLogger('dispatcher').warn('lease expired', { taskId: 't1', error: new Error('gone') });
    expect(lines).toHaveLength(1);
    expect(() => JSON.parse(lines[0]!) as unknown).toThrow();
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: \[dispatcher\] lease expired \{"taskId":"t1","error":\{"name":"Error","message":"gone"\}\}$/);
  });

  it('a terminal on stderr gets readable lines, unless ZONAL_LOG_FORMAT=json', async () => {
    const own = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true, writable: true });
    let pretty: LogModule;
    let json: LogModule;
    try {
      vi.stubEnv('NO_COLOR', '1');
      pretty = await loadLog({ ZONAL_LOG_FORMAT: undefined });
      json = await loadLog({ ZONAL_LOG_FORMAT: 'json' });
    } finally {
      if (own === undefined) delete (process.stderr as { isTTY?: boolean }).isTTY;
      else Object.defineProperty(process.stderr, 'isTTY', own);
    }
    const lines = captureStderr();
    pretty.createLogger('cli').warn('to a terminal');
    json.createLogger('cli').warn('to a terminal, as JSON');
    expect(lines[0]).toMatch(/WARN: \[cli\] to a terminal$/);
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'warn', mod: 'cli', msg: 'to a terminal, as JSON' });
  });
});

describe('a process that logs and then exits at once', () => {
  const built = path.resolve(__dirname, '..', '..', 'dist', 'log.js');
  const script = `const { createLogger } = require(${JSON.stringify(built)}); createLogger('cli').error('last words', { code: 3 }); process.exit(3);`;

  function run(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
    expect(existsSync(built), 'dist/log.js: run npm run build first').toBe(true);
    const result = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ZONAL_LOG_LEVEL: 'info', ...env }, encoding: 'utf8' });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it('keeps its JSON line, on stderr, with stdout left to the events', () => {
    const { status, stdout, stderr } = run({ ZONAL_LOG_FORMAT: 'json' });
    expect(status).toBe(3);
    expect(stdout).toBe('');
    expect(stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown)).toEqual([
      { t: expect.any(String), level: 'error', mod: 'cli', msg: 'last words', code: 3 },
    ]);
  });

  it('keeps its readable line', () => {
    const { status, stderr } = run({ ZONAL_LOG_FORMAT: 'pretty' });
    expect(status).toBe(3);
    expect(stderr).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] ERROR: \[cli\] last words \{"code":3\}\n$/);
  });
});
