import type { ClientSecurityOptions } from '../client/channel';
import { TokenFile } from '../security/token-file';
import { str, UsageError, type FlagSpec, type FlagValues } from './flags';

/** The TLS and token flags `zonal worker` and `zonal submit` share (docs/security.md). */
export const CLIENT_SECURITY_FLAGS: FlagSpec[] = [
  { name: 'tls', env: 'ZONAL_TLS', type: 'boolean', default: false, description: "Speak TLS to the dispatcher, verified with the system's roots (implied by --tls-ca)." },
  { name: 'tls-ca', env: 'ZONAL_TLS_CA', type: 'string', default: '', description: "PEM CA bundle that verifies the dispatcher's certificate (TLS)." },
  { name: 'tls-cert', env: 'ZONAL_TLS_CERT', type: 'string', default: '', description: 'PEM client certificate for mutual TLS (its spiffe:// URI SAN names this client in the access policy).' },
  { name: 'tls-key', env: 'ZONAL_TLS_KEY', type: 'string', default: '', description: 'PEM private key of --tls-cert.' },
  { name: 'tls-server-name', env: 'ZONAL_TLS_SERVER_NAME', type: 'string', default: '', description: "Name the dispatcher's certificate must carry, when it is not the target's host." },
  { name: 'token-file', env: 'ZONAL_TOKEN_FILE', type: 'string', default: '', description: 'File holding the bearer token of this client (first line; re-read when it changes).' },
];

/** The SDK's security options from the flags; also what to close at the end (the token file's poll). */
export function clientSecurity(values: FlagValues): { security: ClientSecurityOptions; close(): void } {
  const caFile = str(values, 'tls-ca');
  const certFile = str(values, 'tls-cert');
  const keyFile = str(values, 'tls-key');
  const serverName = str(values, 'tls-server-name');
  if ((certFile === '') !== (keyFile === '')) throw new UsageError('give both --tls-cert and --tls-key, or neither');
  const tlsOn = values['tls'] === true || caFile !== '' || certFile !== '';
  if (!tlsOn && serverName !== '') throw new UsageError('--tls-server-name needs TLS (--tls or --tls-ca)');
  const tokenPath = str(values, 'token-file');
  let tokens: TokenFile | undefined;
  try {
    tokens = tokenPath !== '' ? new TokenFile(tokenPath, 5_000) : undefined;
  } catch (err) {
    throw new UsageError(`--token-file: ${err instanceof Error ? err.message : String(err)}`);
  }
  const security: ClientSecurityOptions = {
    ...(tlsOn
      ? {
          tls: {
            ...(caFile !== '' ? { caFile } : {}),
            ...(certFile !== '' ? { certFile, keyFile } : {}),
            ...(serverName !== '' ? { serverName } : {}),
          },
        }
      : {}),
    ...(tokens !== undefined ? { token: () => tokens.token } : {}),
  };
  return { security, close: () => tokens?.close() };
}
