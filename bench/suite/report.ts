/**
 * What every scenario of `npm run bench` returns: figures (each beside the
 * peer or baseline it is compared with, measured in the same run) and the
 * issue's targets, each judged PASS or FAIL from those figures.
 */
import * as path from 'node:path';

export interface Figure {
  /** What was measured, e.g. "tasks/s, 64 in flight, SQLite NORMAL". */
  name: string;
  value: number;
  unit: string;
  /** The figure it is compared with in the same run (BullMQ, raw grpc-js, the steady p50 ...). */
  versus?: { name: string; value: number };
}

export interface TargetCheck {
  /** The numbering: "1a", "3", ... */
  id: string;
  text: string;
  measured: number;
  comparison: '<=' | '>=' | '<';
  limit: number;
  unit: string;
  pass: boolean;
}

export interface ScenarioReport {
  scenario: string;
  figures: Figure[];
  targets: TargetCheck[];
  /** Anything a reader needs to trust the figures: shapes, counts, what was skipped and why. */
  notes: string[];
}

export interface SuiteOptions {
  /** --quick: small shapes so the whole suite runs in under 2 minutes (CI); the targets are still printed. */
  quick: boolean;
  /** The repository root (dist/ and dist-bench/ are under it). */
  root: string;
  /** The Zonal CLI and SDK builds under test (dist/cli/main.js, dist/index.js). */
  cli: string;
  sdk: string;
  pgUrl: string;
  redisUrl: string;
  /**
   * Figures one scenario measured that another compares with, in the same
   * run (the peer's runs, the measured maximum): keyed by what they are.
   */
  shared?: Map<string, unknown>;
}

export type Scenario = (options: SuiteOptions) => Promise<ScenarioReport>;

export function check(id: string, text: string, measured: number, comparison: TargetCheck['comparison'], limit: number, unit: string): TargetCheck {
  const pass = Number.isFinite(measured) && (comparison === '<=' ? measured <= limit : comparison === '<' ? measured < limit : measured >= limit);
  return { id, text, measured, comparison, limit, unit, pass };
}

/** A compiled bench fixture next to the caller (dist-bench/bench/...). */
export function benchFile(options: SuiteOptions, relative: string): string {
  return path.join(options.root, 'dist-bench', 'bench', relative);
}
