import { describe, expect, it } from 'vitest';
import type { DispatcherEndpoint, EndpointHealth } from '../../../src/xds/endpoints';
import { prioritizeLocalities, type PrioritizedLocality } from '../../../src/xds/locality-priority';

function ep(id: string, zone: string, region: string, health: EndpointHealth = 'HEALTHY'): DispatcherEndpoint {
  return { id, ip: `10.0.0.${id.length}`, port: 50051, zone, region, health };
}

/** [region/zone, priority, weight, endpoint ids] per locality, in output order. */
function summary(localities: PrioritizedLocality[]): [string, number, number, string[]][] {
  return localities.map((l) => [`${l.region}/${l.zone}`, l.priority, l.weight, l.endpoints.map((e) => e.id)]);
}

const MIXED = [ep('c1', 'c', 'r2'), ep('b1', 'b', 'r1'), ep('a2', 'a', 'r1'), ep('a1', 'a', 'r1'), ep('d1', 'd', 'r1')];

describe('prioritizeLocalities', () => {
  it('own zone 0, other zones of the region 1, other regions 2', () => {
    expect(summary(prioritizeLocalities(MIXED, { zone: 'a', region: 'r1' }))).toEqual([
      ['r1/a', 0, 1, ['a1', 'a2']],
      ['r1/b', 1, 1, ['b1']],
      ['r1/d', 1, 1, ['d1']],
      ['r2/c', 2, 1, ['c1']],
    ]);
  });

  it('a client in another region sees its own zone first, then its region, then the rest', () => {
    expect(summary(prioritizeLocalities(MIXED, { zone: 'c', region: 'r2' }))).toEqual([
      ['r2/c', 0, 1, ['c1']],
      ['r1/a', 1, 1, ['a1', 'a2']],
      ['r1/b', 1, 1, ['b1']],
      ['r1/d', 1, 1, ['d1']],
    ]);
  });

  it('a client that names only its zone still gets that zone first', () => {
    expect(summary(prioritizeLocalities(MIXED, { zone: 'a', region: '' }))).toEqual([
      ['r1/a', 0, 1, ['a1', 'a2']],
      ['r1/b', 1, 1, ['b1']],
      ['r1/d', 1, 1, ['d1']],
      ['r2/c', 1, 1, ['c1']],
    ]);
  });

  it('leaves empty levels out: priorities stay contiguous from 0', () => {
    // No dispatcher in the client's zone: its region becomes 0, other regions 1.
    expect(summary(prioritizeLocalities(MIXED, { zone: 'z', region: 'r1' }))).toEqual([
      ['r1/a', 0, 1, ['a1', 'a2']],
      ['r1/b', 0, 1, ['b1']],
      ['r1/d', 0, 1, ['d1']],
      ['r2/c', 1, 1, ['c1']],
    ]);
    // Own zone and other regions, nothing else in the region: 0 and 1, not 0 and 2.
    expect(summary(prioritizeLocalities([ep('a1', 'a', 'r1'), ep('c1', 'c', 'r2')], { zone: 'a', region: 'r1' }))).toEqual([
      ['r1/a', 0, 1, ['a1']],
      ['r2/c', 1, 1, ['c1']],
    ]);
    // Only other regions: everything is 0.
    expect(summary(prioritizeLocalities([ep('c1', 'c', 'r2'), ep('e1', 'e', 'r3')], { zone: 'a', region: 'r1' }))).toEqual([
      ['r2/c', 0, 1, ['c1']],
      ['r3/e', 0, 1, ['e1']],
    ]);
  });

  it('a client without zone and region sees one level, ordered by region then zone', () => {
    expect(summary(prioritizeLocalities(MIXED, { zone: '', region: '' }))).toEqual([
      ['r1/a', 0, 1, ['a1', 'a2']],
      ['r1/b', 0, 1, ['b1']],
      ['r1/d', 0, 1, ['d1']],
      ['r2/c', 0, 1, ['c1']],
    ]);
  });

  it('a client with only a region prefers that region', () => {
    expect(summary(prioritizeLocalities(MIXED, { zone: '', region: 'r2' }))).toEqual([
      ['r2/c', 0, 1, ['c1']],
      ['r1/a', 1, 1, ['a1', 'a2']],
      ['r1/b', 1, 1, ['b1']],
      ['r1/d', 1, 1, ['d1']],
    ]);
  });

  it('a locality is (region, zone): the same zone name in another region is another region', () => {
    const out = prioritizeLocalities([ep('x1', 'a', 'r2'), ep('a1', 'a', 'r1')], { zone: 'a', region: 'r1' });
    expect(summary(out)).toEqual([
      ['r1/a', 0, 1, ['a1']],
      ['r2/a', 1, 1, ['x1']],
    ]);
  });

  it('keeps every endpoint of a locality, whatever its health (the client filters by health_status)', () => {
    const out = prioritizeLocalities([ep('a1', 'a', 'r1', 'UNHEALTHY'), ep('a2', 'a', 'r1', 'DRAINING'), ep('a3', 'a', 'r1', 'UNKNOWN')], { zone: 'a', region: 'r1' });
    expect(out).toHaveLength(1);
    expect(out[0]!.endpoints.map((e) => [e.id, e.health])).toEqual([
      ['a1', 'UNHEALTHY'],
      ['a2', 'DRAINING'],
      ['a3', 'UNKNOWN'],
    ]);
  });

  it('weights: configured per zone, default 1, never below 1, rounded to whole numbers', () => {
    const endpoints = [ep('a1', 'a', 'r1'), ep('b1', 'b', 'r1'), ep('c1', 'c', 'r2'), ep('d1', 'd', 'r1'), ep('e1', 'e', 'r1')];
    const out = prioritizeLocalities(endpoints, { zone: 'a', region: 'r1' }, { a: 3, b: 0, c: 2.6, d: -5 });
    expect(out.map((l) => [l.zone, l.weight])).toEqual([
      ['a', 3],
      ['b', 1],
      ['d', 1],
      ['e', 1],
      ['c', 3],
    ]);
    for (const l of out) expect(Number.isInteger(l.weight) && l.weight >= 1).toBe(true);
  });

  it('is pure and order-independent: shuffled input gives the same output, and the input is not changed', () => {
    const input = [...MIXED];
    const before = JSON.stringify(input);
    const a = prioritizeLocalities(input, { zone: 'b', region: 'r1' }, { a: 2 });
    const b = prioritizeLocalities([...MIXED].reverse(), { zone: 'b', region: 'r1' }, { a: 2 });
    expect(b).toEqual(a);
    expect(JSON.stringify(input)).toBe(before);
    expect(summary(a)).toEqual([
      ['r1/b', 0, 1, ['b1']],
      ['r1/a', 1, 2, ['a1', 'a2']],
      ['r1/d', 1, 1, ['d1']],
      ['r2/c', 2, 1, ['c1']],
    ]);
  });

  it('no endpoints: no localities', () => {
    expect(prioritizeLocalities([], { zone: 'a', region: 'r1' })).toEqual([]);
  });
});
