/**
 * `zonal/config`: runtime configuration from a file or Nacos, versioned,
 * validated and optionally signed; also for SDK clients that follow it.
 *
 * ```ts
 * import { ProducerClient } from 'zonal';
 * import { DEFAULT_BASELINE, RuntimeConfig, followRuntimeConfig, openConfigSource } from 'zonal/config';
 *
 * const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE, source: openConfigSource('./runtime.yaml'), dataDir: './data' });
 * config.start();
 * const producer = new ProducerClient({ target: 'xds:///zonal' });
 * const stop = followRuntimeConfig(config, producer);
 * ```
 */
export { RuntimeConfig, type RuntimeConfigOptions, type RuntimeConfigStatus } from './runtime-config';
export { followRuntimeConfig } from './follow';
export { openConfigSource } from './open-source';
export { FileSource } from './file-source';
export { NacosSource } from './nacos-source';
export { parseNacosUrl, type NacosTarget } from './nacos-url';
export { PublicKeyRing, signDocument } from './signature';
export { RUNTIME_DOCUMENT_SCHEMA, DEFAULT_BASELINE, compileRuntimeDocument, type RuntimeDocument, type RuntimeSettings, type RuntimeBaseline } from './runtime-schema';
export type { OfferResult, Decision } from './config-gate';
