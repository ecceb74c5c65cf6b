/**
 * One soak run, phase by phase:
 *
 * - STARTING    the store (soak-store.ts), the control plane, the dispatchers behind their proxies,
 *               the workers, then the producers (topology.ts); the first runtime config document
 * - CHAOS       producers submit at their rate while chaos.ts injects faults, for --duration-ms
 * - RESTORING   faults stop and are undone; every process and the database are up again, no proxy
 *               fault is left, the config file holds the baseline again under a new version
 * - DRAINING    producers stop submitting and finish the submits in flight; then the soak waits
 *               until the store holds every acknowledged task terminal (or the time is up)
 * - VERIFYING   workers stop; the store is read; GetTask through the SDK for a sample; the
 *               dispatchers' config versions; then the verdict (verdict.ts)
 * - TEARDOWN    every process stopped (clients, dispatchers, control plane), proxies closed, the
 *               private cluster deleted or the schema dropped, the data dir removed (the logs are kept
 *               when the run fails), the orphan guard disarmed. Also on failure and on SIGINT.
 *
 * Time: the whole run stays within --duration-ms + OVERRUN_BUDGET_MS of its start; the drain
 * gets what is left of that once TEARDOWN_RESERVE_MS is set aside.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ProducerClient as ProducerClientType } from '../../src/client/producer-client';
import { getJson } from './admin';
import { Chaos } from './chaos';
import { ConfigChurn } from './config-churn';
import { OrphanGuard } from './guard';
import { Ledger } from './ledger';
import { OVERRUN_BUDGET_MS, type SoakOptions } from './options';
import { killAllChildren, type SoakProcess } from './processes';
import { Random } from './random';
import type { SoakReport } from './report';
import { openSoakStore, type SoakStore } from './soak-store';
import { storeReader, type StoredTask } from './store-reader';
import { ClientSlot, DispatcherSlot, startControlPlane, writeBootstrap, ZONES, type RunContext } from './topology';
import { judge, type Verdict } from './verdict';

/**
 * Lifecycle of a run:
 * - STARTING: processes and the store are being started.
 * - CHAOS: load and faults.
 * - RESTORING: faults stopped and undone.
 * - DRAINING: producers finish; waiting for every acknowledged task to be terminal.
 * - VERIFYING: reading the store and the dispatchers, judging.
 * - TEARDOWN: stopping and deleting everything.
 * - DONE: the report can be written.
 */
export type RunPhase = 'STARTING' | 'CHAOS' | 'RESTORING' | 'DRAINING' | 'VERIFYING' | 'TEARDOWN' | 'DONE';

/** Time kept back from the drain for the verdict and the teardown. */
const TEARDOWN_RESERVE_MS = 30_000;
const PROGRESS_EVERY_MS = 15_000;
const CONFIG_WATCH_EVERY_MS = 5_000;
/** Acknowledged tasks whose state is also asked through the SDK's GetTask. */
const SDK_SAMPLE = 300;
/** Submits a producer may have in flight at once (a store outage queues no more than this). */
const PRODUCER_MAX_IN_FLIGHT = 200;
const PRODUCER_FINISH_MS = 20_000;

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });

export class SoakRun {
  phase: RunPhase = 'STARTING';
  readonly startedAt = new Date();
  private readonly t0 = Date.now();
  private readonly deadline: number;
  private readonly marks: Partial<Record<RunPhase, number>> = {};
  private readonly random: Random;
  private readonly ledger = new Ledger();
  private readonly abort = new AbortController();
  private readonly runDir: string;
  private readonly logDir: string;
  private readonly dataDir: string;
  private readonly runId: string;
  private guard: OrphanGuard | undefined;
  private store: SoakStore | undefined;
  private churn: ConfigChurn | undefined;
  private controlPlane: SoakProcess | undefined;
  private dispatchers: DispatcherSlot[] = [];
  private workers: ClientSlot[] = [];
  private producers: ClientSlot[] = [];
  private chaos: Chaos | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly configViolations: string[] = [];
  private configNotConverged: string[] = [];
  private readonly finalConfig = new Map<string, number>();
  private verdict: Verdict | undefined;
  private readonly errors: string[] = [];
  private readonly notes: string[] = [];
  private tornDown: Promise<void> | undefined;
  interrupted = false;

  constructor(private readonly options: SoakOptions) {
    this.random = new Random(options.seed);
    this.deadline = this.t0 + options.durationMs + OVERRUN_BUDGET_MS;
    this.runDir = mkdtempSync(path.join(os.tmpdir(), 'zonal-soak-'));
    this.logDir = path.join(this.runDir, 'logs');
    this.dataDir = path.join(this.runDir, 'data');
    mkdirSync(this.logDir);
    mkdirSync(this.dataDir);
    this.runId = `soak${this.t0.toString(36)}`;
  }

  private enter(phase: RunPhase): void {
    this.marks[phase] = Date.now();
    this.phase = phase;
    this.say(`${phase.toLowerCase()}`);
  }

  private say(message: string): void {
    process.stderr.write(`[soak +${((Date.now() - this.t0) / 1000).toFixed(0)}s] ${message}\n`);
  }

  private note(message: string): void {
    this.notes.push(message);
    this.say(message);
  }

  private check(): void {
    if (this.abort.signal.aborted) throw new Interrupted();
  }

  /** SIGINT: stop where we are and tear down. */
  interrupt(): void {
    if (this.interrupted) return;
    this.interrupted = true;
    this.say('interrupted: stopping every process');
    this.abort.abort();
  }

  /** Runs every phase up to the verdict; the caller runs teardown() whatever happens. */
  async execute(): Promise<void> {
    try {
      await this.startAll();
      await this.runChaos();
      await this.restore();
      await this.drain();
      await this.verify();
    } catch (err) {
      if (!(err instanceof Interrupted)) this.errors.push(String(err instanceof Error ? (err.stack ?? err.message) : err));
    }
  }

  private ctx(): RunContext {
    return { options: this.options, logDir: this.logDir, dataDir: this.dataDir, configFile: path.join(this.dataDir, 'runtime.yaml'), store: this.store!, guard: this.guard!, runId: this.runId };
  }

  private async startAll(): Promise<void> {
    this.enter('STARTING');
    this.guard = OrphanGuard.start();
    this.guard.dir(this.dataDir);
    this.store = await openSoakStore(this.options, this.guard);
    this.say(`store: ${this.store.kind}: ${this.store.why}`);
    this.check();
    const ctx = this.ctx();
    this.churn = new ConfigChurn(ctx.configFile, this.random);
    this.churn.writeBaseline();
    const cp = await startControlPlane(ctx);
    this.controlPlane = cp.process;
    this.check();
    // One dispatcher per zone on PostgreSQL; one on SQLite (one file, one dispatcher).
    const zones = this.store.kind === 'postgres' ? [...ZONES] : ['a'];
    this.dispatchers = await Promise.all(zones.map((z) => DispatcherSlot.create(ctx, z, cp.address)));
    // The first creates and migrates the schema; the others start against it.
    await this.dispatchers[0]!.start();
    await Promise.all(this.dispatchers.slice(1).map((d) => d.start()));
    this.say(`dispatchers up: ${this.dispatchers.map((d) => `${d.id} ${d.grpcAddress} behind ${d.proxy.address}`).join(', ')}`);
    this.check();
    const workerNames = ZONES.flatMap((z) => Array.from({ length: this.options.workersPerZone }, (_, i) => ({ name: `w-${z}${i + 1}`, zone: z })));
    const producerNames = ZONES.map((z) => ({ name: `p-${z}`, zone: z }));
    const files = new Map<string, string>();
    await Promise.all([...workerNames, ...producerNames].map(async (c) => files.set(c.name, await writeBootstrap(ctx, cp.address, c.name, c.zone))));
    this.workers = workerNames.map(
      (c) =>
        new ClientSlot(ctx, 'worker', c.name, c.zone, files.get(c.name)!, (id) => ({ sdk: this.options.sdk, workerId: id, zone: c.zone, slots: this.options.slots }), (slot, e) =>
          this.ledger.onWorkerEvent(slot.incarnationId, e),
        ),
    );
    this.producers = producerNames.map(
      (c) =>
        new ClientSlot(
          ctx,
          'producer',
          c.name,
          c.zone,
          files.get(c.name)!,
          () => ({
            sdk: this.options.sdk,
            name: c.name,
            zone: c.zone,
            runId: this.runId,
            ratePerSec: this.options.ratePerSec,
            maxInFlight: PRODUCER_MAX_IN_FLIGHT,
            seed: this.random.fork(),
            callTimeoutMs: 3_000,
            finishMs: PRODUCER_FINISH_MS,
          }),
          (slot, e) => this.ledger.onProducerEvent(slot.name, e),
        ),
    );
    // All at once: each loads grpc-js-xds (about 1 s of CPU), so together they take what the cores allow. Producers wait for "go".
    await Promise.all([...this.workers, ...this.producers].map((c) => c.start()));
    const took = (slots: ClientSlot[]): string => slots.map((c) => (c.lastStartMs / 1000).toFixed(1)).join(', ');
    this.say(`${this.workers.length} workers ready (${took(this.workers)} s), ${this.producers.length} producers ready (${took(this.producers)} s)`);
    this.check();
  }

  private async runChaos(): Promise<void> {
    this.enter('CHAOS');
    const store = this.store!;
    this.chaos = new Chaos({
      random: this.random,
      dispatchers: this.dispatchers,
      workers: this.workers,
      churn: this.churn!,
      postgres: store.kind === 'postgres' && store.server !== undefined ? store : undefined,
      durationMs: this.options.durationMs,
      note: (m) => this.note(m),
    });
    for (const p of this.producers) p.process!.send('go');
    this.chaos.start();
    this.timers.push(setInterval(() => this.progress(), PROGRESS_EVERY_MS));
    this.timers.push(setInterval(() => void this.watchConfig(), CONFIG_WATCH_EVERY_MS));
    await sleep(this.options.durationMs, this.abort.signal);
    this.check();
  }

  private progress(): void {
    const counts = Object.entries(this.chaos?.counts ?? {})
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    const up = this.dispatchers.map((d) => `${d.id}${d.up ? '' : ' DOWN'}`).join(' ');
    this.say(`acknowledged ${this.ledger.acks.size}, executions ${this.ledger.executionCount} | ${up}${this.chaos?.postgresDown ? ' | postgres DOWN' : ''} | faults: ${counts || 'none yet'}`);
  }

  /** Every few seconds: the version each dispatcher has in force must be one of a valid document. */
  private async watchConfig(): Promise<void> {
    const churn = this.churn!;
    await Promise.all(
      this.dispatchers
        .filter((d) => d.up)
        .map(async (d) => {
          try {
            const version = Number((await getJson(d.adminAddress, '/config')).body['version']);
            if (!churn.validVersions.has(version)) this.configViolations.push(`${d.id} had version ${version} in force, which only an invalid document carried`);
          } catch {
            // The dispatcher is down, blackholed from us (it is not: admin is direct) or busy; the next round asks again.
          }
        }),
    );
  }

  private async restore(): Promise<void> {
    this.enter('RESTORING');
    await this.chaos!.stop();
    await this.chaos!.restoreAll();
    const final = this.churn!.writeBaseline();
    this.say(`faults stopped and undone; config back to the baseline as version ${final.version}`);
    this.check();
  }

  private async drain(): Promise<void> {
    this.enter('DRAINING');
    await Promise.all(
      this.producers.map(async (p) => {
        p.process!.send('stop');
        try {
          await p.process!.waitFor('done', PRODUCER_FINISH_MS + 10_000);
        } catch (err) {
          this.errors.push(`producer ${p.name} did not finish: ${String(err instanceof Error ? err.message : err)}`);
        }
      }),
    );
    this.check();
    const reader = storeReader(this.store!, this.dispatchers[0]!.storeDir);
    const drainBy = this.deadline - TEARDOWN_RESERVE_MS;
    let waiting = this.ledger.acks.size;
    for (;;) {
      try {
        const unfinished = await reader.unfinished();
        waiting = 0;
        for (const id of unfinished) if (this.ledger.acks.has(id)) waiting += 1;
        if (waiting === 0) break;
      } catch (err) {
        this.say(`reading the store failed: ${String(err)}`);
      }
      if (Date.now() >= drainBy) {
        this.note(`drain: ${waiting} acknowledged tasks still not terminal after ${((Date.now() - this.marks.DRAINING!) / 1000).toFixed(0)} s (the run's time is up)`);
        break;
      }
      await sleep(1_000, this.abort.signal);
      this.check();
    }
    this.say(`drained: ${waiting} acknowledged tasks not terminal`);
    await this.awaitConfigConverged(Math.min(15_000, Math.max(1_000, drainBy - Date.now())));
  }

  private async awaitConfigConverged(timeoutMs: number): Promise<void> {
    const target = this.churn!.lastValidVersion;
    const until = Date.now() + timeoutMs;
    for (;;) {
      this.finalConfig.clear();
      await Promise.all(
        this.dispatchers.map(async (d) => {
          try {
            this.finalConfig.set(d.id, Number((await getJson(d.adminAddress, '/config')).body['version']));
          } catch {
            // Asked again below.
          }
        }),
      );
      const behind = this.dispatchers.filter((d) => this.finalConfig.get(d.id) !== target);
      if (behind.length === 0 || Date.now() >= until) {
        this.configNotConverged = behind.map((d) => `${d.id} has version ${this.finalConfig.get(d.id) ?? 'unknown'} in force, the last document is ${target}`);
        return;
      }
      await sleep(500, this.abort.signal);
      this.check();
    }
  }

  private async verify(): Promise<void> {
    this.enter('VERIFYING');
    // Workers first: nothing changes a terminal task, and nothing moves the others any more.
    await Promise.all(this.workers.map((w) => w.process?.stop(10_000)));
    const reader = storeReader(this.store!, this.dispatchers[0]!.storeDir);
    const stored = await reader.readAll();
    const duplicateKeys = await reader.duplicateKeys();
    const sdkStates = await this.sdkStates(stored);
    const chaos = this.chaos!;
    const store = this.store!;
    this.verdict = judge({
      ledger: this.ledger,
      stored,
      duplicateKeys,
      sdkStates,
      configViolations: this.configViolations,
      configNotConverged: this.configNotConverged,
      faultFailures: chaos.failures.map((f) => `${f.kind} of ${f.target}: ${f.error}`),
      postgresRestartRequired: store.kind === 'postgres' && store.server !== undefined,
      postgresRestarts: chaos.counts['postgres-restart'],
      producersExpected: this.producers.map((p) => p.name),
    });
  }

  /** GetTask through the SDK (directly to a dispatcher, no proxy) for a sample of the terminal acknowledged tasks. */
  private async sdkStates(stored: Map<string, StoredTask>): Promise<Map<string, string>> {
    const { ProducerClient } = require(this.options.sdk) as { ProducerClient: typeof ProducerClientType };
    const target = this.dispatchers.find((d) => d.up) ?? this.dispatchers[0]!;
    const client = new ProducerClient({ target: target.grpcAddress, call: { callTimeoutMs: 5_000, maxAttempts: 3 } });
    const terminal = [...this.ledger.acks.keys()].filter((id) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(stored.get(id)?.state ?? ''));
    const sample = new Set<string>();
    while (sample.size < Math.min(SDK_SAMPLE, terminal.length)) sample.add(this.random.pick(terminal));
    const states = new Map<string, string>();
    const queue = [...sample];
    try {
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
            try {
              states.set(id, (await client.get(id)).state);
            } catch (err) {
              const e = err as { reason?: string };
              states.set(id, `error ${e.reason ?? String(err)}`);
            }
          }
        }),
      );
    } finally {
      client.close();
    }
    return states;
  }

  /** Stops and deletes everything this run started; idempotent, safe at any phase. Each step is bounded, so a stuck one cannot hold the run. */
  teardown(): Promise<void> {
    this.tornDown ??= (async () => {
      this.enter('TEARDOWN');
      for (const t of this.timers) clearInterval(t);
      const step = async (what: string, ms: number, fn: () => Promise<unknown>): Promise<void> => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
        const outcome = await Promise.race([fn().then(() => 'done' as const, (err: unknown) => `failed: ${String(err instanceof Error ? err.message : err)}`), timedOut]);
        clearTimeout(timer);
        if (outcome !== 'done') this.note(`teardown: ${what} ${outcome === 'timeout' ? `did not finish within ${ms} ms; going on` : outcome}`);
      };
      const stop = (p: SoakProcess | undefined, graceMs: number): Promise<unknown> => p?.stop(graceMs) ?? Promise.resolve();
      // No process is started again from here, whatever a fault in flight was about to undo: a start
      // in progress fails once its process is stopped below, and the fault's loop ends.
      for (const slot of [...this.dispatchers, ...this.workers, ...this.producers]) slot.retired = true;
      this.chaos?.abandon();
      await step('stopping producers and workers', 10_000, () => Promise.all([...this.producers, ...this.workers].map((c) => stop(c.process, 5_000))));
      await step('stopping the dispatchers', 15_000, () => Promise.all(this.dispatchers.map((d) => d.terminate(10_000))));
      await step('ending the faults in flight', 10_000, async () => this.chaos?.stop());
      await step('stopping the control plane', 8_000, () => stop(this.controlPlane, 5_000));
      killAllChildren();
      await step('closing the fault proxies', 3_000, () => Promise.all(this.dispatchers.map((d) => d.proxy.close())));
      const store = this.store;
      if (store?.kind === 'postgres') {
        await step(store.cluster === 'private' ? 'deleting the PostgreSQL cluster' : `dropping schema ${store.schema}`, 30_000, () => store.dispose());
      }
      rmSync(this.dataDir, { recursive: true, force: true });
      if (this.passed()) rmSync(this.runDir, { recursive: true, force: true });
      else this.notes.push(`the processes' logs are kept in ${this.logDir}`);
      await this.guard?.disarm();
      this.enter('DONE');
    })();
    return this.tornDown;
  }

  passed(): boolean {
    return !this.interrupted && this.errors.length === 0 && this.verdict !== undefined && this.verdict.lost.count === 0 && this.verdict.breaks.length === 0;
  }

  report(): SoakReport {
    const m = this.marks;
    const at = (p: RunPhase): number => m[p] ?? Date.now();
    const span = (from: RunPhase, to: RunPhase): number => (m[from] === undefined ? 0 : Math.max(0, at(to) - m[from]!));
    const store = this.store;
    const churn = this.churn;
    const chaos = this.chaos;
    return {
      result: this.interrupted ? 'INTERRUPTED' : this.passed() ? 'PASS' : 'FAIL',
      startedAt: this.startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      seed: this.options.seed,
      command: `npm run soak -- --duration-ms ${this.options.durationMs} --seed ${this.options.seed} --rate ${this.options.ratePerSec} --workers-per-zone ${this.options.workersPerZone} --slots ${this.options.slots}`,
      node: process.version,
      cpus: os.cpus().length,
      settings: { durationMs: this.options.durationMs, ratePerSecPerProducer: this.options.ratePerSec, workersPerZone: this.options.workersPerZone, slotsPerWorker: this.options.slots },
      store: store === undefined ? { kind: 'none', why: 'not opened' } : { kind: store.kind, ...(store.kind === 'postgres' ? { cluster: store.cluster } : {}), why: store.why },
      topology: { dispatchers: this.dispatchers.map((d) => d.id), producers: this.producers.map((p) => p.name), workers: this.workers.map((w) => w.name) },
      durationsMs: {
        startup: span('STARTING', 'CHAOS'),
        chaos: span('CHAOS', 'RESTORING'),
        restore: span('RESTORING', 'DRAINING'),
        drain: span('DRAINING', 'VERIFYING'),
        verify: span('VERIFYING', 'TEARDOWN'),
        teardown: span('TEARDOWN', 'DONE'),
        total: Date.now() - this.t0,
        budget: this.options.durationMs + OVERRUN_BUDGET_MS,
      },
      faults: { counts: chaos?.counts ?? ({} as SoakReport['faults']['counts']), disabled: chaos?.disabled ?? {}, records: chaos?.records ?? [], failures: chaos?.failures ?? [] },
      dispatchers: this.dispatchers.map((d) => ({ id: d.id, starts: d.starts, failedStarts: d.startFailures, configVersion: this.finalConfig.get(d.id) ?? null })),
      config: {
        documents: churn?.written.length ?? 0,
        valid: churn?.written.filter((d) => d.valid).length ?? 0,
        invalid: churn?.written.filter((d) => !d.valid).length ?? 0,
        finalVersion: churn?.lastValidVersion ?? 0,
      },
      producers: Object.fromEntries(this.ledger.producerReports),
      workers: { incarnations: this.workers.reduce((n, w) => n + w.incarnation, 0), welcomes: this.ledger.workerConnects, stopped: Object.fromEntries(this.ledger.workerReports) },
      verdict: this.verdict,
      errors: this.errors,
      // A child's own error (a worker that was not welcomed in time after a restart): what it cost is judged above.
      notes: [...this.notes, ...this.ledger.childErrors.map((e) => `${e.child} reported: ${e.message.split('\n')[0]}`)],
    };
  }
}
