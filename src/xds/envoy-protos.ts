import * as fs from 'node:fs';
import * as path from 'node:path';
// Loading proto-loader registers Google's well-known protos (descriptor, …) with protobufjs.
import '@grpc/proto-loader';
import * as protobuf from 'protobufjs';

/**
 * The envoy/xds protos that ship with @grpc/grpc-js-xds, loaded into one
 * protobufjs Root. Every type an `Any` may hold must be in this one Root:
 * otherwise protobufjs silently encodes an empty Any and clients NACK.
 */
const FILES = [
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];

function depsDir(): string {
  const pkg = require.resolve('@grpc/grpc-js-xds/package.json');
  return path.join(path.dirname(pkg), 'deps');
}

let root: protobuf.Root | undefined;

/** Loaded on first use (about 300 ms and 70 MB): only processes that speak xDS pay for it. */
export function envoyRoot(): protobuf.Root {
  if (root !== undefined) return root;
  const deps = depsDir();
  const includeDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d));
  const r = new protobuf.Root();
  const original = r.resolvePath.bind(r);
  r.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const full = path.join(dir, target);
      if (fs.existsSync(full)) return full;
    }
    return original(origin, target);
  };
  r.loadSync(FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

function typeOf(typeUrl: string): protobuf.Type {
  return envoyRoot().lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
}

export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** Encodes `message` (a plain object in proto field names, enums as names) as an Any. */
export function encodeAny(typeUrl: string, message: Record<string, unknown>): AnyMessage {
  const type = typeOf(typeUrl);
  return { type_url: typeUrl, value: type.encode(type.fromObject(message)).finish() };
}

export function decodeAny(any: AnyMessage): Record<string, unknown> {
  const type = typeOf(any.type_url);
  return type.toObject(type.decode(any.value), { longs: String, enums: String, defaults: false, oneofs: true }) as Record<string, unknown>;
}

const DISCOVERY_REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest';
const DISCOVERY_RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';

export interface DiscoveryRequest {
  version_info: string;
  node?: { id?: string; cluster?: string; locality?: { region?: string; zone?: string; sub_zone?: string }; user_agent_name?: string };
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail?: { code?: number; message?: string };
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
}

export function decodeDiscoveryRequest(bytes: Buffer): DiscoveryRequest {
  const type = envoyRoot().lookupType(DISCOVERY_REQUEST);
  const obj = type.toObject(type.decode(bytes), { longs: String, enums: String, defaults: true, arrays: true }) as DiscoveryRequest;
  // With defaults on, an absent error_detail decodes as null: treat it as absent.
  if (obj.error_detail === null || (obj.error_detail !== undefined && Object.keys(obj.error_detail).length === 0)) delete obj.error_detail;
  return obj;
}

export function encodeDiscoveryResponse(response: DiscoveryResponse): Buffer {
  const type = envoyRoot().lookupType(DISCOVERY_RESPONSE);
  return Buffer.from(type.encode(type.fromObject(response)).finish());
}

export function encodeDiscoveryRequest(request: Partial<DiscoveryRequest>): Buffer {
  const type = envoyRoot().lookupType(DISCOVERY_REQUEST);
  return Buffer.from(type.encode(type.fromObject(request)).finish());
}

export function decodeDiscoveryResponse(bytes: Buffer): DiscoveryResponse {
  const type = envoyRoot().lookupType(DISCOVERY_RESPONSE);
  return type.toObject(type.decode(bytes), { longs: String, enums: String, defaults: true, arrays: true, bytes: Buffer }) as DiscoveryResponse;
}
