import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { pgStoreUrl, pgTestSchemas, skipWithoutPostgres } from '../support/postgres';
import { killAll, spawnZonal, type Proc } from '../support/processes';

/**
 * Runs the `zones` overlay's containers as processes on this machine, with
 * the args, environment and files the rendered manifests give them: the
 * control plane, three dispatchers (zones a, b, c) over one PostgreSQL
 * schema, and a zone-a worker from the worker example (its init container's
 * bootstrap, its handler module from the ConfigMap). Only what a cluster
 * provides is stood in for: pod IPs and Service names become 127.0.0.1,
 * each pod's ports become free ports here, volumes become directories,
 * Secrets become token files, and the downward API's zone label is set.
 */
const KUBE = path.resolve(__dirname, '..', '..', 'deploy', 'kubernetes');
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
if (!hasKubectl) console.warn('[skip] deploy-manifests-run: kubectl is not installed');
const schemas = pgTestSchemas('e2edeploy');

type Obj = Record<string, any>;

function render(dir: string): Obj[] {
  return parseAllDocuments(execFileSync('kubectl', ['kustomize', path.join(KUBE, dir)], { encoding: 'utf8' })).map((d) => d.toJS() as Obj);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Resolves with the first truthy `read()`, checked as the processes print (every 50 ms). */
async function eventually<T>(read: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!hasKubectl)('the overlays, run as processes with their own args, env and files', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'zonal-deploy-'));
  const schema = schemas.next();

  afterAll(async () => {
    await killAll();
    await schemas.dropAll();
    rmSync(root, { recursive: true, force: true });
  });

  /** A pod on this machine: its volumes as directories, its ports as free local ports. */
  async function pod(name: string, w: Obj, services: Map<string, number>, downward: Record<string, string>) {
    const spec = w['spec']['template']['spec'];
    const dir = path.join(root, name);
    const volumes = new Map<string, string>();
    for (const v of spec['volumes'] ?? []) {
      const at = path.join(dir, 'volumes', v['name']);
      mkdirSync(at, { recursive: true });
      if (v['configMap'] !== undefined) {
        const cm = objects.find((o) => o['kind'] === 'ConfigMap' && o['metadata']['name'] === v['configMap']['name'])!;
        for (const [key, text] of Object.entries(cm['data'] as Record<string, string>)) writeFileSync(path.join(at, key), text);
      }
      if (v['secret'] !== undefined) writeFileSync(path.join(at, 'token'), secrets.get(v['secret']['secretName'])!);
      volumes.set(v['name'], at);
    }
    const ports = new Map<number, number>();
    for (const c of [...(spec['initContainers'] ?? []), ...spec['containers']]) for (const p of c['ports'] ?? []) ports.set(p['containerPort'], await freePort());
    const localize = (c: Obj, text: string): string => {
      let out = text;
      // Paths: the container's mount points become this pod's directories, in one pass (longest first).
      const mounts = [...(c['volumeMounts'] ?? [])].sort((a: Obj, b: Obj) => b['mountPath'].length - a['mountPath'].length);
      const localOf = new Map<string, string>();
      for (const m of mounts) {
        const local = volumes.get(m['name']) ?? path.join(dir, 'volumes', m['name']);
        mkdirSync(local, { recursive: true });
        localOf.set(m['mountPath'], local);
      }
      if (mounts.length > 0) {
        const pattern = new RegExp(`(^|[=\\s])(${mounts.map((m: Obj) => String(m['mountPath']).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?=/|$)`, 'g');
        out = out.replace(pattern, (_, lead: string, mp: string) => lead + localOf.get(mp)!);
      }
      out = out.replace(/0\.0\.0\.0:(\d+)/g, (_, p: string) => `127.0.0.1:${ports.get(Number(p)) ?? p}`);
      out = out.replace(/\$\(POD_IP\):(\d+)/g, (_, p: string) => `127.0.0.1:${ports.get(Number(p)) ?? p}`);
      out = out.replace(/\b([a-z][a-z0-9-]*):(\d+)\b/g, (all, host: string, p: string) => (services.has(`${host}:${p}`) ? `127.0.0.1:${services.get(`${host}:${p}`)}` : all));
      return out.replace(/\$\(POD_NAME\)/g, name);
    };
    const envOf = (c: Obj): Record<string, string> => {
      const env: Record<string, string> = {};
      for (const e of c['env'] ?? []) {
        if (e['value'] !== undefined) env[e['name']] = localize(c, String(e['value']));
        const from = e['valueFrom'];
        if (from?.['fieldRef'] !== undefined) env[e['name']] = downward[from['fieldRef']['fieldPath']] ?? '';
        if (from?.['secretKeyRef'] !== undefined && secrets.has(`${from['secretKeyRef']['name']}/${from['secretKeyRef']['key']}`)) env[e['name']] = secrets.get(`${from['secretKeyRef']['name']}/${from['secretKeyRef']['key']}`)!;
      }
      return env;
    };
    const run = (c: Obj): Proc => {
      const env = envOf(c);
      const args = (c['args'] as string[]).map((a) => localize(c, a).replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => env[v] ?? ''));
      // The manifests set every address; nothing may fall back to the test harness's defaults.
      return spawnZonal(args, { ...env, ZONAL_XDS_ADDRESS: '' , ZONAL_LOG_LEVEL: 'warn' });
    };
    return { spec, ports, localize, envOf, run };
  }

  let objects: Obj[] = [];
  const secrets = new Map<string, string>();
  const byName = (kind: string, name: string): Obj => objects.find((o) => o['kind'] === kind && o['metadata']['name'] === name)!;

  /** The two token Secrets, as `kubectl create secret generic --from-file=token=...` of `zonal token new` would hold them. */
  function makeTokens(): void {
    for (const name of ['zonal-admin-token', 'zonal-xds-registration-token']) {
      if (secrets.has(name)) continue;
      const out = JSON.parse(execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js'), 'token', 'new'], { encoding: 'utf8' })) as { token: string };
      secrets.set(name, out.token + '\n');
    }
  }

  /** The probes answer without a token; everything else on the admin port asks for one. */
  async function checkAdmin(c: Obj, admin: string): Promise<void> {
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const res = await fetch(`http://${admin}${c[probe]['httpGet']['path']}`);
      expect(res.status, `${admin} ${probe}`).toBe(200);
    }
    expect((await fetch(`http://${admin}/metrics`)).status).toBe(401);
    const metrics = await fetch(`http://${admin}/metrics`, { headers: { authorization: `Bearer ${secrets.get('zonal-admin-token')!.trim()}` } });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('zonal_queue_ready_tasks');
  }

  /** zone-a's worker from the example: its init container writes the bootstrap, then the worker runs the example handler through xds:///. */
  async function zoneAWorker(services: Map<string, number>): Promise<{ worker: Proc; bootstrapArgs: string[] }> {
    const wp = await pod('zonal-worker-zone-a-0', byName('Deployment', 'zonal-worker-zone-a'), services, { 'metadata.name': 'zonal-worker-zone-a-0' });
    const init = wp.run(wp.spec['initContainers'][0]);
    expect((await init.exited).code).toBe(0);
    const worker = wp.run(wp.spec['containers'][0]);
    const bootstrapArgs = (wp.spec['initContainers'][0]['args'] as string[]).map((a) => wp.localize(wp.spec['initContainers'][0], a).replace('$(ZONAL_ZONE)', 'zone-a').replace('$(POD_NAME)', 'producer-a'));
    return { worker, bootstrapArgs };
  }

  /** A zone-a producer with the same kind of bootstrap submits through xds:/// and waits: the example handler upper-cases. */
  async function submitInZoneA(bootstrapArgs: string[], name: string): Promise<Record<string, unknown>> {
    const producerBootstrap = path.join(root, `${name}-bootstrap.json`);
    const pb = spawnZonal([...bootstrapArgs.filter((a) => !a.startsWith('--out=')), `--out=${producerBootstrap}`]);
    expect((await pb.exited).code).toBe(0);
    const submit = spawnZonal(['submit', '--target=xds:///zonal', '--zone=zone-a', '--wait', '--payload=hello from zone a'], { GRPC_XDS_BOOTSTRAP: producerBootstrap });
    expect((await submit.exited).code).toBe(0);
    const outcome = submit.events.find((e) => 'state' in e)!;
    expect(outcome['state']).toBe('COMPLETED');
    expect(outcome['result']).toBe('HELLO FROM ZONE A');
    return outcome;
  }

  /** Runs the container's preStop hook; it must drain the process and return inside the pod's grace period. */
  async function preStop(w: Obj, c: Obj, localize: (c: Obj, text: string) => string, proc: Proc): Promise<number> {
    const grace = w['spec']['template']['spec']['terminationGracePeriodSeconds'] * 1000;
    const startedMs = Date.now();
    const [node, script, ...hookArgs] = (c['lifecycle']['preStop']['exec']['command'] as string[]).map((a) => localize(c, a));
    expect(node).toBe('node');
    expect(script).toMatch(/dist\/cli\/main\.js$/);
    const hook = spawnZonal(hookArgs);
    expect((await hook.waitForEvent('drained', grace))['pid']).toBe(proc.child.pid);
    expect((await hook.exited).code).toBe(0);
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    const drainMs = Date.now() - startedMs;
    expect(drainMs).toBeLessThan(grace);
    return drainMs;
  }

  it('single: the StatefulSet\'s dispatcher with its embedded control plane, a zone-a worker through zonal-xds; preStop drains; the task is still on the volume after a restart', async () => {
    objects = [...render('overlays/single'), ...render('examples/worker')];
    makeTokens();
    const sts = byName('StatefulSet', 'zonal-dispatcher');
    const c = sts['spec']['template']['spec']['containers'][0];
    const services = new Map<string, number>();
    const start = async (): Promise<{ proc: Proc; p: Awaited<ReturnType<typeof pod>> }> => {
      const p = await pod('zonal-dispatcher-0', sts, services, { 'status.podIP': '127.0.0.1', 'metadata.name': 'zonal-dispatcher-0', "metadata.labels['topology.kubernetes.io/zone']": 'zone-a' });
      // The Services of the render reach this pod's ports.
      for (const svc of objects.filter((o) => o['kind'] === 'Service')) {
        for (const sp of svc['spec']['ports']) {
          const cp = c['ports'].find((x: Obj) => x['name'] === sp['targetPort']);
          if (cp !== undefined) services.set(`${svc['metadata']['name']}:${sp['port']}`, p.ports.get(cp['containerPort'])!);
        }
      }
      const proc = p.run(c);
      expect((await proc.waitForEvent('listening', 30_000))['zone']).toBe('zone-a');
      return { proc, p };
    };
    const first = await start();
    const adminPort = first.p.ports.get(c['ports'].find((x: Obj) => x['name'] === 'admin')['containerPort'])!;
    await checkAdmin(c, `127.0.0.1:${adminPort}`);
    const { worker, bootstrapArgs } = await zoneAWorker(services);
    expect((await worker.waitForEvent('worker-connected', 30_000))['dispatcherZone']).toBe('zone-a');
    const outcome = await submitInZoneA(bootstrapArgs, 'single');
    const drainMs = await preStop(sts, c, first.p.localize, first.proc);
    // The pod comes back on its volume (same data dir): the acknowledged, completed task is there.
    const second = await start();
    const client = new ProducerClient({ target: `127.0.0.1:${second.p.ports.get(50051)}` });
    try {
      expect((await client.get(String(outcome['taskId']))).state).toBe('COMPLETED');
    } finally {
      client.close();
    }
    await second.proc.kill('SIGTERM');
    await worker.kill('SIGTERM');
    console.log(`single overlay run as processes: dispatcher (SQLite, embedded xDS) + zone-a worker from the manifests; task ran (HELLO FROM ZONE A); preStop drain ${drainMs} ms; the task was COMPLETED on the volume after the restart`);
  }, 120_000);

  it.skipIf(skipWithoutPostgres())('zones: the control plane, three dispatchers and a zone-a worker start from the manifests; a task submitted in zone a runs there; the preStop drains and the worker moves', async () => {
    objects = [...render('overlays/zones'), ...render('examples/worker')];
    makeTokens();
    secrets.set('zonal-postgres/url', pgStoreUrl(schema));
    const services = new Map<string, number>();

    const xdsPod = await pod('zonal-xds-0', byName('Deployment', 'zonal-xds'), services, {});
    const xds = xdsPod.run(xdsPod.spec['containers'][0]);
    await xds.waitForEvent('listening');
    // The Service zonal-xds reaches the control plane pod's ports.
    for (const sp of byName('Service', 'zonal-xds')['spec']['ports']) {
      const target = xdsPod.spec['containers'][0]['ports'].find((cp: Obj) => cp['name'] === sp['targetPort'])['containerPort'];
      services.set(`zonal-xds:${sp['port']}`, xdsPod.ports.get(target)!);
    }

    const dispatcher = byName('Deployment', 'zonal-dispatcher');
    const c = dispatcher['spec']['template']['spec']['containers'][0];
    const pods: { zone: string; proc: Proc; localize: (c: Obj, text: string) => string }[] = [];
    for (const zone of ['zone-a', 'zone-b', 'zone-c']) {
      const name = `zonal-dispatcher-${zone}`;
      const p = await pod(name, dispatcher, services, {
        'status.podIP': '127.0.0.1',
        'metadata.name': name,
        "metadata.labels['topology.kubernetes.io/zone']": zone,
        "metadata.labels['topology.kubernetes.io/region']": 'r1',
      });
      const proc = p.run(c);
      expect((await proc.waitForEvent('listening', 30_000))['zone']).toBe(zone);
      await checkAdmin(c, `127.0.0.1:${p.ports.get(c['ports'].find((x: Obj) => x['name'] === 'admin')['containerPort'])!}`);
      pods.push({ zone, proc, localize: p.localize });
    }

    const { worker, bootstrapArgs } = await zoneAWorker(services);
    expect((await worker.waitForEvent('worker-connected', 30_000))['dispatcherZone']).toBe('zone-a');
    await submitInZoneA(bootstrapArgs, 'zones');

    // The preStop hook of zone a's dispatcher drains it inside the pod's grace period; its worker moves to another zone.
    const a = pods[0]!;
    const drainMs = await preStop(dispatcher, c, a.localize, a.proc);
    const moved = await eventually(() => worker.events.find((e) => e['event'] === 'worker-connected' && e['dispatcherZone'] !== 'zone-a'), 30_000, 'zone a\'s worker to reconnect elsewhere');
    expect(['zone-b', 'zone-c']).toContain(moved['dispatcherZone']);
    console.log(`zones overlay run as processes: control plane + 3 dispatchers + zone-a worker from the manifests; the task ran in zone a (HELLO FROM ZONE A); preStop drain of zone a ${drainMs} ms; its worker moved to ${String(moved['dispatcherZone'])}`);
  }, 120_000);
});
