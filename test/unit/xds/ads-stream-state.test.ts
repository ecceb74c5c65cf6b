import { describe, expect, it } from 'vitest';
import { AdsStreamState, type Push } from '../../../src/xds/ads-stream-state';
import type { DispatcherEndpoint } from '../../../src/xds/endpoints';
import { decodeDiscoveryRequest, decodeDiscoveryResponse, encodeDiscoveryRequest, encodeDiscoveryResponse, type DiscoveryRequest } from '../../../src/xds/envoy-protos';
import { CDS_TYPE_URL, EDS_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL } from '../../../src/xds/resources';
import { buildSnapshot, DEFAULT_POLICY, versionOf, type Resource, type Snapshot } from '../../../src/xds/snapshot';

const CLUSTER = 'zonal-dispatchers';
const ZONE_A = { zone: 'a', region: 'r1' };

function endpoints(healthA: DispatcherEndpoint['health'] = 'HEALTHY'): DispatcherEndpoint[] {
  return [
    { id: 'a1', ip: '10.0.1.1', port: 50051, zone: 'a', region: 'r1', health: healthA },
    { id: 'b1', ip: '10.0.2.1', port: 50051, zone: 'b', region: 'r1', health: 'HEALTHY' },
  ];
}

/** Three distinct EDS contents for zone a. */
const S1 = buildSnapshot(endpoints('HEALTHY'), ZONE_A, DEFAULT_POLICY);
const S2 = buildSnapshot(endpoints('UNHEALTHY'), ZONE_A, DEFAULT_POLICY);
const S3 = buildSnapshot(endpoints('DRAINING'), ZONE_A, DEFAULT_POLICY);

const eds = (s: Snapshot): ReadonlyMap<string, Resource> => s.get(EDS_TYPE_URL)!;
const edsVersion = (s: Snapshot): string => versionOf([...eds(s).values()]);

function request(typeUrl: string, names: string[], version = '', nonce = '', error?: DiscoveryRequest['error_detail']): DiscoveryRequest {
  return { type_url: typeUrl, resource_names: names, version_info: version, response_nonce: nonce, ...(error !== undefined ? { error_detail: error } : {}) };
}

const ack = (p: Push, names = [CLUSTER]): DiscoveryRequest => request(p.typeUrl, names, p.version, p.nonce);
const nack = (p: Push, lastGood: string, message = 'bad resource', names = [CLUSTER]): DiscoveryRequest =>
  request(p.typeUrl, names, lastGood, p.nonce, { code: 3, message });

/** Subscribes to the cluster's EDS and returns the first push (epoch 1). */
function subscribed(): { state: AdsStreamState; first: Push } {
  const state = new AdsStreamState();
  expect(state.onRequest(request(EDS_TYPE_URL, [CLUSTER]))).toEqual({ kind: 'subscribe', typeUrl: EDS_TYPE_URL });
  const first = state.planPush(EDS_TYPE_URL, eds(S1), 1);
  expect(first).toBeDefined();
  return { state, first: first! };
}

function typeState(state: AdsStreamState, typeUrl = EDS_TYPE_URL): { [k: string]: unknown } {
  const t = state.types.get(typeUrl)!;
  return { ...t, names: [...t.names] };
}

describe('subscribe and ACK', () => {
  it('an initial subscription gets a push with the content version and a nonce', () => {
    const { state, first } = subscribed();
    expect(first).toEqual({ typeUrl: EDS_TYPE_URL, version: edsVersion(S1), nonce: '1', resources: [eds(S1).get(CLUSTER)] });
    expect(typeState(state)).toMatchObject({
      names: [CLUSTER],
      wildcard: false,
      sentVersion: edsVersion(S1),
      sentNonce: '1',
      ackedVersion: '',
      nackedVersion: '',
      lastNack: '',
      acks: 0,
      nacks: 0,
      sentEpoch: 1,
    });
  });

  it('an ACK records the accepted version; nothing is pushed again while the content is unchanged', () => {
    const { state, first } = subscribed();
    expect(state.onRequest(ack(first))).toEqual({ kind: 'ack', typeUrl: EDS_TYPE_URL, version: edsVersion(S1) });
    expect(typeState(state)).toMatchObject({ ackedVersion: edsVersion(S1), acks: 1, nacks: 0 });
    expect(state.planPush(EDS_TYPE_URL, eds(S1), 1)).toBeUndefined();
    // A rebuilt but identical snapshot (a new epoch) is not pushed either.
    expect(state.planPush(EDS_TYPE_URL, eds(buildSnapshot(endpoints(), ZONE_A, DEFAULT_POLICY)), 2)).toBeUndefined();
    expect(typeState(state)).toMatchObject({ sentNonce: '1', sentVersion: edsVersion(S1) });
  });

  it('a content change is pushed with a new version and nonce; the acked version moves only on its ACK', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    const second = state.planPush(EDS_TYPE_URL, eds(S2), 2)!;
    expect(second).toEqual({ typeUrl: EDS_TYPE_URL, version: edsVersion(S2), nonce: '2', resources: [eds(S2).get(CLUSTER)] });
    expect(typeState(state)).toMatchObject({ ackedVersion: edsVersion(S1), sentVersion: edsVersion(S2) });
    state.onRequest(ack(second));
    expect(typeState(state)).toMatchObject({ ackedVersion: edsVersion(S2), acks: 2 });
  });

  it('state is kept per type: nonces are unique on the stream, versions and ACKs are per type', () => {
    const state = new AdsStreamState();
    state.onRequest(request(LDS_TYPE_URL, ['zonal']));
    const lds = state.planPush(LDS_TYPE_URL, S1.get(LDS_TYPE_URL), 1)!;
    state.onRequest(request(CDS_TYPE_URL, [CLUSTER]));
    const cds = state.planPush(CDS_TYPE_URL, S1.get(CDS_TYPE_URL), 1)!;
    expect([lds.nonce, cds.nonce]).toEqual(['1', '2']);
    expect(lds.version).toBe(versionOf([...S1.get(LDS_TYPE_URL)!.values()]));
    expect(cds.version).toBe(versionOf([...S1.get(CDS_TYPE_URL)!.values()]));
    // The LDS nonce is stale for CDS.
    expect(state.onRequest(request(CDS_TYPE_URL, [CLUSTER], lds.version, lds.nonce)).kind).toBe('stale');
    expect(state.onRequest(request(LDS_TYPE_URL, ['zonal'], lds.version, lds.nonce)).kind).toBe('ack');
    expect(typeState(state, LDS_TYPE_URL)).toMatchObject({ ackedVersion: lds.version, acks: 1 });
    expect(typeState(state, CDS_TYPE_URL)).toMatchObject({ ackedVersion: '', acks: 0 });
  });

  it('separate streams keep separate state', () => {
    const one = subscribed();
    const two = subscribed();
    one.state.onRequest(ack(one.first));
    expect(typeState(one.state)).toMatchObject({ ackedVersion: edsVersion(S1) });
    expect(typeState(two.state)).toMatchObject({ ackedVersion: '', acks: 0 });
  });
});

describe('NACK', () => {
  it('is counted, records error_detail, and leaves the last good version as the acked one', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    const second = state.planPush(EDS_TYPE_URL, eds(S2), 2)!;
    expect(state.onRequest(nack(second, first.version, 'endpoint address is not an IP'))).toEqual({
      kind: 'nack',
      typeUrl: EDS_TYPE_URL,
      version: edsVersion(S2),
      error: 'endpoint address is not an IP',
    });
    expect(typeState(state)).toMatchObject({
      ackedVersion: edsVersion(S1),
      sentVersion: edsVersion(S2),
      nackedVersion: edsVersion(S2),
      lastNack: 'endpoint address is not an IP',
      acks: 1,
      nacks: 1,
    });
  });

  it('a NACK of the very first push leaves no acked version', () => {
    const { state, first } = subscribed();
    expect(state.onRequest(nack(first, '')).kind).toBe('nack');
    expect(typeState(state)).toMatchObject({ ackedVersion: '', nackedVersion: first.version, nacks: 1, acks: 0 });
  });

  it('an error_detail with only a code still counts as a NACK', () => {
    const { state, first } = subscribed();
    expect(state.onRequest(request(EDS_TYPE_URL, [CLUSTER], '', first.nonce, { code: 13 }))).toEqual({ kind: 'nack', typeUrl: EDS_TYPE_URL, version: first.version, error: 'code 13' });
    expect(typeState(state)).toMatchObject({ lastNack: 'code 13', nacks: 1 });
  });

  it('the NACKed version is not pushed again; a different content is', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    const second = state.planPush(EDS_TYPE_URL, eds(S2), 2)!;
    state.onRequest(nack(second, first.version));
    expect(state.planPush(EDS_TYPE_URL, eds(S2), 2)).toBeUndefined();
    expect(state.planPush(EDS_TYPE_URL, eds(buildSnapshot(endpoints('UNHEALTHY'), ZONE_A, DEFAULT_POLICY)), 3)).toBeUndefined();
    const third = state.planPush(EDS_TYPE_URL, eds(S3), 4)!;
    expect(third).toMatchObject({ version: edsVersion(S3), nonce: '3' });
    state.onRequest(ack(third));
    expect(typeState(state)).toMatchObject({ ackedVersion: edsVersion(S3), nacks: 1, acks: 2 });
    // Even after an accepted version in between, the rejected content is not sent again.
    expect(state.planPush(EDS_TYPE_URL, eds(S2), 5)).toBeUndefined();
  });

  it('going back to the last good content after a NACK is pushed (the client is told where it stands)', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    const second = state.planPush(EDS_TYPE_URL, eds(S2), 2)!;
    state.onRequest(nack(second, first.version));
    expect(state.planPush(EDS_TYPE_URL, eds(S1), 3)).toMatchObject({ version: edsVersion(S1), nonce: '3' });
  });

  // Regression (fixed): only the last NACKed version is remembered (`nackedVersion` is one
  // string), so after two NACKs in a row the first rejected content is pushed
  // again, although the invariant says a NACKed version is never pushed again.
  it('no NACKed version is pushed again, even after another NACK', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    const second = state.planPush(EDS_TYPE_URL, eds(S2), 2)!;
    state.onRequest(nack(second, first.version));
    const third = state.planPush(EDS_TYPE_URL, eds(S3), 3)!;
    state.onRequest(nack(third, first.version));
    expect(state.planPush(EDS_TYPE_URL, eds(S2), 4)).toBeUndefined();
  });
});

describe('stale nonce', () => {
  it('an ACK or NACK naming an old nonce changes nothing', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    const second = state.planPush(EDS_TYPE_URL, eds(S2), 2)!;
    const before = typeState(state);
    expect(state.onRequest(ack(first))).toEqual({ kind: 'stale', typeUrl: EDS_TYPE_URL });
    expect(state.onRequest(nack(first, ''))).toEqual({ kind: 'stale', typeUrl: EDS_TYPE_URL });
    expect(state.onRequest(request(EDS_TYPE_URL, [CLUSTER], second.version, 'no-such-nonce'))).toEqual({ kind: 'stale', typeUrl: EDS_TYPE_URL });
    expect(typeState(state)).toEqual(before);
    // The outstanding push can still be acknowledged.
    expect(state.onRequest(ack(second)).kind).toBe('ack');
  });

  it('... except the subscription, which a stale request does change', () => {
    const state = new AdsStreamState();
    state.onRequest(request(RDS_TYPE_URL, ['zonal-routes']));
    const first = state.planPush(RDS_TYPE_URL, S1.get(RDS_TYPE_URL), 1)!;
    state.onRequest(request(RDS_TYPE_URL, ['zonal-routes'], first.version, first.nonce));
    const many = new Map([...S1.get(RDS_TYPE_URL)!, ['other-routes', { ...S1.get(RDS_TYPE_URL)!.get('zonal-routes')!, name: 'other-routes' }]]);
    expect(state.onRequest(request(RDS_TYPE_URL, ['zonal-routes', 'other-routes'], first.version, 'old'))).toEqual({ kind: 'stale', typeUrl: RDS_TYPE_URL });
    expect(typeState(state, RDS_TYPE_URL)).toMatchObject({ names: ['zonal-routes', 'other-routes'], acks: 1, ackedVersion: first.version });
    expect(state.planPush(RDS_TYPE_URL, many, 1)!.resources.map((r) => r.name)).toEqual(['zonal-routes', 'other-routes']);
  });
});

describe('empty resource_names', () => {
  it('RDS and EDS: empty means unsubscribed, nothing is pushed and no nonce is used', () => {
    const state = new AdsStreamState();
    for (const typeUrl of [RDS_TYPE_URL, EDS_TYPE_URL]) {
      expect(state.onRequest(request(typeUrl, []))).toEqual({ kind: 'subscribe', typeUrl });
      expect(state.planPush(typeUrl, S1.get(typeUrl as never), 1)).toBeUndefined();
      expect(typeState(state, typeUrl)).toMatchObject({ names: [], wildcard: false, sentVersion: '', sentNonce: '' });
    }
  });

  it('EDS: unsubscribing stops pushes of later changes', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    expect(state.onRequest(request(EDS_TYPE_URL, [], first.version, first.nonce)).kind).toBe('ack');
    expect(state.planPush(EDS_TYPE_URL, eds(S2), 2)).toBeUndefined();
  });

  it.each([LDS_TYPE_URL, CDS_TYPE_URL])('%s: empty means every resource', (typeUrl) => {
    const state = new AdsStreamState();
    const one = [...S1.get(typeUrl as never)!.values()][0]!;
    const available = new Map<string, Resource>([
      ['b-name', { ...one, name: 'b-name' }],
      ['a-name', { ...one, name: 'a-name' }],
    ]);
    state.onRequest(request(typeUrl, []));
    expect(typeState(state, typeUrl)).toMatchObject({ wildcard: true, names: [] });
    const push = state.planPush(typeUrl, available, 1)!;
    expect(push.resources.map((r) => r.name)).toEqual(['b-name', 'a-name']);
    expect(push.version).toBe(versionOf([...available.values()]));
    // Naming one resource ends the wildcard: only that one is sent.
    state.onRequest(request(typeUrl, ['a-name'], push.version, push.nonce));
    const named = state.planPush(typeUrl, available, 1)!;
    expect(named.resources.map((r) => r.name)).toEqual(['a-name']);
  });

  it('LDS: a named resource that does not exist is answered with an empty list (it is missing)', () => {
    const state = new AdsStreamState();
    state.onRequest(request(LDS_TYPE_URL, ['no-such-listener']));
    expect(state.planPush(LDS_TYPE_URL, S1.get(LDS_TYPE_URL), 1)).toEqual({ typeUrl: LDS_TYPE_URL, version: versionOf([]), nonce: '1', resources: [] });
  });

  // Regression (fixed): after an RDS/EDS unsubscribe (empty names) the client drops its copy;
  // when it subscribes again to the same names the content version equals
  // `sentVersion`, so nothing is sent and the client waits 15 s before
  // declaring the resource missing.
  it('EDS: subscribing again after an unsubscribe gets the resource again', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    state.onRequest(request(EDS_TYPE_URL, [], first.version, first.nonce));
    state.planPush(EDS_TYPE_URL, eds(S1), 1);
    state.onRequest(request(EDS_TYPE_URL, [CLUSTER], first.version, first.nonce));
    expect(state.planPush(EDS_TYPE_URL, eds(S1), 1)).toMatchObject({ version: first.version, resources: [eds(S1).get(CLUSTER)] });
  });
});

describe('settled(typeUrl, epoch)', () => {
  it('a type the client never asked for is settled', () => {
    expect(new AdsStreamState().settled(EDS_TYPE_URL, 7)).toBe(true);
  });

  it('not settled until the push of that epoch is ACKed', () => {
    const { state, first } = subscribed();
    expect(state.settled(EDS_TYPE_URL, 1)).toBe(false);
    state.onRequest(ack(first));
    expect(state.settled(EDS_TYPE_URL, 1)).toBe(true);
  });

  it('a later epoch is not settled until planPush has considered it', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    expect(state.settled(EDS_TYPE_URL, 2)).toBe(false);
    // Nothing changed for this client at epoch 2: it is as current as it gets.
    expect(state.planPush(EDS_TYPE_URL, eds(S1), 2)).toBeUndefined();
    expect(state.settled(EDS_TYPE_URL, 2)).toBe(true);
    // A change at epoch 3 is settled only on its ACK.
    const third = state.planPush(EDS_TYPE_URL, eds(S2), 3)!;
    expect([state.settled(EDS_TYPE_URL, 2), state.settled(EDS_TYPE_URL, 3)]).toEqual([false, false]);
    state.onRequest(ack(third));
    expect([state.settled(EDS_TYPE_URL, 2), state.settled(EDS_TYPE_URL, 3), state.settled(EDS_TYPE_URL, 4)]).toEqual([true, true, false]);
  });

  it('a NACK settles too (the client made up its mind)', () => {
    const { state, first } = subscribed();
    state.onRequest(nack(first, ''));
    expect(state.settled(EDS_TYPE_URL, 1)).toBe(true);
    // The rejected content at a later epoch is not re-sent, and counts as settled.
    expect(state.planPush(EDS_TYPE_URL, eds(S1), 2)).toBeUndefined();
    expect(state.settled(EDS_TYPE_URL, 2)).toBe(true);
  });

  it('a stale ACK does not settle', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    state.planPush(EDS_TYPE_URL, eds(S2), 2);
    state.onRequest(ack(first));
    expect(state.settled(EDS_TYPE_URL, 2)).toBe(false);
  });

  // Regression (fixed): once the client unsubscribed from EDS, planPush returns before
  // recording the epoch, so `settled` stays false for every later epoch and
  // AwaitPropagated waits for this client until its timeout.
  it('an unsubscribed RDS/EDS client is settled for later epochs (there is nothing to deliver)', () => {
    const { state, first } = subscribed();
    state.onRequest(ack(first));
    state.onRequest(request(EDS_TYPE_URL, [], first.version, first.nonce));
    expect(state.planPush(EDS_TYPE_URL, eds(S2), 2)).toBeUndefined();
    expect(state.settled(EDS_TYPE_URL, 2)).toBe(true);
  });
});

describe('through the wire codec', () => {
  it('an encoded ACK (no error_detail) decodes as an ACK, with the node and locality', () => {
    const { state, first } = subscribed();
    const bytes = encodeDiscoveryRequest({
      version_info: first.version,
      node: { id: 'client-1', locality: { zone: 'a', region: 'r1' } },
      resource_names: [CLUSTER],
      type_url: EDS_TYPE_URL,
      response_nonce: first.nonce,
    });
    const decoded = decodeDiscoveryRequest(bytes);
    expect(decoded.error_detail).toBeUndefined();
    expect(decoded.node).toMatchObject({ id: 'client-1', locality: { zone: 'a', region: 'r1' } });
    expect(state.onRequest(decoded)).toEqual({ kind: 'ack', typeUrl: EDS_TYPE_URL, version: first.version });
  });

  it('an encoded NACK keeps its error_detail', () => {
    const { state, first } = subscribed();
    const decoded = decodeDiscoveryRequest(
      encodeDiscoveryRequest({ version_info: '', resource_names: [CLUSTER], type_url: EDS_TYPE_URL, response_nonce: first.nonce, error_detail: { code: 3, message: 'final filter is ' } }),
    );
    expect(state.onRequest(decoded)).toEqual({ kind: 'nack', typeUrl: EDS_TYPE_URL, version: first.version, error: 'final filter is ' });
  });

  it('a push encodes to a DiscoveryResponse that decodes to the same version, nonce and resource bytes', () => {
    const { first } = subscribed();
    const response = decodeDiscoveryResponse(
      encodeDiscoveryResponse({ version_info: first.version, nonce: first.nonce, type_url: first.typeUrl, resources: first.resources.map((r) => r.any) }),
    );
    expect([response.version_info, response.nonce, response.type_url]).toEqual([first.version, first.nonce, EDS_TYPE_URL]);
    expect(response.resources).toHaveLength(1);
    expect(response.resources[0]!.type_url).toBe(EDS_TYPE_URL);
    expect(Buffer.from(response.resources[0]!.value).equals(Buffer.from(first.resources[0]!.any.value))).toBe(true);
  });
});
