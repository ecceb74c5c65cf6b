import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL } from '../support/postgres';
import { spawnNode, type Proc } from '../support/processes';

/**
 * The heatmap page in a real headless Chromium (Debian's, driven by
 * playwright-core), on the built `npm run demo`: three zones, the a↔c link
 * 10 ms round trip, a↔b 2 ms, b↔c 4 ms. With ZONAL_PG_URL the demo's three
 * dispatchers share one PostgreSQL schema and one page shows all of them;
 * without it each runs on SQLite and each page shows its own row, so the
 * 3×3 is checked across the three pages.
 *
 * Keeps a screenshot in this run's temp dir and, on PostgreSQL (one page
 * shows the whole 3×3), as docs/images/heatmap.png, the README's picture.
 */
const CHROMIUM = '/usr/bin/chromium';
const DEMO = path.resolve(__dirname, '..', '..', 'dist', 'demo', 'main.js');
const SCREENSHOT = path.resolve(__dirname, '..', '..', 'docs', 'images', 'heatmap.png');
const ZONES = ['a', 'b', 'c'];
const USE_PG = PG_URL !== undefined && PG_URL !== '';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface DemoPage {
  dispatcherId: string;
  zone: string;
  url: string;
}

/**
 * The few DOM members the page-side callbacks use: this project compiles
 * without the DOM lib, and the callbacks run in the page, not here.
 */
interface DomElement {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
}
interface PageGlobals {
  document: { querySelector(selector: string): DomElement | null; getElementById(id: string): DomElement | null };
  scrollTo(x: number, y: number): void;
  zonalHeatmap?: { lastResponse: Record<string, unknown> | null; cellCenter(from: string, to: string): { x: number; y: number } | null };
}

interface CellReading {
  from: string;
  to: string;
  count: number;
  valueMs: number | null;
  breach: boolean;
}

if (!existsSync(CHROMIUM)) console.warn(`${CHROMIUM} is missing: skipping the heatmap page browser test (.ci/run installs it: apt-get install chromium)`);

describe.skipIf(!existsSync(CHROMIUM))(`the heatmap page in headless Chromium, on npm run demo (${USE_PG ? 'PostgreSQL' : 'SQLite'})`, () => {
  const out = mkdtempSync(path.join(tmpdir(), 'zonal-heatmap-e2e-'));
  let demo: Proc | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let pages: DemoPage[] = [];
  let demoRoot = '';
  let schema = '';
  const pageErrors: string[] = [];

  beforeAll(async () => {
    // The browser first: its start takes both cores for a moment, which would show in the demo's first samples.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    demo = spawnNode(DEMO, ['--json', '--admin-port', '0', '--store', USE_PG ? 'postgres' : 'sqlite']);
    const starting = await demo.waitForEvent('demo-starting', 20_000);
    demoRoot = String(starting['root']);
    const ready = await demo.waitForEvent('demo-ready', 45_000);
    pages = ready['pages'] as DemoPage[];
    schema = String((ready['store'] as { schema?: string }).schema ?? '');
  }, 70_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    if (demo !== undefined && demo.child.exitCode === null && demo.child.signalCode === null) {
      demo.child.kill('SIGINT');
      const late = setTimeout(() => demo?.child.kill('SIGKILL'), 20_000);
      await demo.exited;
      clearTimeout(late);
    }
  }, 30_000);

  /** Every cell the page's table holds (the canvas draws the same response). */
  const readCells = (): Promise<CellReading[]> =>
    page.$$eval('td[data-testid="cell"]', (tds) =>
      tds.map((td) => {
        const d = (td as unknown as DomElement).dataset;
        return { from: d['from'] ?? '', to: d['to'] ?? '', count: Number(d['count']), valueMs: d['valueMs'] ? Number(d['valueMs']) : null, breach: d['breach'] === 'true' };
      }),
    );

  /** Waits until the page rendered an answer for `query` in which every (row, column) pair has at least `minCount` samples. */
  async function waitForCells(query: Record<string, string | number>, rows: string[], timeoutMs: number, minCount = 1): Promise<CellReading[]> {
    await page.waitForFunction(
      ({ query, rows, columns, minCount }) => {
        const g = globalThis as unknown as PageGlobals;
        const last = g.zonalHeatmap?.lastResponse;
        if (!last || Object.entries(query).some(([k, v]) => last[k] !== v)) return false;
        return rows.every((from) =>
          columns.every((to) => {
            const td = g.document.querySelector(`td[data-testid="cell"][data-from="${from}"][data-to="${to}"]`);
            return td !== null && Number(td.dataset['count']) >= minCount && td.dataset['valueMs'] !== '';
          }),
        );
      },
      { query, rows, columns: ZONES, minCount },
      { timeout: timeoutMs, polling: 200 },
    );
    return readCells();
  }

  const cell = (cells: CellReading[], from: string, to: string): CellReading => {
    const found = cells.find((c) => c.from === from && c.to === to);
    if (found === undefined) throw new Error(`no cell ${from}→${to} in ${JSON.stringify(cells)}`);
    return found;
  };

  /** The pages to read the whole 3×3 from, with the rows each shows. */
  const sources = (): { page: DemoPage; rows: string[] }[] => (USE_PG ? [{ page: pages[0]!, rows: ZONES }] : pages.map((p) => ({ page: p, rows: [p.zone] })));

  async function readMatrix(query: Record<string, string>, timeoutMs: number, minCount = 1): Promise<CellReading[]> {
    const all: CellReading[] = [];
    for (const { page: p, rows } of sources()) {
      const url = new URL(p.url);
      for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
      await page.goto(url.toString());
      const cells = await waitForCells(query, rows, timeoutMs, minCount);
      all.push(...cells.filter((c) => rows.includes(c.from)));
    }
    return all;
  }

  const table = (cells: CellReading[]): string =>
    ZONES.map((from) => `  ${from}: ` + ZONES.map((to) => { const c = cell(cells, from, to); return `→${to} ${c.valueMs?.toFixed(2)} ms (n=${c.count}${c.breach ? ', breach' : ''})`; }).join('  ')).join('\n');

  it('shows zones a, b and c as rows and columns, with samples in every cell of the 3×3', async () => {
    // Other dispatchers' rows arrive through PostgreSQL every 10 s (one sharing turn).
    const cells = await readMatrix({ metric: 'dispatch', quantile: 'p50' }, 40_000);
    const rowZones = await page.$$eval('th[data-testid="row-zone"]', (ths) => ths.map((th) => th.textContent));
    const columnZones = await page.$$eval('th[data-testid="column-zone"]', (ths) => ths.map((th) => th.textContent));
    expect(columnZones).toEqual(ZONES);
    if (USE_PG) expect(rowZones).toEqual(ZONES);
    for (const from of ZONES) for (const to of ZONES) expect(cell(cells, from, to).count, `${from}→${to}`).toBeGreaterThan(0);
    const dispatchers = await page.$$eval('[data-testid="dispatcher"]', (els) => els.map((el) => (el as unknown as DomElement).dataset['id']));
    // With PostgreSQL one page includes all three dispatchers; on SQLite each page only its own.
    expect(dispatchers.sort()).toEqual(USE_PG ? ['da', 'db', 'dc'] : [pages[pages.length - 1]!.dispatcherId]);
    console.log(`dispatch latency p50 by producer zone (rows) and worker zone:\n${table(cells)}`);
  }, 60_000);

  /**
   * Reads the matrix for `query` until `check` finds nothing wrong, each turn waiting for `stepCount` more samples
   * per cell: a median over a few dozen samples moves by several ms when other work shares the 2 cores, and more
   * samples settle it. Returns the last reading and what was still wrong when `timeoutMs` ran out.
   */
  async function readMatrixUntil(query: Record<string, string>, firstCount: number, stepCount: number, timeoutMs: number, check: (cells: CellReading[]) => string[]): Promise<{ cells: CellReading[]; wrong: string[] }> {
    const deadline = Date.now() + timeoutMs;
    let minCount = firstCount;
    for (;;) {
      const cells = await readMatrix(query, Math.max(1_000, deadline - Date.now()), minCount);
      const wrong = check(cells);
      if (wrong.length === 0 || Date.now() + 5_000 > deadline) return { cells, wrong };
      console.log(`${query['metric']} ${query['quantile']} at ${minCount}+ samples a cell, not yet: ${wrong.join('; ')}`);
      minCount = Math.min(...cells.map((c) => c.count)) + stepCount;
    }
  }

  it('shows the pair given 10 ms of round trip (a↔c) hotter than a same-zone cell, and marks its SLO breach', async () => {
    // The link adds 10 ms to a loopback round trip of about 1.5 ms (quiet machine: a↔c ~14 ms, same zone ~1.7 ms).
    // Other work on the 2 cores adds scheduling delay to every cell (same zone 19 ms with two busy loops beside
    // the demo), and part of the link's delay can hide inside it, so the test asks for most of the link's delay on
    // top of the same-zone cell: the cell a user reads is clearly hotter. 2 heartbeats/s per stream.
    const rttGap = (cells: CellReading[]): string[] =>
      (['a', 'c'] as const).flatMap((from) => {
        const to = from === 'a' ? 'c' : 'a';
        const slow = cell(cells, from, to).valueMs!;
        const same = cell(cells, from, from).valueMs!;
        return slow >= same + 6 ? [] : [`rtt ${from}→${to} ${slow.toFixed(2)} ms is not 6 ms above ${from}→${from} ${same.toFixed(2)} ms`];
      });
    const rtt = await readMatrixUntil({ metric: 'rtt', quantile: 'p50' }, 30, 20, 50_000, rttGap);
    console.log(`stream RTT p50 by dispatcher zone (rows) and worker zone:\n${table(rtt.cells)}`);
    expect(rtt.wrong).toEqual([]);

    // Dispatch latency = the store commit + the dispatcher-worker round trip: the link's delay on top, and more
    // than the 2 ms link to b.
    const dispatchGap = (cells: CellReading[]): string[] =>
      (['a', 'c'] as const).flatMap((from) => {
        const to = from === 'a' ? 'c' : 'a';
        const slow = cell(cells, from, to).valueMs!;
        const same = cell(cells, from, from).valueMs!;
        const viaB = cell(cells, from, 'b').valueMs!;
        return [
          ...(slow >= same + 6 ? [] : [`dispatch ${from}→${to} ${slow.toFixed(2)} ms is not 6 ms above ${from}→${from} ${same.toFixed(2)} ms`]),
          ...(slow > viaB ? [] : [`dispatch ${from}→${to} ${slow.toFixed(2)} ms is not above ${from}→b ${viaB.toFixed(2)} ms`]),
        ];
      });
    const dispatch = await readMatrixUntil({ metric: 'dispatch', quantile: 'p50' }, 200, 100, 30_000, dispatchGap);
    console.log(`dispatch latency p50 by producer zone (rows) and worker zone:\n${table(dispatch.cells)}`);
    expect(dispatch.wrong).toEqual([]);
    // The demo sets a p95 objective of 12 ms on a→c and c→a, which a 10 ms link cannot meet; the others have none they break.
    await page.goto(new URL(pages[0]!.url).origin + '/heatmap?metric=dispatch&quantile=p95');
    await page.waitForSelector('td[data-testid="cell"][data-from="a"][data-to="c"][data-breach="true"]', { state: 'attached', timeout: 20_000 });
    const cells = await readCells();
    expect(cell(cells, 'a', 'a').breach).toBe(false);
  }, 120_000);

  it('asks /api/heatmap again when metric, quantile or window change, and re-renders', async () => {
    await page.goto(new URL(pages[0]!.url).origin + '/heatmap');
    await waitForCells({ metric: 'dispatch', quantile: 'p99', window: '5m' }, [pages[0]!.zone], 20_000);
    const asked = (check: (q: URLSearchParams) => boolean) =>
      page.waitForRequest((r) => r.url().includes('/api/heatmap?') && check(new URL(r.url()).searchParams), { timeout: 5_000 });

    let request = asked((q) => q.get('metric') === 'rtt');
    await page.selectOption('#metric', 'rtt');
    await request;
    await waitForCells({ metric: 'rtt', rows: 'dispatcher' }, [pages[0]!.zone], 10_000);
    expect(await page.textContent('#matrix-heading')).toContain('stream RTT');
    expect(await page.isDisabled('#rows')).toBe(true);

    request = asked((q) => q.get('metric') === 'rtt' && q.get('quantile') === 'p95');
    await page.selectOption('#quantile', 'p95');
    await request;
    await waitForCells({ metric: 'rtt', quantile: 'p95' }, [pages[0]!.zone], 10_000);
    expect(await page.textContent('#matrix-heading')).toContain('p95');

    request = asked((q) => q.get('window') === '1m');
    await page.selectOption('#window', '1m');
    await request;
    await waitForCells({ metric: 'rtt', quantile: 'p95', window: '1m', windowMs: 60_000 }, [pages[0]!.zone], 10_000);
    expect(await page.textContent('#matrix-heading')).toContain('last 1 min');

    request = asked((q) => q.get('metric') === 'dispatch' && q.get('rows') === 'dispatcher');
    await page.selectOption('#metric', 'dispatch');
    expect(await page.isDisabled('#rows')).toBe(false);
    await page.selectOption('#rows', 'dispatcher');
    await request;
    await waitForCells({ metric: 'dispatch', rows: 'dispatcher' }, [pages[0]!.zone], 10_000);
    expect(await page.textContent('#matrix-heading')).toContain('dispatcher zone');
    // The page keeps its choice in its own URL, so a link shows the same view.
    expect(new URL(page.url()).searchParams.get('window')).toBe('1m');
  }, 60_000);

  it('clicking a cell of the matrix shows that pair over time, named in a heading; then keeps a screenshot', async () => {
    await page.goto(new URL(pages[0]!.url).origin + '/heatmap?metric=dispatch&quantile=p50&window=5m');
    await waitForCells({ metric: 'dispatch', quantile: 'p50' }, USE_PG ? ZONES : [pages[0]!.zone], 20_000);
    await page.locator('#matrix').scrollIntoViewIfNeeded();
    const at = await page.evaluate(() => (globalThis as unknown as PageGlobals).zonalHeatmap?.cellCenter('a', 'c') ?? null);
    expect(at).not.toBeNull();
    const request = page.waitForRequest((r) => {
      const q = new URL(r.url()).searchParams;
      return r.url().includes('/api/heatmap?') && q.get('from') === 'a' && q.get('to') === 'c';
    });
    await page.mouse.click(at!.x, at!.y);
    await request;
    await page.waitForSelector('#pair-section:not([hidden]) #pair canvas', { timeout: 10_000 });
    const heading = await page.textContent('#pair-heading');
    expect(heading).toMatch(/^a → c: dispatch latency/);
    await page.waitForFunction(() => Number((globalThis as unknown as PageGlobals).document.getElementById('pair-section')?.dataset['samples']) > 0, null, { timeout: 10_000 });
    console.log(`pair chart: "${heading}", ${await page.getAttribute('#pair-section', 'data-samples')} samples`);

    await page.evaluate(() => (globalThis as unknown as PageGlobals).scrollTo(0, 0));
    const kept = path.join(out, 'heatmap.png');
    await page.screenshot({ path: kept, fullPage: true });
    // The README's picture is one page showing all three dispatchers: only a run on PostgreSQL takes it.
    if (USE_PG) {
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      copyFileSync(kept, SCREENSHOT);
    }
    console.log(`screenshot: ${kept}${USE_PG ? `, copied to ${SCREENSHOT}` : ` (${SCREENSHOT} is taken only on PostgreSQL, where one page shows all three dispatchers)`}`);
    expect(pageErrors).toEqual([]);
  }, 40_000);

  it('Ctrl-C stops the demo: it exits 0 and leaves no temp dir or schema behind', async () => {
    await browser?.close();
    browser = undefined;
    const startedMs = Date.now();
    demo!.child.kill('SIGINT');
    const { code } = await demo!.exited;
    console.log(`demo stopped in ${Date.now() - startedMs} ms after SIGINT`);
    expect(code).toBe(0);
    expect(demo!.events.some((e) => e['event'] === 'demo-stopped')).toBe(true);
    expect(existsSync(demoRoot)).toBe(false);
    if (USE_PG) {
      const db = new Client({ connectionString: PG_URL });
      await db.connect();
      try {
        const { rows } = await db.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [schema]);
        expect(rows).toEqual([]);
      } finally {
        await db.end();
      }
    }
  }, 30_000);
});
