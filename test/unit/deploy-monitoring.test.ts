/**
 * deploy/prometheus/ (recording and alert rules) and deploy/grafana/ (the
 * dashboard) name metrics and labels as strings. This test checks that every
 * metric they name is one a dispatcher exports (the METRICS table, or
 * prom-client's default process metrics), that each label they group or
 * match on is one of that metric's labels, and that the SLO alert judges
 * with the built-in check's defaults. When promtool is installed (Debian's
 * `prometheus` package; .ci/run installs it) the rule files also go through
 * `promtool check rules` and their unit tests through `promtool test rules`.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compileServerOptions } from '../../src/app/server-options';
import { METRICS } from '../../src/telemetry/metric-names';

const root = path.resolve(__dirname, '..', '..');
const promDir = path.join(root, 'deploy/prometheus');
const testsDir = path.join(promDir, 'tests');
const dashboardFile = path.join(root, 'deploy/grafana/zonal-dashboard.json');

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  interval?: string;
  rules: Rule[];
}

const ruleFiles = readdirSync(promDir).filter((f) => f.endsWith('.rules.yml')).sort();
const groups: { file: string; group: RuleGroup }[] = ruleFiles.flatMap((file) =>
  (parse(readFileSync(path.join(promDir, file), 'utf8')) as { groups: RuleGroup[] }).groups.map((group) => ({ file, group })),
);
const rules = groups.flatMap(({ file, group }) => group.rules.map((rule) => ({ file, rule })));
// any: parsed JSON of Grafana's shape, read field by field below.
const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as any;

const METRIC_TOKEN = /\b(zonal_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+)\b/g;
const RECORDED_TOKEN = /\bzonal:[a-z0-9_:]+/g;
/** Labels every scraped series has (target labels) besides its own. */
const TARGET_LABELS = ['instance', 'job'];

interface Known {
  kind: string;
  /** undefined for default process metrics: their labels are not checked. */
  labelNames?: readonly string[];
}

async function knownMetrics(): Promise<Map<string, Known>> {
  const known = new Map<string, Known>();
  for (const def of Object.values(METRICS)) known.set(def.name, { kind: def.kind, labelNames: def.labelNames });
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  for (const m of await registry.getMetricsAsJSON()) known.set(m.name, { kind: String(m.type) });
  return known;
}

/** The metric a series name belongs to (histogram series carry _bucket, _sum or _count), with whether it is a _bucket series. */
function resolve(known: Map<string, Known>, token: string): { name: string; def: Known; bucket: boolean } | undefined {
  const def = known.get(token);
  if (def !== undefined) return { name: token, def, bucket: false };
  const m = /^(.+)_(bucket|sum|count)$/.exec(token);
  const base = m === null ? undefined : known.get(m[1]!);
  if (m === null || base === undefined || base.kind !== 'histogram') return undefined;
  return { name: m[1]!, def: base, bucket: m[2] === 'bucket' };
}

/** Drops the contents of double-quoted strings, so label values never look like label names. */
function unquote(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
}

/** The labels label_replace(…, "dst", …) calls in an expression write. */
function replacedLabels(expr: string): string[] {
  return [...expr.matchAll(/,\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*,\s*"[^"]*"\s*,\s*"[A-Za-z_][A-Za-z0-9_]*"\s*,\s*"[^"]*"\s*\)/g)].map((m) => m[1]!);
}

/** The text inside the parenthesis that opens at `open` (or closes at `close`, scanning back). */
function balanced(text: string, at: number, forward: boolean): string | undefined {
  let depth = 0;
  const step = forward ? 1 : -1;
  for (let i = at; i >= 0 && i < text.length; i += step) {
    const c = text[i];
    if (c === (forward ? '(' : ')')) depth++;
    else if (c === (forward ? ')' : '(')) {
      depth--;
      if (depth === 0) return forward ? text.slice(at + 1, i) : text.slice(i + 1, at);
    }
  }
  return undefined;
}

describe('deploy/prometheus and deploy/grafana name only what the dispatcher exports', async () => {
  const known = await knownMetrics();
  const recorded = new Map<string, Rule>();
  for (const { rule } of rules) if (rule.record !== undefined) recorded.set(rule.record, rule);

  /** Every label a recorded series or a metric can carry (over-approximated for recording rules: its inputs' labels). */
  const labelCache = new Map<string, Set<string>>();
  function labelsOf(token: string): Set<string> | undefined {
    const cached = labelCache.get(token);
    if (cached !== undefined) return cached;
    const rule = recorded.get(token);
    if (rule !== undefined) {
      const out = new Set<string>([...Object.keys(rule.labels ?? {}), ...replacedLabels(rule.expr)]);
      labelCache.set(token, out);
      for (const t of tokens(rule.expr)) for (const l of labelsOf(t) ?? []) out.add(l);
      return out;
    }
    const r = resolve(known, token);
    if (r === undefined || r.def.labelNames === undefined) return undefined;
    const out = new Set([...r.def.labelNames, ...TARGET_LABELS, ...(r.def.kind === 'histogram' ? ['le'] : [])]);
    labelCache.set(token, out);
    return out;
  }
  /**
   * Metric and recorded-series names in an expression. A template (an alert
   * annotation) holds its PromQL inside Go strings, so its quotes stay.
   */
  function tokens(expr: string, template = false): string[] {
    const text = template ? expr : unquote(expr);
    return [...new Set([...(text.match(METRIC_TOKEN) ?? []), ...(text.match(RECORDED_TOKEN) ?? [])])];
  }
  /** Labels any series in `expr` may carry; undefined when one of them is not checked (a default metric, or none at all). */
  function labelsIn(expr: string, template = false): Set<string> | undefined {
    const names = tokens(expr, template);
    if (names.length === 0) return undefined;
    const out = new Set<string>(replacedLabels(expr));
    for (const n of names) {
      const labels = labelsOf(n);
      if (labels === undefined) return undefined;
      for (const l of labels) out.add(l);
    }
    return out;
  }

  /** What each expression may name: metrics, recorded series, and labels of zonal_ metrics. */
  function problemsIn(where: string, expr: string, template = false): string[] {
    const problems: string[] = [];
    const text = template ? expr : unquote(expr);
    for (const token of new Set(text.match(METRIC_TOKEN) ?? [])) {
      if (recorded.has(token)) continue;
      if (resolve(known, token) === undefined) problems.push(`${where}: ${token} is not a metric the dispatcher exports`);
    }
    for (const token of new Set(text.match(RECORDED_TOKEN) ?? [])) {
      if (!recorded.has(token)) problems.push(`${where}: ${token} is not a recording rule of deploy/prometheus`);
    }
    // Matchers: metric{label=…, …}.
    for (const m of text.matchAll(/\b(zonal_[a-z0-9_]+|zonal:[a-z0-9_:]+)\s*\{([^}]*)\}/g)) {
      const labels = labelsOf(m[1]!);
      if (labels === undefined) continue;
      for (const l of m[2]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
        if (!labels.has(l[1]!)) problems.push(`${where}: ${m[1]} has no label ${l[1]}`);
      }
    }
    // Aggregations: by (…) / without (…), on the aggregated expression (prefix or postfix form).
    for (const m of text.matchAll(/\b(by|without)\s*\(([^)]*)\)/g)) {
      const after = m.index + m[0].length;
      const rest = text.slice(after);
      const lead = rest.length - rest.trimStart().length;
      let arg: string | undefined;
      if (rest.trimStart().startsWith('(')) arg = balanced(text, after + lead, true);
      else {
        const before = text.slice(0, m.index).trimEnd();
        if (before.endsWith(')')) arg = balanced(text, before.length - 1, false);
      }
      if (arg === undefined) {
        problems.push(`${where}: cannot find what "${m[0]}" aggregates`);
        continue;
      }
      const allowed = labelsIn(arg, template);
      if (allowed === undefined) continue;
      for (const l of m[2]!.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
        if (!allowed.has(l)) problems.push(`${where}: "${m[0]}" groups by ${l}, which no series of ${tokens(arg, template).join(', ')} has`);
      }
    }
    // Vector matching: on (…), ignoring (…), group_left (…), group_right (…), on the whole expression.
    const all = labelsIn(expr, template);
    if (all !== undefined) {
      for (const m of text.matchAll(/\b(on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
        for (const l of m[2]!.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
          if (!all.has(l)) problems.push(`${where}: "${m[0]}" names ${l}, which no series of the expression has`);
        }
      }
    }
    return problems;
  }

  it('the rule files exist and define rules', () => {
    expect(ruleFiles).toEqual(['zonal-alerts.rules.yml', 'zonal-recording.rules.yml']);
    expect(rules.filter(({ rule }) => rule.alert !== undefined).length).toBeGreaterThan(0);
    expect(recorded.size).toBeGreaterThan(0);
  });

  it('every metric and label in the rules (expressions and annotation queries) is exported', () => {
    const problems: string[] = [];
    for (const { file, rule } of rules) {
      const where = `${file} ${rule.record ?? rule.alert}`;
      problems.push(...problemsIn(where, rule.expr));
      for (const [key, text] of Object.entries(rule.annotations ?? {})) problems.push(...problemsIn(`${where} annotations.${key}`, text, true));
    }
    expect(problems).toEqual([]);
  });

  it('recording rules are named zonal:<metric>:<operation>; alerts say what happened and what to do', () => {
    for (const name of recorded.keys()) expect(name).toMatch(/^zonal:[a-z0-9_]+:[a-z0-9_]+$/);
    for (const { rule } of rules.filter(({ rule }) => rule.alert !== undefined)) {
      expect(rule.alert).toMatch(/^Zonal[A-Za-z0-9]+$/);
      expect(['critical', 'warning', 'info']).toContain(rule.labels?.['severity']);
      expect(rule.annotations?.['summary'], rule.alert).toBeTruthy();
      expect((rule.annotations?.['description'] ?? '').length, rule.alert).toBeGreaterThan(80);
    }
  });

  it('the SLO alert judges as the built-in check does by default: every 10 s, a 5-minute window, 20 samples, p99 and p95', () => {
    const defaults = compileServerOptions({});
    const slo = groups.filter(({ group }) => group.rules.some((r) => r.alert === 'ZonalDispatchSloBreach'));
    expect(slo).toHaveLength(1);
    const group = slo[0]!.group;
    expect(group.interval).toBe(`${defaults.sloIntervalMs / 1000}s`);
    const breach = group.rules.filter((r) => r.alert === 'ZonalDispatchSloBreach');
    expect(breach.map((r) => r.labels?.['quantile']).sort()).toEqual(['p95', 'p99']);
    for (const rule of breach) {
      const q = rule.labels?.['quantile'] === 'p99' ? '0.99' : '0.95';
      const expr = rule.expr.replace(/\s+/g, ' ');
      expect(rule.for ?? '0s').toBe('0s');
      expect(expr).toContain(`histogram_quantile(${q}, sum by (le, producer_zone, worker_zone) (rate(zonal_task_dispatch_seconds_bucket[${defaults.sloWindowMs / 60_000}m])))`);
      expect(expr).toContain(`zonal_slo_${rule.labels?.['quantile']}_threshold_seconds`);
      expect(expr).toContain(`sum by (producer_zone, worker_zone) (increase(zonal_task_dispatch_seconds_count[${defaults.sloWindowMs / 60_000}m])) >= ${defaults.sloMinSamples}`);
    }
  });

  it('every metric and label in the Grafana dashboard is exported', () => {
    const problems: string[] = [];
    const exprs: { where: string; expr: string; legend?: string }[] = [];
    // Targets (panels, rows, repeated panels) and annotation queries: every "expr" anywhere.
    const walk = (node: unknown, where: string): void => {
      if (Array.isArray(node)) node.forEach((n, i) => walk(n, `${where}[${i}]`));
      else if (node !== null && typeof node === 'object') {
        const o = node as Record<string, unknown>;
        const title = typeof o['title'] === 'string' ? `${where} "${o['title']}"` : where;
        if (typeof o['expr'] === 'string') exprs.push({ where: title, expr: o['expr'], ...(typeof o['legendFormat'] === 'string' ? { legend: o['legendFormat'] } : {}) });
        for (const [k, v] of Object.entries(o)) if (k !== 'templating') walk(v, title);
      }
    };
    walk(dashboard, 'dashboard');
    expect(exprs.length).toBeGreaterThan(10);
    for (const { where, expr, legend } of exprs) {
      problems.push(...problemsIn(where, expr));
      // A legend names labels the query's series carry.
      const allowed = labelsIn(expr);
      for (const m of (legend ?? '').matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) {
        if (allowed !== undefined && !allowed.has(m[1]!)) problems.push(`${where}: legend {{${m[1]}}} is no label of ${expr}`);
      }
    }
    // Template variables: label_values(metric, label).
    for (const v of dashboard.templating.list as { name: string; type: string; definition?: string; query?: string | { query?: string } }[]) {
      if (v.type !== 'query') continue;
      const query = typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
      const m = /^label_values\(\s*([a-z0-9_:]+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$/.exec(query);
      if (m === null) {
        problems.push(`variable ${v.name}: expected label_values(metric, label), got ${query}`);
        continue;
      }
      problems.push(...problemsIn(`variable ${v.name}`, query));
      if (!labelsOf(m[1]!)?.has(m[2]!)) problems.push(`variable ${v.name}: ${m[1]} has no label ${m[2]}`);
    }
    expect(problems).toEqual([]);
  });

  it('the dashboard: a ${datasource} Prometheus variable used by every panel, zone variables, heatmaps of the latency buckets', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const vars = dashboard.templating.list as { name: string; type: string; query: unknown }[];
    expect(vars.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(vars.map((v) => v.name)).toEqual(expect.arrayContaining(['producer_zone', 'worker_zone', 'dispatcher_zone', 'queue']));
    // any: parsed JSON, as above.
    const panels = dashboard.panels as any[];
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels.filter((p) => p.type !== 'row')) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const t of p.targets) expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
    const heatmaps = panels.filter((p) => p.type === 'heatmap');
    const bucketed = (metric: string) => heatmaps.filter((p) => p.targets.some((t: { expr: string; format: string }) => t.format === 'heatmap' && t.expr.includes(`${metric}_bucket`) && /sum by \(le\)/.test(t.expr)));
    expect(bucketed('zonal_task_dispatch_seconds').length).toBeGreaterThanOrEqual(1);
    expect(bucketed('zonal_stream_rtt_seconds').length).toBeGreaterThanOrEqual(1);
    for (const p of heatmaps) {
      expect(p.options.calculate, p.title).toBe(false);
      expect(p.options.yAxis.unit, p.title).toBe('s');
    }
    const exprs = JSON.stringify(panels);
    for (const metric of ['zonal_slo_breach', 'zonal_queue_ready_tasks', 'zonal_tasks_completed_total', 'zonal_slo_p99_threshold_seconds']) expect(exprs).toContain(metric);
  });
});

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const hasPromtool = promtool.error === undefined && promtool.status === 0;
if (!hasPromtool) console.warn('promtool is not installed: skipping `promtool check rules` and `promtool test rules` on deploy/prometheus (.ci/run installs it: apt-get install prometheus)');

describe.skipIf(!hasPromtool)('promtool on deploy/prometheus', () => {
  const run = (args: string[]): { status: number | null; output: string } => {
    const r = spawnSync('promtool', args, { cwd: root, encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  };

  it('promtool check rules accepts every rule file', () => {
    const r = run(['check', 'rules', ...ruleFiles.map((f) => path.join('deploy/prometheus', f))]);
    expect(r.output).not.toMatch(/FAILED/);
    expect(r.status, r.output).toBe(0);
  });

  it('promtool check config accepts the example configuration and its rule files', () => {
    const r = run(['check', 'config', 'deploy/prometheus/prometheus.example.yml']);
    expect(r.status, r.output).toBe(0);
  });

  it('promtool test rules: the alert and recording rules pass their unit tests', () => {
    const tests = readdirSync(testsDir).filter((f) => f.endsWith('.test.yml')).sort();
    expect(tests).toEqual(['zonal-alerts.test.yml', 'zonal-recording.test.yml']);
    const r = run(['test', 'rules', ...tests.map((f) => path.join('deploy/prometheus/tests', f))]);
    expect(r.status, r.output).toBe(0);
  });
});
