import fc from 'fast-check';

/**
 * fast-check settings shared by the property tests (test/unit/core-properties.test.ts,
 * test/store/*-properties.test.ts). Each test gives its default numRuns,
 * tuned so the whole set stays under a minute on a 2-core machine.
 *
 * - ZONAL_PROPERTY_RUNS=<n>: run n cases instead (e.g. 2000 before a release).
 * - ZONAL_PROPERTY_SEED=<seed> and ZONAL_PROPERTY_PATH=<path>: replay the
 *   counterexample fast-check printed on failure ("seed: …, path: …").
 * - ZONAL_PROPERTY_TRACE=1 (core): print every step of what runs, with the
 *   tasks as the store holds them; best with a replay.
 * - ZONAL_PROPERTY_COVERAGE=1: print what the runs reached (each file also
 *   fails if the runs stopped reaching an ending, a refusal, a sweep…).
 *
 * fast-check itself prints the seed, the path and the shrunk counterexample
 * when a property fails.
 */
export function propertyParameters<T>(defaultRuns: number, budgetMs: number): fc.Parameters<T> {
  const params: fc.Parameters<T> = {
    numRuns: positiveInt('ZONAL_PROPERTY_RUNS') ?? defaultRuns,
    // Bounds the whole check, shrinking included, below the test's timeout: a failure is then
    // reported with the counterexample shrunk so far (its seed and path resume the shrinking).
    plugins: [fc.interruptAfterTimeLimit(budgetMs)],
  };
  const seed = process.env['ZONAL_PROPERTY_SEED'];
  if (seed !== undefined && seed !== '') {
    params.seed = Number(seed);
    const path = process.env['ZONAL_PROPERTY_PATH'];
    if (path !== undefined && path !== '') params.path = path;
  }
  return params;
}

/** The runs in force: for a test timeout that grows with them. */
export function propertyRuns(defaultRuns: number): number {
  return positiveInt('ZONAL_PROPERTY_RUNS') ?? defaultRuns;
}

function positiveInt(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got "${text}"`);
  return value;
}

/**
 * How long a property may run, shrinking included: ample for `runs` cases of
 * about `msPerRun` each on a slow machine. The test's timeout is this plus
 * TIMEOUT_MARGIN_MS, so fast-check, not the test runner, reports a failure.
 */
export function propertyBudgetMs(runs: number, msPerRun: number): number {
  return Math.max(45_000, runs * msPerRun * 4);
}

export const TIMEOUT_MARGIN_MS = 15_000;
