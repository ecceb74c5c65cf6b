import { writeFileSync } from 'node:fs';
import * as inspector from 'node:inspector';

/**
 * CPU profiles of a bench child over the measurement window only (not the
 * start-up or the stream ramp-up), through the in-process inspector, and a
 * summary of where the samples went: by function (self time), by area
 * (Zonal, grpc-js, protobufjs, Node internals, GC) and, for Zonal's own
 * functions, inclusive time.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  name: string;
  /** Share of the non-idle samples. */
  pct: number;
  ms: number;
}

export interface ProfileSummary {
  file: string;
  busyMs: number;
  byArea: ProfileRow[];
  byFunction: ProfileRow[];
  /** Zonal's functions (src/) by inclusive time: what its own code paths cost, callees included. */
  zonalInclusive: ProfileRow[];
}

function post<T>(session: inspector.Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result as T))));
}

function areaOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return '(program: native, not attributed)';
  if (url.includes('/@grpc/grpc-js/')) return 'grpc-js';
  if (url.includes('/protobufjs/') || url.includes('/@protobufjs/') || url.includes('/@grpc/proto-loader/')) return 'protobufjs / proto-loader';
  if (url.includes('/dist-bench/src/')) return 'zonal (src/)';
  if (url.includes('/dist-bench/bench/')) return 'bench harness';
  if (url.startsWith('node:') || url === '') return 'node internals (http2, streams, timers)';
  return 'other';
}

const shortUrl = (url: string): string => url.replace(/^.*node_modules\//, '').replace(/^.*dist-bench\//, '').replace(/^file:\/\//, '');

/**
 * Reduces a profile to self time per function and per area, and inclusive
 * time of Zonal's own functions. Idle samples and the profiler's own frames
 * (profileStart) are left out; shares are of the remaining (busy) samples.
 */
export function summarizeProfile(profile: Profile, file: string, top: number): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const keyOf = (n: ProfileNode): string => {
    const { functionName, url, lineNumber } = n.callFrame;
    return `${functionName || '(anonymous)'} ${url === '' ? '' : `${shortUrl(url)}:${lineNumber + 1}`}`.trim();
  };
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  const zonalInclusive = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const where = areaOf(node.callFrame.url, node.callFrame.functionName);
    if (where === 'idle') continue;
    const stack: ProfileNode[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) stack.push(byId.get(cur)!);
    if (stack.some((n) => n.callFrame.functionName === 'profileStart')) continue;
    busyUs += us;
    fn.set(keyOf(node), (fn.get(keyOf(node)) ?? 0) + us);
    area.set(where, (area.get(where) ?? 0) + us);
    const seen = new Set<string>();
    for (const n of stack) {
      if (!n.callFrame.url.includes('/dist-bench/src/')) continue;
      const key = keyOf(n);
      if (seen.has(key)) continue;
      seen.add(key);
      zonalInclusive.set(key, (zonalInclusive.get(key) ?? 0) + us);
    }
  }
  const rows = (m: Map<string, number>, n: number): ProfileRow[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: us / 1000, pct: busyUs > 0 ? (100 * us) / busyUs : 0 }));
  return { file, busyMs: busyUs / 1000, byArea: rows(area, 20), byFunction: rows(fn, top), zonalInclusive: rows(zonalInclusive, top) };
}

/** Child side: IPC handlers that profile this process between profileStart and profileStop. */
export function profilingHandlers(): Record<string, (args: any) => unknown> {
  // any: the handler table is shared with serveIpc, whose handlers narrow their own arguments.
  let session: inspector.Session | undefined;
  return {
    profileStart: async (args: { samplingIntervalUs: number }): Promise<void> => {
      session = new inspector.Session();
      session.connect();
      await post(session, 'Profiler.enable');
      await post(session, 'Profiler.setSamplingInterval', { interval: args.samplingIntervalUs });
      await post(session, 'Profiler.start');
    },
    profileStop: async (args: { file: string; top: number }): Promise<ProfileSummary> => {
      if (session === undefined) throw new Error('profileStop without profileStart');
      const { profile } = await post<{ profile: Profile }>(session, 'Profiler.stop');
      session.disconnect();
      session = undefined;
      writeFileSync(args.file, JSON.stringify(profile));
      return summarizeProfile(profile, args.file, args.top);
    },
  };
}
