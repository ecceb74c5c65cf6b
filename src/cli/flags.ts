import { parseArgs } from 'node:util';

/**
 * One table per command: every flag has an environment variable, a default
 * and a description, and `--help` is generated from the same table.
 */
export interface FlagSpec {
  name: string;
  env: string;
  type: 'string' | 'number' | 'boolean';
  default?: string | number | boolean;
  description: string;
}

export type FlagValues = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `positionals`, when given, allows words that are not flags and receives them. */
export function parseFlags(argv: string[], specs: FlagSpec[], env: NodeJS.ProcessEnv, positionals?: string[]): FlagValues | 'help' {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const spec of specs) options[spec.name] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: positionals !== undefined });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (parsed.values['help'] === true) return 'help';
  positionals?.push(...parsed.positionals);
  const out: FlagValues = {};
  for (const spec of specs) {
    const fromFlag = parsed.values[spec.name];
    const fromEnv = env[spec.env];
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
    if (raw === undefined) {
      out[spec.name] = spec.default;
      continue;
    }
    if (spec.type === 'boolean') {
      out[spec.name] = raw === true || raw === 'true' || raw === '1';
    } else if (spec.type === 'number') {
      const value = Number(raw);
      if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value)) {
        throw new UsageError(`--${spec.name} (${spec.env}) must be a number, got "${String(raw)}"`);
      }
      out[spec.name] = value;
    } else {
      out[spec.name] = String(raw);
    }
  }
  return out;
}

export function helpText(command: string, summary: string, specs: FlagSpec[]): string {
  const lines = [`Usage: zonal ${command} [flags]`, '', summary, '', 'Flags (each also read from its environment variable):'];
  for (const spec of specs) {
    const def = spec.default === undefined || spec.default === '' ? '' : ` (default: ${String(spec.default)})`;
    lines.push(`  --${spec.name}${spec.type === 'boolean' ? '' : ' <' + spec.type + '>'}`);
    lines.push(`      ${spec.env}  ${spec.description}${def}`);
  }
  lines.push('  --help', '      Show this help.');
  return lines.join('\n') + '\n';
}

export function str(values: FlagValues, name: string): string {
  const v = values[name];
  return v === undefined ? '' : String(v);
}

export function num(values: FlagValues, name: string): number | undefined {
  const v = values[name];
  return typeof v === 'number' ? v : undefined;
}
