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

interface Loaded {
  definition: grpc.ServiceDefinition;
  client: grpc.ServiceClientConstructor;
}


const loadedServices = new Map<string, Loaded>();

function loadService(file: string, name: 'Dispatcher' | 'Registry'): Loaded {
  let service = loadedServices.get(name);
  if (service === undefined) {
    const pkg = protoLoader.loadSync(file, LOADER_OPTIONS);
    const descriptor = grpc.loadPackageDefinition(pkg) as unknown as { zonal: { v1: Record<string, grpc.ServiceClientConstructor> } };
    const client = descriptor.zonal.v1[name];
    if (client === undefined) throw new Error(`${file} defines no zonal.v1.${name}`);
    service = { definition: client.service, client };
    loadedServices.set(name, service);
  }
  return service;
}

/** zonal.v1.Dispatcher, loaded once per process. */
export function dispatcherService(): Loaded {
  return loadService(PROTO_FILE, 'Dispatcher');
}

/** zonal.v1.Registry (control-plane registration), loaded once per process. */
export function registryService(): Loaded {
  return loadService(REGISTRY_PROTO_FILE, 'Registry');
}
