#!/usr/bin/env node
import { ZonalError } from '../errors';
import { helpText, parseFlags, UsageError, type FlagSpec, type FlagValues } from './flags';
import { serveCommand, SERVE_FLAGS, SERVE_SUMMARY } from './serve-command';
import { submitCommand, SUBMIT_FLAGS, SUBMIT_SUMMARY } from './submit-command';
import { workerCommand, WORKER_FLAGS, WORKER_SUMMARY } from './worker-command';
import { xdsCommand, XDS_FLAGS, XDS_SUMMARY } from './xds-command';
import { bootstrapCommand, BOOTSTRAP_FLAGS, BOOTSTRAP_SUMMARY } from './bootstrap-command';
import { configCommand, CONFIG_FLAGS, CONFIG_SUMMARY } from './config-command';

interface Command {
  summary: string;
  flags: FlagSpec[];
  run(values: FlagValues, positionals: string[]): Promise<void>;
  /** Takes words that are not flags (an action, a file). */
  positionals?: boolean;
}

const COMMANDS: Record<string, Command> = {
  serve: { summary: SERVE_SUMMARY, flags: SERVE_FLAGS, run: serveCommand },
  worker: { summary: WORKER_SUMMARY, flags: WORKER_FLAGS, run: workerCommand },
  submit: { summary: SUBMIT_SUMMARY, flags: SUBMIT_FLAGS, run: submitCommand },
  xds: { summary: XDS_SUMMARY, flags: XDS_FLAGS, run: xdsCommand },
  bootstrap: { summary: BOOTSTRAP_SUMMARY, flags: BOOTSTRAP_FLAGS, run: bootstrapCommand },
  config: { summary: CONFIG_SUMMARY, flags: CONFIG_FLAGS, run: configCommand, positionals: true },
};

function usage(): string {
  const lines = ['Usage: zonal <command> [flags]', '', 'Commands:'];
  for (const [name, command] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${command.summary}`);
  lines.push('', 'Run `zonal <command> --help` for its flags and environment variables.');
  return lines.join('\n') + '\n';
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return;
  }
  const command = COMMANDS[name];
  if (command === undefined) throw new UsageError(`unknown command "${name}"\n\n${usage()}`);
  const positionals: string[] = [];
  const values = parseFlags(rest, command.flags, process.env, command.positionals === true ? positionals : undefined);
  if (values === 'help') {
    process.stdout.write(helpText(name, command.summary, command.flags));
    return;
  }
  await command.run(values, positionals);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`zonal: ${err.message}\n`);
    process.exit(2);
  }
  const message = err instanceof ZonalError ? `${err.reason}: ${err.message}` : err instanceof Error ? err.message : String(err);
  process.stderr.write(`zonal: ${message}\n`);
  process.exit(1);
});
