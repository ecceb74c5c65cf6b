/** xDS type URLs and the names of Zonal's resources: the one place they are spelled. */
export const LDS_TYPE_URL = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const RDS_TYPE_URL = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
export const CDS_TYPE_URL = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const EDS_TYPE_URL = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
export const HCM_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

export const ADS_METHOD_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

export type TypeUrl = typeof LDS_TYPE_URL | typeof RDS_TYPE_URL | typeof CDS_TYPE_URL | typeof EDS_TYPE_URL;

export const TYPE_URLS: readonly TypeUrl[] = [LDS_TYPE_URL, RDS_TYPE_URL, CDS_TYPE_URL, EDS_TYPE_URL];

/** For LDS and CDS an empty subscription means "everything"; for RDS and EDS it means "nothing". */
export function emptyMeansAll(typeUrl: string): boolean {
  return typeUrl === LDS_TYPE_URL || typeUrl === CDS_TYPE_URL;
}

export function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

/** Default listener name: clients use `xds:///zonal`. */
export const DEFAULT_LISTENER = 'zonal';
export const routeConfigName = (listener: string): string => `${listener}-routes`;
export const clusterName = (listener: string): string => `${listener}-dispatchers`;
