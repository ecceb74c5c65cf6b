import { createHash } from 'node:crypto';
import { encodeAny, type AnyMessage } from './envoy-protos';
import type { ClientLocality, DispatcherEndpoint } from './endpoints';
import { prioritizeLocalities } from './locality-priority';
import { CDS_TYPE_URL, clusterName, DEFAULT_LISTENER, EDS_TYPE_URL, HCM_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL, ROUTER_TYPE_URL, routeConfigName, type TypeUrl } from './resources';

/** What the control plane serves, besides the endpoints. */
export interface XdsPolicy {
  listener: string;
  /** ROUND_ROBIN or RING_HASH work with grpc-js-xds; LEAST_REQUEST, MAGLEV and RANDOM are NACKed. */
  lbPolicy: string;
  localityWeights: Record<string, number>;
  outlierDetection: boolean;
}

export const DEFAULT_POLICY: XdsPolicy = { listener: DEFAULT_LISTENER, lbPolicy: 'ROUND_ROBIN', localityWeights: {}, outlierDetection: true };

/** One encoded resource, with the hash of its bytes. */
export interface Resource {
  name: string;
  any: AnyMessage;
  hash: string;
}

/** The resources of one client locality, by type and name. Built once per zone, shared by its clients. */
export type Snapshot = ReadonlyMap<TypeUrl, ReadonlyMap<string, Resource>>;

function resource(name: string, any: AnyMessage): Resource {
  return { name, any, hash: createHash('sha256').update(any.value).digest('hex') };
}

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

/**
 * Every success-rate and failure-percentage field is set explicitly: grpc-js
 * 1.14 does not default an unset `success_rate_minimum_hosts`, and its
 * outlier detector then throws from a timer and kills the client process
 * once no host has enough traffic ("Reduce of empty array").
 */
const OUTLIER_DETECTION = {
  interval: { seconds: 1 },
  base_ejection_time: { seconds: 5 },
  max_ejection_time: { seconds: 60 },
  max_ejection_percent: { value: 50 },
  enforcing_success_rate: { value: 100 },
  success_rate_minimum_hosts: { value: 3 },
  success_rate_request_volume: { value: 100 },
  success_rate_stdev_factor: { value: 1900 },
  enforcing_failure_percentage: { value: 100 },
  failure_percentage_threshold: { value: 85 },
  failure_percentage_minimum_hosts: { value: 2 },
  failure_percentage_request_volume: { value: 50 },
};

export function buildSnapshot(endpoints: readonly DispatcherEndpoint[], client: ClientLocality, policy: XdsPolicy): Snapshot {
  const routeName = routeConfigName(policy.listener);
  const cluster = clusterName(policy.listener);
  const listener = encodeAny(LDS_TYPE_URL, {
    name: policy.listener,
    api_listener: {
      api_listener: encodeAny(HCM_TYPE_URL, {
        rds: { route_config_name: routeName, config_source: ADS_SOURCE },
        http_filters: [{ name: 'envoy.filters.http.router', typed_config: encodeAny(ROUTER_TYPE_URL, {}) }],
      }),
    },
  });
  const routes = encodeAny(RDS_TYPE_URL, {
    name: routeName,
    virtual_hosts: [{ name: 'zonal', domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster } }] }],
  });
  const clusterResource = encodeAny(CDS_TYPE_URL, {
    name: cluster,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: cluster },
    lb_policy: policy.lbPolicy,
    connect_timeout: { seconds: 1 },
    ...(policy.outlierDetection ? { outlier_detection: OUTLIER_DETECTION } : {}),
  });
  const localities = prioritizeLocalities(endpoints, client, policy.localityWeights).map((l) => ({
    locality: { region: l.region, zone: l.zone },
    // A locality without a weight is silently dropped by grpc-js-xds.
    load_balancing_weight: { value: l.weight },
    priority: l.priority,
    lb_endpoints: l.endpoints.map((e) => ({
      endpoint: { address: { socket_address: { address: e.ip, port_value: e.port } } },
      health_status: e.health,
    })),
  }));
  const assignment = encodeAny(EDS_TYPE_URL, { cluster_name: cluster, endpoints: localities });
  return new Map<TypeUrl, Map<string, Resource>>([
    [LDS_TYPE_URL, new Map([[policy.listener, resource(policy.listener, listener)]])],
    [RDS_TYPE_URL, new Map([[routeName, resource(routeName, routes)]])],
    [CDS_TYPE_URL, new Map([[cluster, resource(cluster, clusterResource)]])],
    [EDS_TYPE_URL, new Map([[cluster, resource(cluster, assignment)]])],
  ]);
}

/** The version of a set of resources: derived from their content, so an unchanged set is never pushed again. */
export function versionOf(resources: readonly Resource[]): string {
  const hash = createHash('sha256');
  for (const r of [...resources].sort((a, b) => a.name.localeCompare(b.name))) hash.update(r.name).update('\0').update(r.hash).update('\0');
  return hash.digest('hex').slice(0, 16);
}
