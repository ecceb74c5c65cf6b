import { it } from 'vitest';
import { compileRuntimeDocument, DEFAULT_BASELINE } from '../../../src/config/runtime-schema';
it('x', () => {
  for (const v of [{}, {version:0},{version:1.5},{version:'1'},{version:1, foo:1},{version:1, keepalive:{lbIdleWindowMS:1}},{version:1, keepalive:{minIntervalMs:'1'}},{version:1,publishedAt:'2026-11-22T03:00:00'},{version:1,publishedAt:'2026-11-22T03:00:00+02:00'},{version:1,logLevel:'verbose'},{version:1,slo:{pairs:{'a->b':{p99Ms:1, x:1}}}}, {version:1, call:{backoff:{jit:1}}}, [1], null, 'version: 1']) {
    try { const s = compileRuntimeDocument(v, DEFAULT_BASELINE); console.log('OK', JSON.stringify(v), s.publishedAtMs); } catch (e) { console.log(JSON.stringify(v), '=>', (e as Error).name, (e as Error).message); }
  }
});
