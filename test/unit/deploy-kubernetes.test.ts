import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { BOOTSTRAP_FLAGS } from '../../src/cli/bootstrap-command';
import { DRAIN_FLAGS } from '../../src/cli/drain-command';
import { parseFlags, type FlagSpec } from '../../src/cli/flags';
import { SERVE_FLAGS } from '../../src/cli/serve-command';
import { WORKER_FLAGS } from '../../src/cli/worker-command';
import { XDS_FLAGS } from '../../src/cli/xds-command';
import { ADMIN_OPEN_PATHS } from '../../src/admin/admin-server';
import { METRICS } from '../../src/telemetry/metric-names';

/**
 * Renders the kustomize overlays and examples with `kubectl kustomize` and
 * checks the objects against the program itself: flags, environment
 * variables, ports, probe paths, grace periods, files, users and metric
 * names all come from the code (the CLI's flag tables, the admin server's
 * open paths, the metric table, the Dockerfile), never from a copy here.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const KUBE = path.join(ROOT, 'deploy', 'kubernetes');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
if (!hasKubectl && process.env['CI'] !== undefined) throw new Error('kubectl (with kustomize) is needed for the manifest checks in CI');
if (!hasKubectl) console.warn('[skip] deploy-kubernetes: kubectl is not installed; the manifest checks are skipped');

/** Time the dispatcher's stop takes after the drain: final store flush, leaving the store, closing ports. */
const STOP_MARGIN_MS = 5_000;

/** Environment variables a container may set that are not a flag of its command, and why. */
const OTHER_ENV: Record<string, string> = {
  POD_IP: 'referenced as $(POD_IP) in the args',
  POD_NAME: 'referenced as $(POD_NAME) in the args',
  GRPC_XDS_BOOTSTRAP: 'read by @grpc/grpc-js-xds for xds:/// targets',
  PGPASSWORD: 'read by pg for the store password (docs/operations.md)',
};

const COMMAND_FLAGS: Record<string, FlagSpec[]> = { serve: SERVE_FLAGS, xds: XDS_FLAGS, worker: WORKER_FLAGS, bootstrap: BOOTSTRAP_FLAGS, drain: DRAIN_FLAGS };

type Obj = Record<string, any>;

function render(dir: string): Obj[] {
  const text = execFileSync('kubectl', ['kustomize', path.join(KUBE, dir)], { encoding: 'utf8' });
  return parseAllDocuments(text).map((d) => d.toJS() as Obj);
}

const workloads = (objs: Obj[]): Obj[] => objs.filter((o) => ['Deployment', 'StatefulSet'].includes(o['kind']));
const find = (objs: Obj[], kind: string, name: string): Obj | undefined => objs.find((o) => o['kind'] === kind && o['metadata']['name'] === name);
const containersOf = (w: Obj): Obj[] => [...(w['spec']['template']['spec']['initContainers'] ?? []), ...w['spec']['template']['spec']['containers']];

/** The container's args as the CLI parses them, with $(VAR) references checked and replaced by a stand-in. */
function parsedArgs(c: Obj): { command: string; values: Record<string, unknown>; raw: Map<string, string> } {
  const [command, ...rest] = c['args'] as string[];
  const specs = COMMAND_FLAGS[command!];
  expect(specs, `container ${c['name']}: command "${command}"`).toBeDefined();
  const env = new Map<string, Obj>((c['env'] ?? []).map((e: Obj) => [e['name'], e]));
  const raw = new Map<string, string>();
  const args = rest.map((arg) => {
    expect(arg, `container ${c['name']}: flags are written --name=value`).toMatch(/^--[a-z0-9-]+(=.*)?$/);
    for (const ref of arg.matchAll(/\$\(([A-Z_]+)\)/g)) expect(env.has(ref[1]!), `container ${c['name']}: ${arg} refers to $(${ref[1]}), which it does not define`).toBe(true);
    const [name, value = ''] = arg.slice(2).split(/=(.*)/s);
    raw.set(name!, value);
    return arg.replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => (v === 'POD_IP' ? '10.0.0.1' : v === 'ZONAL_ZONE' ? 'zone-a' : 'pod-0'));
  });
  // Unknown flags and malformed numbers throw UsageError here, exactly as `zonal` would refuse them.
  const values = parseFlags(args, specs!, {});
  expect(values).not.toBe('help');
  for (const [name, e] of env) {
    if (OTHER_ENV[name] !== undefined) continue;
    expect(specs!.map((s) => s.env), `container ${c['name']}: env ${name} is no flag of \`zonal ${command}\``).toContain(name);
    expect(e['value'] !== undefined || e['valueFrom'] !== undefined).toBe(true);
  }
  return { command: command!, values: values as Record<string, unknown>, raw };
}

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

/** The volume mount of `c` that holds `file`, and the pod volume behind it. */
function mountFor(w: Obj, c: Obj, file: string): { mount: Obj; volume: Obj } {
  const mount = (c['volumeMounts'] ?? []).filter((m: Obj) => file === m['mountPath'] || file.startsWith(m['mountPath'] + '/')).sort((a: Obj, b: Obj) => b['mountPath'].length - a['mountPath'].length)[0];
  expect(mount, `container ${c['name']}: ${file} is on no volume (the root filesystem is read-only)`).toBeDefined();
  const volume = (w['spec']['template']['spec']['volumes'] ?? []).find((v: Obj) => v['name'] === mount['name']) ?? (w['spec']['volumeClaimTemplates'] ?? []).find((v: Obj) => v['metadata']['name'] === mount['name']);
  expect(volume, `volume ${mount['name']}`).toBeDefined();
  return { mount, volume };
}

function dockerUser(): number {
  const line = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').split('\n').filter((l) => /^USER\s/.test(l)).pop();
  return Number(line!.split(/\s+/)[1]!.split(':')[0]);
}

/** What `zonal config validate` makes of the runtime config a ConfigMap ships. */
function runtimeSettings(objs: Obj[], configMapName: string, key: string): Obj {
  const cm = find(objs, 'ConfigMap', configMapName);
  expect(cm?.['data']?.[key], `ConfigMap ${configMapName} key ${key}`).toBeDefined();
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-kube-'));
  try {
    writeFileSync(path.join(dir, key), cm!['data'][key]);
    const out = JSON.parse(execFileSync(process.execPath, [CLI, 'config', 'validate', path.join(dir, key)], { encoding: 'utf8' })) as Obj;
    expect(out['valid']).toBe(true);
    return out['settings'];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function checkContainerHardening(w: Obj): void {
  const pod = w['spec']['template']['spec'];
  expect(pod['securityContext']['runAsNonRoot']).toBe(true);
  expect(pod['securityContext']['runAsUser']).toBe(dockerUser());
  expect(pod['automountServiceAccountToken']).toBe(false);
  for (const c of containersOf(w)) {
    expect(c['image'], c['name']).toMatch(/^zonal(:|$)/);
    expect(c['securityContext'], c['name']).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c['resources']?.['requests']?.['cpu'], `${c['name']}: cpu request`).toBeDefined();
    expect(c['resources']?.['requests']?.['memory'], `${c['name']}: memory request`).toBeDefined();
    expect(c['resources']?.['limits']?.['memory'], `${c['name']}: memory limit`).toBeDefined();
    if (c['args'][0] !== 'bootstrap') expect(mountFor(w, c, '/tmp').volume['emptyDir']).toBeDefined();
  }
}

/** Checks a dispatcher workload; returns its parsed serve flags. */
function checkDispatcher(objs: Obj[], w: Obj): Record<string, unknown> {
  checkContainerHardening(w);
  const pod = w['spec']['template']['spec'];
  const c = pod['containers'].find((x: Obj) => x['args'][0] === 'serve');
  const { values } = parsedArgs(c);
  // Ports: the container's named ports are the ports the flags listen on.
  const ports = new Map<string, number>(c['ports'].map((p: Obj) => [p['name'], p['containerPort']]));
  expect(ports.get('grpc')).toBe(portOf(String(values['grpc-address'])));
  expect(ports.get('admin')).toBe(portOf(String(values['admin-address'])));
  if (values['xds-address'] !== 'off') expect(ports.get('xds')).toBe(portOf(String(values['xds-address'])));
  else expect(ports.has('xds')).toBe(false);
  expect(portOf(String(values['advertise-address']))).toBe(ports.get('grpc'));
  // Probes: on the admin port, on paths it answers without a token.
  expect(c['readinessProbe']['httpGet']).toEqual({ path: '/readyz', port: 'admin' });
  expect(c['livenessProbe']['httpGet']).toEqual({ path: '/healthz', port: 'admin' });
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) if (c[probe] !== undefined) expect(ADMIN_OPEN_PATHS.has(c[probe]['httpGet']['path'])).toBe(true);
  // Files the flags name are on volumes; the data dir is writable; the config is the ConfigMap's key.
  for (const flag of ['admin-token-file', 'xds-registration-token-file', 'config']) if (values[flag] !== '' && values[flag] !== undefined) mountFor(w, c, String(values[flag]));
  const data = mountFor(w, c, String(values['data-dir']));
  expect(data.mount['readOnly']).not.toBe(true);
  const config = mountFor(w, c, String(values['config']));
  const cmName = config.volume['configMap']['name'];
  const key = path.relative(config.mount['mountPath'], String(values['config']));
  // Mounted as a directory (no subPath): a subPath mount never sees the kubelet's updates.
  expect(config.mount['subPath']).toBeUndefined();
  const settings = runtimeSettings(objs, cmName, key);
  // Grace periods: the preStop drain waits for propagation plus the longest drain grace in force, and the pod's grace covers it and the stop.
  const graceMs = Math.max(Number(values['drain-grace-ms']), Number(settings['core']['drainGraceMs']));
  const needMs = Number(values['drain-propagation-ms']) + graceMs;
  const exec = c['lifecycle']['preStop']['exec']['command'] as string[];
  expect(exec.slice(0, 3)).toEqual(['node', `/app/${path.normalize(PACKAGE.bin['zonal']!)}`, 'drain']);
  const drain = parseFlags(exec.slice(3), DRAIN_FLAGS, {}) as Record<string, unknown>;
  expect(drain['data-dir']).toBe(values['data-dir']);
  expect(Number(drain['timeout-ms'])).toBeGreaterThanOrEqual(needMs);
  expect(pod['terminationGracePeriodSeconds'] * 1000).toBeGreaterThanOrEqual(Math.max(Number(drain['timeout-ms']), needMs + STOP_MARGIN_MS));
  // Bound elsewhere than loopback, the admin port and the embedded control plane require tokens: the flags give them.
  expect(values['admin-token-file']).not.toBe('');
  if (values['xds-address'] !== 'off' || values['register-with'] !== '') expect(values['xds-registration-token-file']).not.toBe('');
  // The Service and the PDB select these pods, by ports that exist.
  const labels = w['spec']['template']['metadata']['labels'];
  const selects = (sel: Obj): boolean => Object.entries(sel).every(([k, v]) => labels[k] === v);
  const svc = find(objs, 'Service', 'zonal-dispatcher')!;
  expect(selects(svc['spec']['selector'])).toBe(true);
  for (const p of svc['spec']['ports']) expect(ports.has(p['targetPort']), `Service port ${p['name']}`).toBe(true);
  const pdb = objs.find((o) => o['kind'] === 'PodDisruptionBudget' && selects(o['spec']['selector']['matchLabels']));
  expect(pdb, 'a PodDisruptionBudget for the dispatchers').toBeDefined();
  return values;
}

/** `host:port` of `--register-with` / `--xds` must be a Service of the render, on a port its pods listen on. */
function checkServiceAddress(objs: Obj[], address: string): void {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const svc = find(objs, 'Service', host);
  expect(svc, `Service ${host}`).toBeDefined();
  const sp = svc!['spec']['ports'].find((p: Obj) => p['port'] === port);
  expect(sp, `Service ${host} port ${port}`).toBeDefined();
  const pods = workloads(objs).filter((w) => Object.entries(svc!['spec']['selector']).every(([k, v]) => w['spec']['template']['metadata']['labels'][k] === v));
  expect(pods.length).toBeGreaterThan(0);
  for (const w of pods) expect(containersOf(w).some((c) => (c['ports'] ?? []).some((p: Obj) => p['name'] === sp['targetPort']))).toBe(true);
}

describe.skipIf(!hasKubectl)('deploy/kubernetes rendered with kubectl kustomize', () => {
  it('single: one dispatcher, a StatefulSet with a PersistentVolumeClaim for SQLite and the embedded control plane', () => {
    const objs = render('overlays/single');
    const [sts, ...others] = workloads(objs);
    expect(others).toEqual([]);
    expect(sts!['kind']).toBe('StatefulSet');
    expect(sts!['spec']['replicas']).toBe(1);
    const values = checkDispatcher(objs, sts!);
    expect(String(values['store'] ?? '')).toMatch(/^(|sqlite:.*)$/);
    const data = mountFor(sts!, sts!['spec']['template']['spec']['containers'][0], String(values['data-dir']));
    expect(data.volume['spec']['accessModes']).toEqual(['ReadWriteOnce']);
    expect(values['xds-address']).not.toBe('off');
    // Workers and producers use zonal-xds:18000 in both overlays.
    checkServiceAddress(objs, `zonal-xds:${portOf(String(values['xds-address']))}`);
  });

  it('zones: dispatchers over PostgreSQL spread across zones, each learning its zone from its node, and a control plane of their own', () => {
    const objs = render('overlays/zones');
    const dep = find(objs, 'Deployment', 'zonal-dispatcher')!;
    const values = checkDispatcher(objs, dep);
    const pod = dep['spec']['template']['spec'];
    expect(pod['topologySpreadConstraints'].some((t: Obj) => t['topologyKey'] === 'topology.kubernetes.io/zone' && t['whenUnsatisfiable'] === 'DoNotSchedule')).toBe(true);
    const env = new Map<string, Obj>(pod['containers'][0]['env'].map((e: Obj) => [e['name'], e]));
    const zoneFlag = SERVE_FLAGS.find((f) => f.name === 'zone')!.env;
    expect(env.get(zoneFlag)?.['valueFrom']?.['fieldRef']?.['fieldPath']).toBe("metadata.labels['topology.kubernetes.io/zone']");
    const storeEnv = SERVE_FLAGS.find((f) => f.name === 'store')!.env;
    expect(env.get(storeEnv)?.['valueFrom']?.['secretKeyRef']).toMatchObject({ name: 'zonal-postgres', key: 'url' });
    expect(values['xds-address']).toBe('off');
    checkServiceAddress(objs, String(values['register-with']));
    // The control plane: its flags, ports, probes and tokens.
    const xds = find(objs, 'Deployment', 'zonal-xds')!;
    checkContainerHardening(xds);
    const xc = xds['spec']['template']['spec']['containers'][0];
    const x = parsedArgs(xc).values;
    const ports = new Map<string, number>(xc['ports'].map((p: Obj) => [p['name'], p['containerPort']]));
    expect(ports.get('xds')).toBe(portOf(String(x['address'])));
    expect(ports.get('xds-admin')).toBe(portOf(String(x['admin-address'])));
    expect(portOf(String(values['register-with']))).toBe(ports.get('xds'));
    expect(x['registration-token-file']).not.toBe('');
    expect(x['admin-token-file']).not.toBe('');
    for (const probe of ['readinessProbe', 'livenessProbe']) expect(xc[probe]['httpGet']).toEqual({ path: '/healthz', port: 'xds-admin' });
    // Dispatchers and the control plane share one registration token Secret.
    const secretOf = (w: Obj, c: Obj, file: string): string => mountFor(w, c, file).volume['secret']['secretName'];
    expect(secretOf(xds, xc, String(x['registration-token-file']))).toBe(secretOf(dep, pod['containers'][0], String(values['xds-registration-token-file'])));
    expect(objs.some((o) => o['kind'] === 'PodDisruptionBudget' && o['spec']['selector']['matchLabels']['app.kubernetes.io/component'] === 'xds')).toBe(true);
  });

  it('workers: per zone, a bootstrap naming the zone, the handler module from a ConfigMap, and a ScaledObject on that zone\'s ready tasks', () => {
    const objs = render('examples/worker');
    const deps = workloads(objs);
    expect(deps.map((d) => d['metadata']['name']).sort()).toEqual(['zonal-worker-zone-a', 'zonal-worker-zone-b', 'zonal-worker-zone-c']);
    const zonesOverlay = render('overlays/zones');
    const singleOverlay = render('overlays/single');
    for (const w of deps) {
      checkContainerHardening(w);
      const pod = w['spec']['template']['spec'];
      const zone = pod['affinity']['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution']['nodeSelectorTerms'][0]['matchExpressions'][0];
      expect(zone['key']).toBe('topology.kubernetes.io/zone');
      const [init] = pod['initContainers'];
      const b = parsedArgs(init).values;
      const worker = pod['containers'][0];
      const wv = parsedArgs(worker).values;
      const zoneOf = (c: Obj): string => c['env'].find((e: Obj) => e['name'] === 'ZONAL_ZONE')['value'];
      expect(zoneOf(init)).toBe(zone['values'][0]);
      expect(zoneOf(worker)).toBe(zone['values'][0]);
      expect(worker['env'].find((e: Obj) => e['name'] === 'GRPC_XDS_BOOTSTRAP')['value']).toBe(b['out']);
      expect(mountFor(w, init, String(b['out'])).volume['name']).toBe(mountFor(w, worker, String(b['out'])).volume['name']);
      expect(wv['target']).toBe('xds:///zonal');
      for (const overlay of [zonesOverlay, singleOverlay]) checkServiceAddress(overlay, String(b['xds']));
      const handler = mountFor(w, worker, String(wv['handler']));
      const cm = find(objs, 'ConfigMap', handler.volume['configMap']['name']);
      expect(cm?.['data']?.[path.relative(handler.mount['mountPath'], String(wv['handler']))]).toMatch(/exports\.handler/);
      // KEDA scales this Deployment on this zone's ready tasks, a metric the dispatcher exports with those labels.
      const so = objs.find((o) => o['kind'] === 'ScaledObject' && o['spec']['scaleTargetRef']['name'] === w['metadata']['name']);
      expect(so, `ScaledObject for ${w['metadata']['name']}`).toBeDefined();
      const query = String(so!['spec']['triggers'][0]['metadata']['query']);
      expect(query).toContain(`zone="${zone['values'][0]}"`);
      checkMetricQuery(query);
    }
  });

  it('the HPA alternative and the PodMonitor name metrics, labels and ports that exist', () => {
    const hpa = render('examples/hpa')[0]!;
    const metric = hpa['spec']['metrics'][0]['external']['metric'];
    checkMetricQuery(`${metric['name']}{${Object.keys(metric['selector']['matchLabels']).map((k) => `${k}="x"`).join(',')}}`);
    const rules = parseAllDocuments(readFileSync(path.join(KUBE, 'examples/hpa/prometheus-adapter-rules.yaml'), 'utf8'))[0]!.toJS() as Obj;
    for (const r of rules['rules']['external']) {
      checkMetricQuery(r['seriesQuery']);
      expect(r['name']['as']).toBe(metric['name']);
    }
    const pm = render('examples/monitoring')[0]!;
    const dispatcher = workloads(render('overlays/zones')).find((w) => w['metadata']['name'] === 'zonal-dispatcher')!;
    expect(dispatcher['spec']['template']['spec']['containers'][0]['ports'].map((p: Obj) => p['name'])).toContain(pm['spec']['podMetricsEndpoints'][0]['port']);
    expect(pm['spec']['podMetricsEndpoints'][0]['path']).toBe('/metrics');
    expect(pm['spec']['podMetricsEndpoints'][0]['authorization']['credentials']['name']).toBe('zonal-admin-token');
  });

  it('docs/deploy.md names every Secret the manifests need, with the key they read', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'deploy.md'), 'utf8');
    const needed = new Set<string>();
    for (const dir of ['overlays/single', 'overlays/zones', 'examples/worker', 'examples/monitoring']) {
      const text = JSON.stringify(render(dir));
      for (const m of text.matchAll(/"secretName":"([^"]+)"|"secretKeyRef":\{[^}]*"name":"([^"]+)"|"credentials":\{[^}]*"name":"([^"]+)"/g)) needed.add((m[1] ?? m[2] ?? m[3])!);
    }
    expect([...needed].sort()).toEqual(['zonal-admin-token', 'zonal-postgres', 'zonal-xds-registration-token']);
    for (const name of needed) expect(doc, `docs/deploy.md mentions Secret ${name}`).toContain(name);
  });
});

/** Every zonal_* metric a PromQL text names is exported, and every label it matches on is one of that metric's. */
function checkMetricQuery(query: string): void {
  const defs = Object.values(METRICS) as { name: string; labelNames: readonly string[] }[];
  const names = [...query.matchAll(/(zonal_[a-z_]+)(\{([^}]*)\})?/g)];
  expect(names.length, query).toBeGreaterThan(0);
  for (const [, name, , matchers] of names) {
    const def = defs.find((d) => d.name === name);
    expect(def, `metric ${name} (in ${query})`).toBeDefined();
    for (const m of (matchers ?? '').matchAll(/([a-z_]+)\s*(=~|!=|!~|=)/g)) expect(def!.labelNames, `label ${m[1]} of ${name}`).toContain(m[1]);
  }
}
