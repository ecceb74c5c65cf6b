/**
 * The soak's processes, as users deploy them:
 *
 *   zonal xds                        the control plane (127.0.0.1, a free port)
 *   zonal serve  x 3 (PostgreSQL)    one dispatcher per zone a, b, c, registered with it (--xds-address off
 *             or x 1 (SQLite)        --register-with), each on a fixed gRPC port behind its own FaultProxy
 *                                    (in the soak's process), which is the address it advertises: every
 *                                    client reaches it through the proxy, so a blackhole or latency on the
 *                                    proxy is a fault of that dispatcher's network
 *   producer.js  x 3                 one per zone, xds:///zonal with that zone's bootstrap (zonal bootstrap)
 *   worker.js    x 3 x N             N per zone, same
 *
 * A slot outlives its processes: a dispatcher is killed and started again at
 * the same address, with the same --dispatcher-id, data dir and config file;
 * a worker is killed and started again as a new incarnation (a new worker id).
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { FaultProxy } from '../../src/testing/fault-proxy';
import type { OrphanGuard } from './guard';
import type { SoakOptions } from './options';
import { startProcess, type ChildEvent, type SoakProcess } from './processes';
import type { SoakStore } from './soak-store';

export const ZONES = ['a', 'b', 'c'] as const;
export const REGION = 'soak';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What every slot needs from the run. */
export interface RunContext {
  options: SoakOptions;
  logDir: string;
  dataDir: string;
  configFile: string;
  store: SoakStore;
  guard: OrphanGuard;
  /** Prefix of the run's idempotency keys and worker ids. */
  runId: string;
}

const common = (ctx: RunContext): { parentWatch: string; logDir: string; pids: OrphanGuard } => ({ parentWatch: ctx.options.parentWatch, logDir: ctx.logDir, pids: ctx.guard });

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startControlPlane(ctx: RunContext): Promise<{ process: SoakProcess; address: string }> {
  const p = startProcess({ name: 'control-plane', args: [ctx.options.cli, 'xds', '--address', '127.0.0.1:0', '--admin-address', 'off', '--log-level', 'warn'] }, common(ctx));
  const listening = await p.waitFor('listening', 60_000);
  return { process: p, address: String(listening['xdsAddress']) };
}

/** `zonal bootstrap` for one client: its zone, and a node id of its own. */
export async function writeBootstrap(ctx: RunContext, controlPlane: string, client: string, zone: string): Promise<string> {
  const file = path.join(ctx.dataDir, `bootstrap-${client}.json`);
  await promisify(execFile)(process.execPath, [ctx.options.cli, 'bootstrap', '--zone', zone, '--region', REGION, '--xds', controlPlane, '--node-id', `soak-${client}`, '--out', file]);
  return file;
}

export class DispatcherSlot {
  process: SoakProcess | undefined;
  adminAddress = '';
  /** Set by the teardown: no more starts, and a start in progress gives up. */
  retired = false;
  /** Times it came up (the first start included), and starts that failed (the process exited or hung before "listening"). */
  starts = 0;
  startFailures = 0;
  private readonly dataDir: string;

  private constructor(
    private readonly ctx: RunContext,
    readonly id: string,
    readonly zone: string,
    readonly grpcAddress: string,
    readonly proxy: FaultProxy,
    private readonly controlPlane: string,
  ) {
    this.dataDir = path.join(ctx.dataDir, id);
    mkdirSync(this.dataDir, { recursive: true });
  }

  static async create(ctx: RunContext, zone: string, controlPlane: string): Promise<DispatcherSlot> {
    const grpcAddress = `127.0.0.1:${await freePort()}`;
    const proxy = await FaultProxy.start({ target: grpcAddress });
    return new DispatcherSlot(ctx, `d-${zone}`, zone, grpcAddress, proxy, controlPlane);
  }

  get up(): boolean {
    return this.process?.running === true && this.adminAddress !== '';
  }

  /** The SQLite dispatcher's data dir (its zonal.db). */
  get storeDir(): string {
    return this.dataDir;
  }

  private args(): string[] {
    const store = this.ctx.store;
    return [
      this.ctx.options.cli, 'serve',
      '--zone', this.zone, '--region', REGION, '--dispatcher-id', this.id,
      '--grpc-address', this.grpcAddress, '--advertise-address', this.proxy.address,
      '--admin-address', '127.0.0.1:0', '--xds-address', 'off', '--register-with', this.controlPlane,
      '--data-dir', this.dataDir, '--config', this.ctx.configFile,
      '--drain-propagation-ms', '1000', '--log-level', 'warn',
      ...(store.kind === 'postgres' ? ['--store', store.storeUrl] : []),
    ];
  }

  /** Starts it, and again after each failed start (the store down, the old process still exiting), until `deadlineMs`. */
  async start(deadlineMs = 60_000): Promise<void> {
    const until = Date.now() + deadlineMs;
    this.adminAddress = '';
    for (;;) {
      if (this.retired) throw new Error(`${this.id} is retired (teardown): not started`);
      const p = startProcess({ name: this.id, args: this.args() }, common(this.ctx));
      this.process = p;
      try {
        const listening = await p.waitFor('listening', Math.max(1_000, until - Date.now()));
        this.adminAddress = String(listening['adminAddress']);
        this.starts += 1;
        return;
      } catch (err) {
        this.startFailures += 1;
        await p.stop(1_000, 'SIGKILL');
        if (this.retired || Date.now() + 1_000 >= until) throw err;
        await sleep(1_000);
      }
    }
  }

  /** kill -9; resolves once the process is gone. */
  async kill(): Promise<void> {
    const p = this.process;
    this.adminAddress = '';
    if (p === undefined) return;
    p.signal('SIGKILL');
    await p.exited;
  }

  /** SIGTERM (drain, then exit); SIGKILL after `graceMs`. */
  async terminate(graceMs = 20_000): Promise<void> {
    const p = this.process;
    this.adminAddress = '';
    if (p !== undefined) await p.stop(graceMs);
  }
}

/** A producer or a worker: one process at a time, started again as a new incarnation. */
export class ClientSlot {
  process: SoakProcess | undefined;
  incarnation = 0;
  /** How long the last start took, to "ready". */
  lastStartMs = 0;
  /** Set by the teardown: no more starts. */
  retired = false;

  constructor(
    private readonly ctx: RunContext,
    readonly role: 'producer' | 'worker',
    readonly name: string,
    readonly zone: string,
    private readonly bootstrapFile: string,
    private readonly settings: (incarnationId: string) => Record<string, unknown>,
    private readonly onEvent: (slot: ClientSlot, e: ChildEvent) => void,
  ) {}

  get running(): boolean {
    return this.process?.running === true;
  }

  /** `<name>.<incarnation>`: a worker's id, unique in the run. */
  get incarnationId(): string {
    return `${this.ctx.runId}-${this.name}.${this.incarnation}`;
  }

  /** Starts a new incarnation and waits for its "ready" (`readyMs`). */
  async start(readyMs = 60_000): Promise<void> {
    if (this.retired) throw new Error(`${this.name} is retired (teardown): not started`);
    this.incarnation += 1;
    const t0 = Date.now();
    const script = path.join(__dirname, `${this.role}.js`);
    const p = startProcess(
      {
        name: this.name,
        args: [script, JSON.stringify(this.settings(this.incarnationId))],
        env: { GRPC_XDS_BOOTSTRAP: this.bootstrapFile, GRPC_XDS_BOOTSTRAP_CONFIG: undefined, ZONAL_LOG_LEVEL: 'warn' },
        onEvent: (e) => this.onEvent(this, e),
      },
      common(this.ctx),
    );
    this.process = p;
    try {
      await p.waitFor('ready', readyMs);
      this.lastStartMs = Date.now() - t0;
    } catch (err) {
      await p.stop(1_000, 'SIGKILL');
      throw err;
    }
  }

  async kill(): Promise<void> {
    const p = this.process;
    if (p === undefined) return;
    p.signal('SIGKILL');
    await p.exited;
  }
}
