import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { ConfigGate } from '../config/config-gate';
import { DEFAULT_BASELINE } from '../config/runtime-schema';
import { PublicKeyRing, signDocument } from '../config/signature';
import { str, UsageError, type FlagSpec, type FlagValues } from './flags';

export const CONFIG_SUMMARY = 'Runtime config tools: validate FILE, sign FILE --key KEY, show, keygen --out PREFIX.';

export const CONFIG_FLAGS: FlagSpec[] = [
  { name: 'key', env: 'ZONAL_CONFIG_SIGNING_KEY', type: 'string', default: '', description: 'sign: PEM file of the ed25519 private key.' },
  { name: 'out', env: 'ZONAL_CONFIG_OUT', type: 'string', default: '', description: 'sign: write the signed document here (default: stdout). keygen: path prefix of <prefix>.key and <prefix>.pub.' },
  { name: 'public-keys', env: 'ZONAL_CONFIG_PUBLIC_KEYS', type: 'string', default: '', description: 'validate: comma-separated PEM public keys to check the signature against.' },
  { name: 'admin-address', env: 'ZONAL_ADMIN_ADDRESS', type: 'string', default: '127.0.0.1:9464', description: "show: the dispatcher's admin HTTP address." },
];

function files(values: FlagValues, name: string): string[] {
  return str(values, name)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function readText(path: string | undefined, what: string): string {
  if (path === undefined || path === '') throw new UsageError(`${what}: which file? (zonal config ${what} FILE)`);
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Checks a document exactly as a dispatcher would (schema, ranges and, with --public-keys, the signature). */
export function validateConfig(path: string | undefined, values: FlagValues): void {
  const text = readText(path, 'validate');
  const gate = new ConfigGate(DEFAULT_BASELINE, PublicKeyRing.fromFiles(files(values, 'public-keys')));
  const decision = gate.offer(text);
  if (decision.result !== 'applied') {
    process.stderr.write(`zonal: ${path}: ${decision.result}: ${decision.reason}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(JSON.stringify({ file: path, valid: true, version: decision.version, settings: decision.settings }, null, 2) + '\n');
}

export function signConfig(path: string | undefined, values: FlagValues): void {
  const text = readText(path, 'sign');
  const keyPath = str(values, 'key');
  if (keyPath === '') throw new UsageError('sign needs --key <PEM private key> (zonal config keygen makes one)');
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(fs.readFileSync(keyPath, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the signing key ${keyPath}: ${(err as Error).message}`);
  }
  // Refuse to sign what a dispatcher would refuse anyway.
  const check = new ConfigGate(DEFAULT_BASELINE, new PublicKeyRing()).offer(text);
  if (check.result !== 'applied') throw new UsageError(`${path} is not a valid runtime config (${check.result}): ${check.reason}`);
  const signed = signDocument(text, key);
  const out = str(values, 'out');
  if (out === '') process.stdout.write(signed);
  else fs.writeFileSync(out, signed);
}

export function keygen(values: FlagValues): void {
  const prefix = str(values, 'out');
  if (prefix === '') throw new UsageError('keygen needs --out <path prefix>');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  // 'wx': never overwrite a key pair (and never write a private key into an
  // existing file, whose mode might let others read it).
  for (const file of [`${prefix}.key`, `${prefix}.pub`]) {
    if (fs.existsSync(file)) throw new UsageError(`${file} already exists; keygen never overwrites a key (choose another --out or remove it)`);
  }
  fs.writeFileSync(`${prefix}.key`, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  fs.writeFileSync(`${prefix}.pub`, publicKey.export({ format: 'pem', type: 'spki' }), { flag: 'wx' });
  process.stdout.write(JSON.stringify({ privateKey: `${prefix}.key`, publicKey: `${prefix}.pub` }) + '\n');
}

/** The runtime config a running dispatcher has in force (its admin /config page). */
export async function showConfig(values: FlagValues): Promise<void> {
  const address = str(values, 'admin-address');
  let response: Response;
  try {
    response = await fetch(`http://${address}/config`, { signal: AbortSignal.timeout(5_000) });
  } catch (err) {
    throw new Error(`cannot reach the dispatcher's admin address ${address} (${(err as Error).message}); is it running, and is --admin-address right?`);
  }
  if (!response.ok) throw new Error(`${address}/config answered ${response.status}`);
  process.stdout.write(JSON.stringify(await response.json(), null, 2) + '\n');
}

export async function configCommand(values: FlagValues, positionals: string[]): Promise<void> {
  const [action, file, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  switch (action) {
    case 'validate':
      return validateConfig(file, values);
    case 'sign':
      return signConfig(file, values);
    case 'show':
      return showConfig(values);
    case 'keygen':
      return keygen(values);
    default:
      throw new UsageError(`zonal config needs an action: validate FILE | sign FILE --key KEY | show | keygen --out PREFIX`);
  }
}
