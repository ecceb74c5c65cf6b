import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseControlPlaneFile, watchControlPlaneFile, type ControlPlaneFile } from '../../../src/xds/static-endpoints';

const SRC = 'cp.json';
const parse = (doc: unknown): ControlPlaneFile => parseControlPlaneFile(typeof doc === 'string' ? doc : JSON.stringify(doc), SRC);

describe('parseControlPlaneFile: valid files', () => {
  it('reads endpoints and policy', () => {
    const file = parse({
      endpoints: [
        { id: 'disp-a', address: '10.0.1.5:50051', zone: 'a', region: 'r1' },
        { address: '[fd00::7]:7000', zone: 'b', region: 'r1', draining: true },
      ],
      policy: { lbPolicy: 'RING_HASH', localityWeights: { a: 2, b: 1000 }, outlierDetection: false },
    });
    expect(file).toEqual({
      endpoints: [
        { id: 'disp-a', ip: '10.0.1.5', port: 50051, zone: 'a', region: 'r1', draining: false },
        { id: 'static:[fd00::7]:7000', ip: 'fd00::7', port: 7000, zone: 'b', region: 'r1', draining: true },
      ],
      policy: { lbPolicy: 'RING_HASH', localityWeights: { a: 2, b: 1000 }, outlierDetection: false },
    });
  });

  it('defaults: the id comes from the address, no zone or region, not draining; an empty object is valid', () => {
    expect(parse({ endpoints: [{ address: '10.0.0.9:1' }] })).toEqual({
      endpoints: [{ id: 'static:10.0.0.9:1', ip: '10.0.0.9', port: 1, zone: '', region: '', draining: false }],
      policy: {},
    });
    expect(parse({})).toEqual({ endpoints: [], policy: {} });
  });

  it('policy keys that are absent stay absent (the control plane keeps its defaults)', () => {
    expect(parse({ policy: { outlierDetection: true } })).toEqual({ endpoints: [], policy: { outlierDetection: true } });
    expect(parse({ policy: { lbPolicy: 'ROUND_ROBIN' } })).toEqual({ endpoints: [], policy: { lbPolicy: 'ROUND_ROBIN' } });
  });
});

describe('parseControlPlaneFile: every invalid file is refused with an error naming the problem', () => {
  it.each<[string, string, string]>([
    ['not JSON', '{"endpoints": [', `${SRC}: not valid JSON (`],
    ['null', 'null', `${SRC}: must be a JSON object`],
    ['a number', '42', `${SRC}: must be a JSON object`],
    ['a string', '"x"', `${SRC}: must be a JSON object`],
    ['endpoints not an array', '{"endpoints": {}}', `${SRC}: "endpoints" must be an array`],
    ['an endpoint without address', '{"endpoints": [{"zone": "a"}]}', `${SRC}: endpoints[0].address must be "ip:port"`],
    ['a numeric address', '{"endpoints": [{"address": "10.0.0.1:1"}, {"address": 5}]}', `${SRC}: endpoints[1].address must be "ip:port"`],
    ['policy null', '{"policy": null}', `${SRC}: "policy" must be an object`],
    ['policy a string', '{"policy": "fast"}', `${SRC}: "policy" must be an object`],
    ['lbPolicy not a string', '{"policy": {"lbPolicy": 1}}', `${SRC}: policy.lbPolicy must be a string`],
    ['a weight of 0', '{"policy": {"localityWeights": {"a": 0}}}', `${SRC}: policy.localityWeights must map zones to numbers 1..1000`],
    ['a weight of 1001', '{"policy": {"localityWeights": {"a": 1001}}}', `${SRC}: policy.localityWeights must map zones to numbers 1..1000`],
    ['a weight as a string', '{"policy": {"localityWeights": {"a": "2"}}}', `${SRC}: policy.localityWeights must map zones to numbers 1..1000`],
    ['weights null', '{"policy": {"localityWeights": null}}', `${SRC}: policy.localityWeights must map zones to numbers 1..1000`],
    ['weights a number', '{"policy": {"localityWeights": 3}}', `${SRC}: policy.localityWeights must map zones to numbers 1..1000`],
  ])('%s', (_name, text, message) => {
    let error: unknown;
    try {
      parseControlPlaneFile(text, SRC);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message.startsWith(message)).toBe(true);
  });

  it.each(['localhost:50051', 'dispatcher.internal:50051'])('a host name (%s) is refused: endpoints must be IP literals', (address) => {
    expect(() => parse({ endpoints: [{ address }] })).toThrow(`"${address}": the host must be an IP literal (xDS clients reject names such as localhost)`);
  });

  it.each(['10.0.0.1', '10.0.0.1:0', '10.0.0.1:70000'])('an address without a valid port (%s) is refused', (address) => {
    expect(() => parse({ endpoints: [{ address }] })).toThrow(`"${address}" must be ip:port`);
  });

  // Regression (fixed): an address error from parseEndpointAddress is thrown as is, without the
  // file and the entry, unlike every other error of this parser.
  it('an address error names the file and the entry', () => {
    expect(() => parse({ endpoints: [{ address: '10.0.0.1:1' }, { address: 'localhost:50051' }] })).toThrow(/^cp\.json: endpoints\[1\]/);
  });

  // Regression (fixed): a top-level array passes the `typeof doc !== 'object'` check and is read as an empty file.
  it('a top-level array is refused', () => {
    expect(() => parseControlPlaneFile('[{"address": "10.0.0.1:1"}]', SRC)).toThrow(`${SRC}: must be a JSON object`);
  });

  // Regression (fixed): `entry.address` is read from null: a TypeError that names neither the file nor the entry.
  it('a null endpoint entry is refused with an error naming it', () => {
    expect(() => parse({ endpoints: [null] })).toThrow(/^cp\.json: endpoints\[0\]/);
  });

  // Regression (fixed): a zone or region of the wrong type silently becomes '' (the endpoint then
  // lands in the "other region" priority of every client) instead of being refused.
  it.each(['zone', 'region'])('a non-string %s is refused', (key) => {
    expect(() => parse({ endpoints: [{ address: '10.0.0.1:1', [key]: 5 }] })).toThrow(new RegExp(`endpoints\\[0\\]\\.${key}`));
  });

  // Regression (fixed): two entries with the same id are accepted; the registry keeps only the
  // last one, so one dispatcher silently disappears.
  it('two endpoints with the same id are refused', () => {
    expect(() =>
      parse({
        endpoints: [
          { id: 'x', address: '10.0.0.1:1', zone: 'a' },
          { id: 'x', address: '10.0.0.2:1', zone: 'b' },
        ],
      }),
    ).toThrow(/x/);
  });
});

describe('watchControlPlaneFile (initial load only: no waiting on the file watcher)', () => {
  let dir = '';
  const stops: (() => void)[] = [];
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  function file(text: string): string {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-cp-'));
    const p = path.join(dir, 'cp.json');
    fs.writeFileSync(p, text);
    return p;
  }

  it('applies a valid file at once', () => {
    const p = file(JSON.stringify({ endpoints: [{ address: '10.0.0.1:5', zone: 'a' }] }));
    const applied: ControlPlaneFile[] = [];
    const errors: Error[] = [];
    stops.push(watchControlPlaneFile(p, (f) => applied.push(f), (e) => errors.push(e)));
    expect(errors).toEqual([]);
    expect(applied).toEqual([{ endpoints: [{ id: 'static:10.0.0.1:5', ip: '10.0.0.1', port: 5, zone: 'a', region: '', draining: false }], policy: {} }]);
  });

  it('reports an invalid file and applies nothing', () => {
    const p = file('{"endpoints": [{"address": "localhost:5"}]}');
    const applied: ControlPlaneFile[] = [];
    const errors: Error[] = [];
    stops.push(watchControlPlaneFile(p, (f) => applied.push(f), (e) => errors.push(e)));
    expect(applied).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain('"localhost:5": the host must be an IP literal (xDS clients reject names such as localhost)');
  });

  it('reports a missing file', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-cp-'));
    const p = path.join(dir, 'absent.json');
    const errors: Error[] = [];
    stops.push(watchControlPlaneFile(p, () => undefined, (e) => errors.push(e)));
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message.startsWith(`cannot read ${p}: `)).toBe(true);
  });
});
