import { afterEach, describe, expect, it, vi } from 'vitest';
import { RuntimeConfig } from '../../../src/config/runtime-config';
import { DEFAULT_BASELINE } from '../../../src/config/runtime-schema';

/** The config log lines written to stderr while `run` runs, parsed. */
function captureLog(): { lines: Record<string, unknown>[]; restore: () => void } {
  const lines: Record<string, unknown>[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    for (const line of text.split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
    return true;
  });
  return { lines, restore: () => spy.mockRestore() };
}

describe('the refusal log of RuntimeConfig', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('logs 20 refusals per 10 s, then says how many it left out when the window ends, with no later refusal', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const log = captureLog();
    const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE });
    try {
      for (let i = 0; i < 25; i++) config.offer(`version: ${i + 1}\nnot_a_key: ${i}\n`, 'test');
      // The same refused text again is not logged again (and not parsed again).
      config.offer('version: 1\nnot_a_key: 0\n', 'test');
      const refusals = (): number => log.lines.filter((l) => String(l['msg']).startsWith('runtime config update refused')).length;
      expect(refusals()).toBe(20);
      expect(config.resultCounts.invalid).toBe(26);
      vi.advanceTimersByTime(10_000);
      expect(log.lines.filter((l) => String(l['msg']).startsWith('runtime config refusals not logged'))).toEqual([
        expect.objectContaining({ suppressed: 5, mod: 'config' }),
      ]);
    } finally {
      await config.close();
      log.restore();
    }
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close() reports the count held back so far and leaves no timer', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const log = captureLog();
    const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE });
    for (let i = 0; i < 22; i++) config.offer(`version: ${i + 1}\nnot_a_key: ${i}\n`, 'test');
    expect(vi.getTimerCount()).toBe(1);
    await config.close();
    log.restore();
    expect(vi.getTimerCount()).toBe(0);
    expect(log.lines.filter((l) => String(l['msg']).startsWith('runtime config refusals not logged'))).toEqual([expect.objectContaining({ suppressed: 2 })]);
  });
});
