import { describe, expect, it } from 'vitest';
import type { ClientLocality, DispatcherEndpoint } from '../../../src/xds/endpoints';
import { decodeAny, envoyRoot, type AnyMessage } from '../../../src/xds/envoy-protos';
import { CDS_TYPE_URL, EDS_TYPE_URL, HCM_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL, ROUTER_TYPE_URL, TYPE_URLS, type TypeUrl } from '../../../src/xds/resources';
import { buildSnapshot, DEFAULT_POLICY, versionOf, type Resource, type Snapshot, type XdsPolicy } from '../../../src/xds/snapshot';

const ENDPOINTS: DispatcherEndpoint[] = [
  { id: 'a1', ip: '10.0.1.1', port: 50051, zone: 'a', region: 'r1', health: 'HEALTHY' },
  { id: 'a2', ip: '10.0.1.2', port: 50052, zone: 'a', region: 'r1', health: 'UNHEALTHY' },
  { id: 'b1', ip: '10.0.2.1', port: 50051, zone: 'b', region: 'r1', health: 'DRAINING' },
  { id: 'c1', ip: 'fd00::c1', port: 7000, zone: 'c', region: 'r2', health: 'UNKNOWN' },
];
const ZONE_A: ClientLocality = { zone: 'a', region: 'r1' };

function only(snapshot: Snapshot, typeUrl: TypeUrl): Resource {
  const resources = [...snapshot.get(typeUrl)!.values()];
  expect(resources).toHaveLength(1);
  return resources[0]!;
}

function version(snapshot: Snapshot, typeUrl: TypeUrl): string {
  return versionOf([...snapshot.get(typeUrl)!.values()]);
}

function decoded<T>(snapshot: Snapshot, typeUrl: TypeUrl): T {
  const r = only(snapshot, typeUrl);
  expect(r.any.type_url).toBe(typeUrl);
  return decodeAny(r.any) as T;
}

interface DecodedListener {
  name: string;
  api_listener: { api_listener: AnyMessage };
}
interface DecodedHcm {
  rds: { route_config_name: string; config_source: Record<string, unknown> };
  http_filters: { name: string; typed_config: AnyMessage }[];
}
interface DecodedCluster {
  name: string;
  type: string;
  lb_policy: string;
  eds_cluster_config: Record<string, unknown>;
  outlier_detection?: Record<string, { value?: number; seconds?: string }>;
}
interface DecodedCla {
  cluster_name: string;
  endpoints?: {
    locality: { region: string; zone: string };
    priority?: number;
    load_balancing_weight?: { value: number };
    lb_endpoints: { health_status: string; endpoint: { address: { socket_address: { address: string; port_value: number } } } }[];
  }[];
}

/** [region/zone, priority, weight, [ip:port health]] per locality of the decoded CLA. */
function claSummary(cla: DecodedCla): [string, number, number | undefined, string[]][] {
  return (cla.endpoints ?? []).map((l) => [
    `${l.locality.region}/${l.locality.zone}`,
    l.priority ?? 0,
    l.load_balancing_weight?.value,
    l.lb_endpoints.map((e) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value} ${e.health_status}`),
  ]);
}

const ADS_SOURCE = { ads: {}, config_source_specifier: 'ads', resource_api_version: 'V3' };

describe('buildSnapshot', () => {
  const snapshot = buildSnapshot(ENDPOINTS, ZONE_A, DEFAULT_POLICY);

  it('holds exactly one resource per type, under the names derived from the listener', () => {
    expect([...snapshot.keys()]).toEqual([LDS_TYPE_URL, RDS_TYPE_URL, CDS_TYPE_URL, EDS_TYPE_URL]);
    expect([...snapshot.get(LDS_TYPE_URL)!.keys()]).toEqual(['zonal']);
    expect([...snapshot.get(RDS_TYPE_URL)!.keys()]).toEqual(['zonal-routes']);
    expect([...snapshot.get(CDS_TYPE_URL)!.keys()]).toEqual(['zonal-dispatchers']);
    expect([...snapshot.get(EDS_TYPE_URL)!.keys()]).toEqual(['zonal-dispatchers']);
    for (const typeUrl of TYPE_URLS) {
      for (const [name, r] of snapshot.get(typeUrl)!) {
        expect(r.name).toBe(name);
        expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
        expect(r.any.value.length).toBeGreaterThan(0);
      }
    }
  });

  it('Listener: an api_listener HCM that takes its routes over RDS (ADS) and ends with the router filter', () => {
    const listener = decoded<DecodedListener>(snapshot, LDS_TYPE_URL);
    expect(listener.name).toBe('zonal');
    expect(listener.api_listener.api_listener.type_url).toBe(HCM_TYPE_URL);
    const hcm = decodeAny(listener.api_listener.api_listener) as unknown as DecodedHcm;
    expect(hcm.rds).toEqual({ route_config_name: 'zonal-routes', config_source: ADS_SOURCE });
    expect(hcm.http_filters.map((f) => [f.name, f.typed_config.type_url])).toEqual([['envoy.filters.http.router', ROUTER_TYPE_URL]]);
    // The router config is present as a (possibly empty) Router message, not a missing Any.
    expect(decodeAny(hcm.http_filters[0]!.typed_config)).toEqual({});
  });

  it('RouteConfiguration: every path goes to the cluster', () => {
    expect(decoded(snapshot, RDS_TYPE_URL)).toEqual({
      name: 'zonal-routes',
      virtual_hosts: [
        {
          name: 'zonal',
          domains: ['*'],
          routes: [{ match: { prefix: '', path_specifier: 'prefix' }, route: { cluster: 'zonal-dispatchers', cluster_specifier: 'cluster' }, action: 'route' }],
        },
      ],
    });
  });

  it('Cluster: EDS over ADS, ROUND_ROBIN, outlier detection with every success-rate and failure-percentage field set', () => {
    const cluster = decoded<DecodedCluster>(snapshot, CDS_TYPE_URL);
    expect(cluster).toMatchObject({
      name: 'zonal-dispatchers',
      type: 'EDS',
      lb_policy: 'ROUND_ROBIN',
      eds_cluster_config: { eds_config: ADS_SOURCE, service_name: 'zonal-dispatchers' },
      connect_timeout: { seconds: '1' },
    });
    expect(cluster.outlier_detection).toEqual({
      interval: { seconds: '1' },
      base_ejection_time: { seconds: '5' },
      max_ejection_time: { seconds: '60' },
      max_ejection_percent: { value: 50 },
      enforcing_success_rate: { value: 100 },
      success_rate_minimum_hosts: { value: 3 },
      success_rate_request_volume: { value: 100 },
      success_rate_stdev_factor: { value: 1900 },
      enforcing_failure_percentage: { value: 100 },
      failure_percentage_threshold: { value: 85 },
      failure_percentage_minimum_hosts: { value: 2 },
      failure_percentage_request_volume: { value: 50 },
    });
    // Whatever the proto defines for the two ejection algorithms (minus local-origin variants, which gRPC ignores) is set.
    const algorithmFields = envoyRoot()
      .lookupType('envoy.config.cluster.v3.OutlierDetection')
      .fieldsArray.map((f) => f.name)
      .filter((n) => /(^|_)(success_rate|failure_percentage)(_|$)/.test(n) && !n.includes('local_origin'));
    expect(algorithmFields.sort()).toEqual([
      'enforcing_failure_percentage',
      'enforcing_success_rate',
      'failure_percentage_minimum_hosts',
      'failure_percentage_request_volume',
      'failure_percentage_threshold',
      'success_rate_minimum_hosts',
      'success_rate_request_volume',
      'success_rate_stdev_factor',
    ]);
    for (const field of algorithmFields) expect(cluster.outlier_detection![field], field).toBeDefined();
  });

  it('ClusterLoadAssignment: contiguous priorities, a weight on every locality, health statuses and IP:port', () => {
    const cla = decoded<DecodedCla>(snapshot, EDS_TYPE_URL);
    expect(cla.cluster_name).toBe('zonal-dispatchers');
    expect(claSummary(cla)).toEqual([
      ['r1/a', 0, 1, ['10.0.1.1:50051 HEALTHY', '10.0.1.2:50052 UNHEALTHY']],
      ['r1/b', 1, 1, ['10.0.2.1:50051 DRAINING']],
      ['r2/c', 2, 1, ['fd00::c1:7000 UNKNOWN']],
    ]);
    // A locality without load_balancing_weight is silently dropped by grpc-js-xds.
    for (const l of cla.endpoints!) expect(l.load_balancing_weight?.value).toBeGreaterThanOrEqual(1);
  });

  it('ClusterLoadAssignment: priorities follow the client zone, renumbered without gaps', () => {
    expect(claSummary(decoded<DecodedCla>(buildSnapshot(ENDPOINTS, { zone: 'c', region: 'r2' }, DEFAULT_POLICY), EDS_TYPE_URL))).toEqual([
      ['r2/c', 0, 1, ['fd00::c1:7000 UNKNOWN']],
      ['r1/a', 1, 1, ['10.0.1.1:50051 HEALTHY', '10.0.1.2:50052 UNHEALTHY']],
      ['r1/b', 1, 1, ['10.0.2.1:50051 DRAINING']],
    ]);
    expect(claSummary(decoded<DecodedCla>(buildSnapshot(ENDPOINTS, { zone: 'z', region: 'r9' }, DEFAULT_POLICY), EDS_TYPE_URL)).map((l) => [l[0], l[1]])).toEqual([
      ['r1/a', 0],
      ['r1/b', 0],
      ['r2/c', 0],
    ]);
  });

  it('ClusterLoadAssignment: configured locality weights', () => {
    const cla = decoded<DecodedCla>(buildSnapshot(ENDPOINTS, ZONE_A, { ...DEFAULT_POLICY, localityWeights: { a: 5, c: 2 } }), EDS_TYPE_URL);
    expect(claSummary(cla).map((l) => [l[0], l[2]])).toEqual([
      ['r1/a', 5],
      ['r1/b', 1],
      ['r2/c', 2],
    ]);
  });

  it('no endpoints: an empty assignment for the cluster', () => {
    const cla = decoded<DecodedCla>(buildSnapshot([], ZONE_A, DEFAULT_POLICY), EDS_TYPE_URL);
    expect(cla).toEqual({ cluster_name: 'zonal-dispatchers' });
  });

  it('policy: listener name, lb policy and outlier detection', () => {
    const policy: XdsPolicy = { listener: 'jobs', lbPolicy: 'RING_HASH', localityWeights: {}, outlierDetection: false };
    const s = buildSnapshot(ENDPOINTS, ZONE_A, policy);
    expect(TYPE_URLS.map((t) => [...s.get(t)!.keys()])).toEqual([['jobs'], ['jobs-routes'], ['jobs-dispatchers'], ['jobs-dispatchers']]);
    const hcm = decodeAny(decoded<DecodedListener>(s, LDS_TYPE_URL).api_listener.api_listener) as unknown as DecodedHcm;
    expect(hcm.rds.route_config_name).toBe('jobs-routes');
    const cluster = decoded<DecodedCluster>(s, CDS_TYPE_URL);
    expect([cluster.name, cluster.lb_policy, cluster.outlier_detection]).toEqual(['jobs-dispatchers', 'RING_HASH', undefined]);
    expect(decoded<DecodedCla>(s, EDS_TYPE_URL).cluster_name).toBe('jobs-dispatchers');
  });
});

describe('versions', () => {
  const versions = (s: Snapshot): string[] => TYPE_URLS.map((t) => version(s, t));

  it('the same input gives the same bytes and the same versions', () => {
    const a = buildSnapshot(ENDPOINTS, ZONE_A, DEFAULT_POLICY);
    const b = buildSnapshot(ENDPOINTS.map((e) => ({ ...e })), { ...ZONE_A }, { ...DEFAULT_POLICY });
    for (const t of TYPE_URLS) {
      expect(Buffer.from(only(b, t).any.value).equals(Buffer.from(only(a, t).any.value))).toBe(true);
      expect(only(b, t).hash).toBe(only(a, t).hash);
    }
    expect(versions(b)).toEqual(versions(a));
    for (const v of versions(a)) expect(v).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(versions(a)).size).toBe(4);
  });

  it('the order of the endpoint list does not matter', () => {
    expect(versions(buildSnapshot([...ENDPOINTS].reverse(), ZONE_A, DEFAULT_POLICY))).toEqual(versions(buildSnapshot(ENDPOINTS, ZONE_A, DEFAULT_POLICY)));
  });

  it('a changed endpoint health changes only the EDS version', () => {
    const before = buildSnapshot(ENDPOINTS, ZONE_A, DEFAULT_POLICY);
    const after = buildSnapshot(
      ENDPOINTS.map((e) => (e.id === 'a1' ? { ...e, health: 'UNHEALTHY' as const } : e)),
      ZONE_A,
      DEFAULT_POLICY,
    );
    for (const t of [LDS_TYPE_URL, RDS_TYPE_URL, CDS_TYPE_URL] as const) expect(version(after, t), t).toBe(version(before, t));
    expect(version(after, EDS_TYPE_URL)).not.toBe(version(before, EDS_TYPE_URL));
    expect(claSummary(decoded<DecodedCla>(after, EDS_TYPE_URL))[0]![3]).toEqual(['10.0.1.1:50051 UNHEALTHY', '10.0.1.2:50052 UNHEALTHY']);
  });

  it('keyed by zone: clients of another zone get another EDS, the same LDS/RDS/CDS', () => {
    const a = buildSnapshot(ENDPOINTS, ZONE_A, DEFAULT_POLICY);
    const b = buildSnapshot(ENDPOINTS, { zone: 'b', region: 'r1' }, DEFAULT_POLICY);
    for (const t of [LDS_TYPE_URL, RDS_TYPE_URL, CDS_TYPE_URL] as const) expect(version(b, t), t).toBe(version(a, t));
    expect(version(b, EDS_TYPE_URL)).not.toBe(version(a, EDS_TYPE_URL));
  });

  it('a changed policy changes the CDS version (lb policy) or the EDS version (weights), not the others', () => {
    const base = buildSnapshot(ENDPOINTS, ZONE_A, DEFAULT_POLICY);
    const ring = buildSnapshot(ENDPOINTS, ZONE_A, { ...DEFAULT_POLICY, lbPolicy: 'RING_HASH' });
    expect(versions(ring).map((v, i) => v === versions(base)[i])).toEqual([true, true, false, true]);
    const weighted = buildSnapshot(ENDPOINTS, ZONE_A, { ...DEFAULT_POLICY, localityWeights: { b: 4 } });
    expect(versions(weighted).map((v, i) => v === versions(base)[i])).toEqual([true, true, true, false]);
  });

  it('versionOf depends on names and content, not on the order of the list', () => {
    const s = buildSnapshot(ENDPOINTS, ZONE_A, DEFAULT_POLICY);
    const lds = only(s, LDS_TYPE_URL);
    const cds = only(s, CDS_TYPE_URL);
    expect(versionOf([lds, cds])).toBe(versionOf([cds, lds]));
    expect(versionOf([lds, cds])).not.toBe(versionOf([lds]));
    expect(versionOf([{ ...lds, name: 'other' }])).not.toBe(versionOf([lds]));
    expect(versionOf([])).toBe(versionOf([]));
    expect(versionOf([])).not.toBe(versionOf([lds]));
  });
});
