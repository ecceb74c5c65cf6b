/**
 * `nacos://host:8848[,host2:8848]/<dataId>?group=<group>&namespace=<namespace>`
 * selects a document in Nacos. Credentials never go in the URL (it is
 * logged and shown): they come from ZONAL_NACOS_USERNAME and
 * ZONAL_NACOS_PASSWORD.
 */
export interface NacosTarget {
  /** host:port list, as the nacos client's serverAddr wants it. */
  servers: string[];
  dataId: string;
  group: string;
  /** The tenant; '' is Nacos's public namespace. */
  namespace: string;
  username: string | undefined;
  password: string | undefined;
}

export const NACOS_DEFAULT_GROUP = 'DEFAULT_GROUP';
const NAME = /^[A-Za-z0-9._:-]+$/;

export function isNacosUrl(source: string): boolean {
  return source.startsWith('nacos://');
}

export function parseNacosUrl(source: string, env: NodeJS.ProcessEnv = process.env): NacosTarget {
  // The message repeats the URL, but never credentials someone put in it.
  // No part of a URL may hold '@' except credentials, which may hold '/'.
  const shown = source.replace(/^(nacos:\/\/).*@/, '$1***@');
  const fail = (why: string): never => {
    throw new TypeError(`bad Nacos config URL "${shown}": ${why}; expected nacos://host:8848/<dataId>?group=<group>&namespace=<namespace>`);
  };
  if (!isNacosUrl(source)) fail('it must start with nacos://');
  const rest = source.slice('nacos://'.length);
  if (rest.includes('@')) fail('credentials do not belong in the URL; set ZONAL_NACOS_USERNAME and ZONAL_NACOS_PASSWORD');
  const slash = rest.indexOf('/');
  if (slash <= 0) fail('no host:port before the dataId');
  const hostPart = rest.slice(0, slash);
  const servers = hostPart.split(',').map((s) => s.trim());
  for (const server of servers) {
    const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(server);
    if (match === null) fail(`"${server}" is not host or host:port`);
    const port = match?.[2] === undefined ? 8848 : Number(match[2]);
    if (port < 1 || port > 65535) fail(`port ${port} is out of range`);
  }
  const url = new URL(`http://placeholder/${rest.slice(slash + 1)}`);
  let dataId = '';
  try {
    dataId = decodeURIComponent(url.pathname.slice(1));
  } catch {
    fail('the dataId has a broken %-escape');
  }
  if (!NAME.test(dataId)) fail('the dataId must be letters, digits and . _ : -');
  for (const key of url.searchParams.keys()) if (key !== 'group' && key !== 'namespace') fail(`unknown parameter "${key}" (group and namespace are known)`);
  const group = url.searchParams.get('group') ?? NACOS_DEFAULT_GROUP;
  const namespace = url.searchParams.get('namespace') ?? '';
  if (!NAME.test(group)) fail('the group must be letters, digits and . _ : -');
  if (namespace !== '' && !NAME.test(namespace)) fail('the namespace must be letters, digits and . _ : -');
  return {
    servers: servers.map((s) => (/:\d+$/.test(s) ? s : `${s}:8848`)),
    dataId,
    group,
    namespace,
    username: env['ZONAL_NACOS_USERNAME'] || undefined,
    password: env['ZONAL_NACOS_PASSWORD'] || undefined,
  };
}

/** The URL as shown in logs: no credentials (they are never in it). */
export function describeNacosTarget(t: NacosTarget): string {
  const query = [`group=${t.group}`, ...(t.namespace === '' ? [] : [`namespace=${t.namespace}`])].join('&');
  return `nacos://${t.servers.join(',')}/${t.dataId}?${query}`;
}
