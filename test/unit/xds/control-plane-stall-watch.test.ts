import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ControlPlane } from '../../../src/xds/control-plane';

/**
 * The control plane watches for its own stalls (a SIGSTOP, a VM pause) so
 * that time does not count as dispatchers' silence. The watch ticks 10 times
 * a second; it runs only while some registration is judged on heartbeats.
 */
describe('the control plane stall watch', () => {
  let stderr: string[];
  let cp: ControlPlane;

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
    stderr = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    cp = new ControlPlane({ healthWindowMs: 1_000, warmUpMs: 0 });
    cp.attach(new grpc.Server());
  });

  afterEach(() => {
    cp.close();
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  const stalls = (): string[] => stderr.filter((l) => l.includes('did not run for a while'));
  const register = (id: string): void => cp.heartbeat({ id, ip: '127.0.0.1', port: 7001, zone: 'a', region: 'r1', draining: false });

  it('sets no timer at all while nothing is registered', () => {
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a first registration after a long idle time reports no stall; a real stall while registrations are watched is seen', () => {
    vi.advanceTimersByTime(60_000);
    register('d1');
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    for (let i = 0; i < 5; i += 1) {
      vi.advanceTimersByTime(400);
      register('d1');
    }
    expect(stalls()).toEqual([]);
    // The process does not run for 5 s (the clock jumps, no timer fires), then its timers catch up.
    vi.setSystemTime(Date.now() + 5_000);
    vi.advanceTimersByTime(100);
    expect(stalls()).toHaveLength(1);
  });

  it('stops watching once the last registration is removed, and a later one starts afresh', () => {
    register('d1');
    // No more heartbeats: the entry goes unhealthy after the health window, then is removed (default 60 s).
    vi.advanceTimersByTime(70_000);
    expect(cp.status()['endpoints']).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(30_000);
    register('d2');
    vi.advanceTimersByTime(300);
    expect(stalls()).toEqual([]);
  });
});
