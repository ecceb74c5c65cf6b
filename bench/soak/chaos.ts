/**
 * The faults, each kind its own Poisson process (exponential waits with the
 * kind's mean, from the seeded Random), injected into the real processes
 * until `stop()`:
 *
 *   worker-kill         SIGKILL of a worker process; a new one starts 0.5-3 s later
 *   dispatcher-kill     kill -9 of a dispatcher; started again at its address 1-5 s later
 *   dispatcher-restart  SIGTERM of a dispatcher (drain), started again at once
 *   blackhole           a dispatcher's proxy drops every byte for 1-6 s; then every connection through it is reset
 *                       (a blackholed HTTP/2 stream has lost frames and cannot go on)
 *   latency             a dispatcher's proxy adds 10-150 ms each way (+/- up to a third) for 5-15 s
 *   reset               every connection through a dispatcher's proxy gets an RST
 *   config-valid        the runtime config file rewritten with valid changes (config-churn.ts)
 *   config-invalid      ... with a document the dispatchers must refuse
 *   postgres-restart    the private cluster stopped (fast or immediate) for 2-8 s and started again;
 *                       the first one at 30-60 % of the run, so every run has one
 *
 * Rules: one kind has one fault in flight at a time; at most one dispatcher
 * is down at a time (kill and restart share it); a proxy carries one network
 * fault at a time. `stop()` cuts every fault's wait short and waits for each
 * to undo itself (lift the proxy fault, start the process or the database
 * again); `restoreAll()` then makes sure everything is back.
 */
import { NO_FAULTS } from '../../src/testing/fault-proxy';
import type { ConfigChurn } from './config-churn';
import type { Random } from './random';
import type { PostgresStore } from './soak-store';
import type { ClientSlot, DispatcherSlot } from './topology';
import { sleep } from './sleep';

export const FAULT_KINDS = ['worker-kill', 'dispatcher-kill', 'dispatcher-restart', 'blackhole', 'latency', 'reset', 'config-valid', 'config-invalid', 'postgres-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultRecord {
  kind: FaultKind;
  /** ms from the start of the chaos phase. */
  atMs: number;
  target: string;
  detail: string;
  /** How long the fault lasted until it was undone (the restart included). */
  durationMs: number;
}

export interface ChaosContext {
  random: Random;
  dispatchers: DispatcherSlot[];
  workers: ClientSlot[];
  churn: ConfigChurn;
  /** The private cluster, when the store is one (else no postgres-restart). */
  postgres: PostgresStore | undefined;
  durationMs: number;
  note(message: string): void;
}

/** Mean wait between two faults of a kind (ms). */
const MEAN_MS: Record<Exclude<FaultKind, 'config-valid' | 'config-invalid'> | 'config', number> = {
  'worker-kill': 8_000,
  'dispatcher-kill': 25_000,
  'dispatcher-restart': 75_000,
  blackhole: 20_000,
  latency: 15_000,
  reset: 30_000,
  config: 12_000,
  'postgres-restart': 120_000,
};
/** A config file change applies once the file stayed unchanged 1 s: writes are at least this far apart. */
const CONFIG_MIN_GAP_MS = 2_500;
const INVALID_CONFIG_SHARE = 0.3;

type Outcome = { kind: FaultKind; target: string; detail: string } | undefined;

export class Chaos {
  readonly counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  readonly records: FaultRecord[] = [];
  /** Faults that could not be undone (a process that did not come back): invariant breaks. */
  readonly failures: { kind: string; target: string; error: string }[] = [];
  /** Why a kind never ran in this topology. */
  readonly disabled: Partial<Record<FaultKind, string>> = {};
  private readonly abort = new AbortController();
  private loops: Promise<void>[] = [];
  private startMs = 0;
  private dispatcherDown = false;
  private readonly busyProxies = new Set<DispatcherSlot>();
  postgresDown = false;

  constructor(private readonly ctx: ChaosContext) {
    if (ctx.postgres === undefined) this.disabled['postgres-restart'] = 'the store is not a private PostgreSQL cluster of this run';
  }

  start(): void {
    this.startMs = Date.now();
    const signal = this.abort.signal;
    const r = this.ctx.random;
    const every = (mean: number, run: () => Promise<Outcome>, firstMs?: number): Promise<void> =>
      (async () => {
        let wait = firstMs ?? r.exponential(mean, 500);
        while (!signal.aborted) {
          await sleep(wait, signal);
          if (signal.aborted) break;
          await this.inject(run);
          wait = r.exponential(mean, 500);
        }
      })();
    this.loops = [
      every(MEAN_MS['worker-kill'], () => this.workerKill()),
      every(MEAN_MS['dispatcher-kill'], () => this.dispatcherKill()),
      every(MEAN_MS['dispatcher-restart'], () => this.dispatcherRestart()),
      every(MEAN_MS.blackhole, () => this.blackhole()),
      every(MEAN_MS.latency, () => this.latency()),
      every(MEAN_MS.reset, () => this.reset()),
      every(MEAN_MS.config, () => this.config()),
    ];
    if (this.ctx.postgres !== undefined) {
      // The first restart lands in the middle of the run, so even a short run has one.
      const firstMs = this.ctx.durationMs * (0.3 + 0.3 * r.next());
      this.loops.push(every(MEAN_MS['postgres-restart'], () => this.postgresRestart(), firstMs));
    }
  }

  /** Stops injecting; resolves once every fault in flight has been undone. */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
  }

  /** Stops injecting at once, without waiting for the faults in flight (the teardown, which stops their processes). */
  abandon(): void {
    this.abort.abort();
  }

  /** After stop(): no proxy fault, every dispatcher and worker running, the database up. */
  async restoreAll(): Promise<void> {
    for (const d of this.ctx.dispatchers) d.proxy.setFaults(NO_FAULTS);
    if (this.ctx.postgres?.server !== undefined && this.postgresDown) {
      await this.ctx.postgres.server.start();
      this.postgresDown = false;
    }
    await Promise.all([
      ...this.ctx.dispatchers.filter((d) => !d.up).map((d) => this.undo('restore', d.id, () => d.start())),
      ...this.ctx.workers.filter((w) => !w.running).map((w) => this.undo('restore', w.name, () => w.start())),
    ]);
  }

  private async inject(run: () => Promise<Outcome>): Promise<void> {
    const atMs = Date.now() - this.startMs;
    try {
      const outcome = await run();
      if (outcome === undefined) return;
      this.counts[outcome.kind] += 1;
      this.records.push({ ...outcome, atMs, durationMs: Date.now() - this.startMs - atMs });
    } catch (err) {
      // run() records what it could not undo; anything else is a fault of the soak itself.
      this.failures.push({ kind: 'chaos', target: '', error: String(err instanceof Error ? err.stack : err) });
    }
  }

  /** Runs an undo step (a restart); a failure is recorded, not thrown, so the other faults go on. */
  private async undo(kind: string, target: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      this.failures.push({ kind, target, error: String(err instanceof Error ? err.message : err) });
      this.ctx.note(`could not undo ${kind} of ${target}: ${String(err instanceof Error ? err.message : err)}`);
    }
  }

  private async workerKill(): Promise<Outcome> {
    const candidates = this.ctx.workers.filter((w) => w.running);
    if (candidates.length === 0) return undefined;
    const w = this.ctx.random.pick(candidates);
    const id = w.incarnationId;
    await w.kill();
    const downMs = this.ctx.random.int(500, 3_000);
    await sleep(downMs, this.abort.signal);
    await this.undo('worker-kill', w.name, () => w.start());
    return { kind: 'worker-kill', target: id, detail: `down ${downMs} ms` };
  }

  private async dispatcherKill(): Promise<Outcome> {
    const d = this.pickDispatcher();
    if (d === undefined) return undefined;
    this.dispatcherDown = true;
    try {
      await d.kill();
      const downMs = this.ctx.random.int(1_000, 5_000);
      await sleep(downMs, this.abort.signal);
      await this.undo('dispatcher-kill', d.id, () => d.start());
      return { kind: 'dispatcher-kill', target: d.id, detail: `kill -9, down ${downMs} ms` };
    } finally {
      this.dispatcherDown = false;
    }
  }

  private async dispatcherRestart(): Promise<Outcome> {
    const d = this.pickDispatcher();
    if (d === undefined) return undefined;
    this.dispatcherDown = true;
    try {
      const t0 = Date.now();
      await d.terminate();
      const drainedMs = Date.now() - t0;
      await this.undo('dispatcher-restart', d.id, () => d.start());
      return { kind: 'dispatcher-restart', target: d.id, detail: `SIGTERM, drained and exited in ${drainedMs} ms` };
    } finally {
      this.dispatcherDown = false;
    }
  }

  /** A running dispatcher, when none is down. */
  private pickDispatcher(): DispatcherSlot | undefined {
    if (this.dispatcherDown || this.ctx.dispatchers.some((d) => !d.up)) return undefined;
    return this.ctx.random.pick(this.ctx.dispatchers);
  }

  private pickProxy(): DispatcherSlot | undefined {
    const free = this.ctx.dispatchers.filter((d) => !this.busyProxies.has(d));
    return free.length === 0 ? undefined : this.ctx.random.pick(free);
  }

  private async blackhole(): Promise<Outcome> {
    const d = this.pickProxy();
    if (d === undefined) return undefined;
    this.busyProxies.add(d);
    const ms = this.ctx.random.int(1_000, 6_000);
    try {
      d.proxy.setFaults({ blackhole: true });
      await sleep(ms, this.abort.signal);
    } finally {
      d.proxy.setFaults({ blackhole: false });
      d.proxy.resetAll();
      this.busyProxies.delete(d);
    }
    return { kind: 'blackhole', target: d.id, detail: `${ms} ms, then every connection reset` };
  }

  private async latency(): Promise<Outcome> {
    const d = this.pickProxy();
    if (d === undefined) return undefined;
    this.busyProxies.add(d);
    const latencyMs = this.ctx.random.int(10, 150);
    const jitterMs = this.ctx.random.int(0, Math.floor(latencyMs / 3));
    const ms = this.ctx.random.int(5_000, 15_000);
    try {
      d.proxy.setFaults({ latencyMs, jitterMs });
      await sleep(ms, this.abort.signal);
    } finally {
      d.proxy.setFaults({ latencyMs: 0, jitterMs: 0 });
      this.busyProxies.delete(d);
    }
    return { kind: 'latency', target: d.id, detail: `${latencyMs} +/- ${jitterMs} ms each way for ${ms} ms` };
  }

  private async reset(): Promise<Outcome> {
    const d = this.ctx.random.pick(this.ctx.dispatchers);
    const open = d.proxy.stats().open;
    d.proxy.resetAll();
    return { kind: 'reset', target: d.id, detail: `${open} connections reset` };
  }

  private lastConfigMs = 0;

  private async config(): Promise<Outcome> {
    const gap = this.lastConfigMs + CONFIG_MIN_GAP_MS - Date.now();
    if (gap > 0) await sleep(gap, this.abort.signal);
    if (this.abort.signal.aborted) return undefined;
    this.lastConfigMs = Date.now();
    const doc = this.ctx.random.chance(INVALID_CONFIG_SHARE) ? this.ctx.churn.writeInvalid() : this.ctx.churn.writeValidChange();
    return { kind: doc.valid ? 'config-valid' : 'config-invalid', target: `version ${doc.version}`, detail: doc.what };
  }

  private async postgresRestart(): Promise<Outcome> {
    const server = this.ctx.postgres?.server;
    if (server === undefined) return undefined;
    const mode = this.ctx.random.chance(0.5) ? 'fast' : 'immediate';
    const downMs = this.ctx.random.int(2_000, 8_000);
    this.postgresDown = true;
    await server.stop(mode);
    await sleep(downMs, this.abort.signal);
    await this.undo('postgres-restart', 'postgres', async () => {
      for (let tries = 1; ; tries++) {
        try {
          await server.start();
          this.postgresDown = false;
          return;
        } catch (err) {
          if (tries >= 3) throw err;
        }
      }
    });
    return { kind: 'postgres-restart', target: 'postgres', detail: `pg_ctl stop -m ${mode}, down ${downMs} ms` };
  }
}
