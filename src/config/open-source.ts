import type { ConfigSource } from './config-source';
import { FileSource } from './file-source';
import { NacosSource } from './nacos-source';
import { isNacosUrl, parseNacosUrl } from './nacos-url';

/** The source a `--config` value names: nacos://… or a file path. */
export function openConfigSource(spec: string, env: NodeJS.ProcessEnv = process.env): ConfigSource {
  if (isNacosUrl(spec)) return new NacosSource(parseNacosUrl(spec, env));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new TypeError(`unsupported config source "${spec}": use a file path or nacos://host:8848/<dataId>`);
  return new FileSource(spec);
}
