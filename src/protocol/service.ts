import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The one place that knows where the .proto lives and how it is loaded. */
export const PROTO_FILE = 'zonal/v1/dispatcher.proto';
export const REGISTRY_PROTO_FILE = 'zonal/v1/registry.proto';

/** The package's proto/ folder, found from src/, dist/ or any other build output folder. */
function findProtoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'proto');
    if (existsSync(path.join(candidate, PROTO_FILE))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`cannot find proto/${PROTO_FILE} above ${__dirname}`);
  }
}

export const PROTO_ROOT = findProtoRoot();

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  objects: false,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

/**
 * The dispatcher decodes what it receives with 64-bit integers as exact
 * decimal strings: a uint64 above 2^53 read as a JS number would be rounded,
 * so the codec could neither refuse it exactly nor echo it back (an ack for
 * sequence_id 2^63-1 would say 2^63). The codec narrows each field to its
 * documented range (docs/protocol.md, "64-bit fields"). Clients keep numbers:
 * everything the dispatcher sends fits in 2^53-1, except echoes, which the
 * SDK never provokes.
 */
const SERVER_LOADER_OPTIONS: protoLoader.Options = { ...LOADER_OPTIONS, longs: String };

interface Loaded {
  /** For servers: requests decode 64-bit integers as decimal strings. */
  readonly definition: grpc.ServiceDefinition;
  /** For clients: responses decode 64-bit integers as numbers. */
  readonly client: grpc.ServiceClientConstructor;
}

type ServiceName = 'Dispatcher' | 'Registry';

const constructors = new Map<string, grpc.ServiceClientConstructor>();

function loadConstructor(file: string, name: ServiceName, options: protoLoader.Options, key: string): grpc.ServiceClientConstructor {
  let client = constructors.get(key);
  if (client === undefined) {
    const pkg = protoLoader.loadSync(file, options);
    const descriptor = grpc.loadPackageDefinition(pkg) as unknown as { zonal: { v1: Record<string, grpc.ServiceClientConstructor> } };
    client = descriptor.zonal.v1[name];
    if (client === undefined) throw new Error(`${file} defines no zonal.v1.${name}`);
    constructors.set(key, client);
  }
  return client;
}

/** Each side is loaded on first use, so a process that is only a client never loads the server's copy. */
function loadService(file: string, name: ServiceName, serverOptions: protoLoader.Options): Loaded {
  return {
    get definition() {
      return loadConstructor(file, name, serverOptions, serverOptions === LOADER_OPTIONS ? `${name}:client` : `${name}:server`).service;
    },
    get client() {
      return loadConstructor(file, name, LOADER_OPTIONS, `${name}:client`);
    },
  };
}

/** zonal.v1.Dispatcher, each side loaded once per process. */
export function dispatcherService(): Loaded {
  return loadService(PROTO_FILE, 'Dispatcher', SERVER_LOADER_OPTIONS);
}

/** zonal.v1.Registry (control-plane registration), loaded once per process. */
export function registryService(): Loaded {
  return loadService(REGISTRY_PROTO_FILE, 'Registry', LOADER_OPTIONS);
}
