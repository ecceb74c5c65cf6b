/**
 * The soak's report: one JSON document (bench/results/soak-<timestamp>.json)
 * and its summary on stdout.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { FaultKind, FaultRecord } from './chaos';
import type { Verdict } from './verdict';

export interface SoakReport {
  result: 'PASS' | 'FAIL' | 'INTERRUPTED';
  startedAt: string;
  finishedAt: string;
  seed: number;
  command: string;
  node: string;
  cpus: number;
  settings: { durationMs: number; ratePerSecPerProducer: number; workersPerZone: number; slotsPerWorker: number };
  store: { kind: string; cluster?: string; why: string };
  topology: { dispatchers: string[]; producers: string[]; workers: string[] };
  durationsMs: { startup: number; chaos: number; restore: number; drain: number; verify: number; teardown: number; total: number; budget: number };
  faults: { counts: Record<FaultKind, number>; disabled: Partial<Record<FaultKind, string>>; records: FaultRecord[]; failures: { kind: string; target: string; error: string }[] };
  dispatchers: { id: string; starts: number; failedStarts: number; configVersion: number | null }[];
  config: { documents: number; valid: number; invalid: number; finalVersion: number };
  producers: Record<string, Record<string, unknown>>;
  workers: { incarnations: number; welcomes: number; stopped: Record<string, Record<string, unknown>> };
  verdict: Verdict | undefined;
  errors: string[];
  notes: string[];
}

export function writeReport(dir: string, report: SoakReport): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `soak-${report.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  return file;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const list = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

export function printReport(r: SoakReport, file: string): void {
  const v = r.verdict;
  const out: string[] = [];
  out.push('');
  out.push(`## Zonal soak: ${r.result}`);
  out.push('');
  out.push(`seed ${r.seed}; ${s(r.settings.durationMs)} of load and faults; store ${r.store.kind}${r.store.cluster ? ` (${r.store.cluster} cluster)` : ''}: ${r.store.why}`);
  out.push(`topology: dispatchers ${r.topology.dispatchers.join(', ')}; producers ${r.topology.producers.join(', ')} (${r.settings.ratePerSecPerProducer} tasks/s each); ${r.topology.workers.length} workers x ${r.settings.slotsPerWorker} slots`);
  if (v !== undefined) {
    out.push(`tasks:      acknowledged ${v.acknowledged}; terminal ${list(v.terminalByState)}; not acknowledged ${v.unacknowledged.count} (in the store: ${v.unacknowledged.inStore}, ${list(v.unacknowledged.byState)})`);
    out.push(`by kind:    ${Object.entries(v.byKind).map(([k, x]) => `${k} ${x.acknowledged} (${list(x.byState)})`).join('; ')}`);
    out.push(`executions: ${v.executions.total} of ${v.executions.tasksExecuted} tasks; re-runs ${v.executions.reRuns} tasks (by design ${v.executions.reRunsByDesign}, by faults ${v.executions.reRunsByFaults} with ${v.executions.extraExecutionsByFaults} extra executions); most executions of one task ${v.executions.maxExecutionsOfOneTask}`);
    out.push(`final updates: accepted ${v.settles.accepted}, duplicate ${v.settles.duplicate}, rejected ${list(v.settles.rejectedByReason)}`);
  }
  out.push(`faults:     ${list(r.faults.counts)}`);
  for (const [kind, why] of Object.entries(r.faults.disabled)) out.push(`            ${kind} not injected: ${why}`);
  out.push(`config:     ${r.config.documents} documents written (${r.config.valid} valid, ${r.config.invalid} invalid); final version ${r.config.finalVersion}; in force at the end: ${r.dispatchers.map((d) => `${d.id} ${d.configVersion ?? '?'}`).join(', ')}`);
  out.push(`dispatchers: ${r.dispatchers.map((d) => `${d.id} started ${d.starts}x${d.failedStarts > 0 ? ` (${d.failedStarts} failed starts)` : ''}`).join(', ')}; worker processes ${r.workers.incarnations}, welcomes ${r.workers.welcomes}`);
  if (v !== undefined) {
    out.push(`LOST:       ${v.lost.count}${v.lost.count > 0 ? ` (not in the store: ${v.lost.notInStore.slice(0, 5).join(', ') || 'none'}; not terminal: ${v.lost.notTerminal.slice(0, 5).map((t) => `${t.taskId} ${t.state} attempt ${t.attempt}`).join(', ') || 'none'})` : ''}`);
    if (v.breaks.length === 0) out.push('invariants: all held');
    for (const b of v.breaks) out.push(`BROKEN:     ${b.invariant} x${b.count}: ${b.examples.join(' | ')}`);
  }
  for (const e of r.errors) out.push(`ERROR:      ${e}`);
  for (const n of r.notes) out.push(`note:       ${n}`);
  const d = r.durationsMs;
  out.push(`durations:  startup ${s(d.startup)}, chaos ${s(d.chaos)}, restore ${s(d.restore)}, drain ${s(d.drain)}, verify ${s(d.verify)}, teardown ${s(d.teardown)}; total ${s(d.total)} (budget ${s(d.budget)})`);
  out.push(`report:     ${file}`);
  console.log(out.join('\n'));
}
