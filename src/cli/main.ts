#!/usr/bin/env node
import { ZonalError } from '../errors';
import { helpText, parseFlags, UsageError, type FlagSpec, type FlagValues } from './flags';

interface Command {
  summary: string;
  flags: FlagSpec[];
  run(values: FlagValues, positionals: string[]): Promise<void> | void;
  /** Takes words that are not flags (an action, a file). */
  positionals?: boolean;
  /**
   * Runs once and is done when `run` resolves: the process exits then. With
   * an xds:/// target, grpc-js-xds keeps its ADS stream (a process-wide
   * client) open after every channel is closed, which would hold the
   * process forever after `zonal submit` printed its results.
   */
  oneShot?: boolean;
}

/**
 * Each command's module is loaded only when that command runs, so
 * `zonal config validate` does not pay for loading the dispatcher.
 */
const COMMANDS: Record<string, () => Command> = {
  serve: () => {
    const m = require('./serve-command') as typeof import('./serve-command');
    return { summary: m.SERVE_SUMMARY, flags: m.SERVE_FLAGS, run: m.serveCommand };
  },
  worker: () => {
    const m = require('./worker-command') as typeof import('./worker-command');
    return { summary: m.WORKER_SUMMARY, flags: m.WORKER_FLAGS, run: m.workerCommand };
  },
  submit: () => {
    const m = require('./submit-command') as typeof import('./submit-command');
    return { summary: m.SUBMIT_SUMMARY, flags: m.SUBMIT_FLAGS, run: m.submitCommand, oneShot: true };
  },
  xds: () => {
    const m = require('./xds-command') as typeof import('./xds-command');
    return { summary: m.XDS_SUMMARY, flags: m.XDS_FLAGS, run: m.xdsCommand };
  },
  bootstrap: () => {
    const m = require('./bootstrap-command') as typeof import('./bootstrap-command');
    return { summary: m.BOOTSTRAP_SUMMARY, flags: m.BOOTSTRAP_FLAGS, run: m.bootstrapCommand };
  },
  drain: () => {
    const m = require('./drain-command') as typeof import('./drain-command');
    return { summary: m.DRAIN_SUMMARY, flags: m.DRAIN_FLAGS, run: m.drainCommand };
  },
  token: () => {
    const m = require('./token-command') as typeof import('./token-command');
    return { summary: m.TOKEN_SUMMARY, flags: m.TOKEN_FLAGS, run: m.tokenCommand, positionals: true };
  },
  config: () => {
    const m = require('./config-command') as typeof import('./config-command');
    return { summary: m.CONFIG_SUMMARY, flags: m.CONFIG_FLAGS, run: m.configCommand, positionals: true };
  },
};

function usage(): string {
  const lines = ['Usage: zonal <command> [flags]', '', 'Commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${load().summary}`);
  lines.push('', 'Run `zonal <command> --help` for its flags and environment variables.');
  return lines.join('\n') + '\n';
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return;
  }
  const load = COMMANDS[name];
  if (load === undefined) throw new UsageError(`unknown command "${name}"\n\n${usage()}`);
  const command = load();
  const positionals: string[] = [];
  const values = parseFlags(rest, command.flags, process.env, command.positionals === true ? positionals : undefined);
  if (values === 'help') {
    process.stdout.write(helpText(name, command.summary, command.flags));
    return;
  }
  await command.run(values, positionals);
  if (command.oneShot === true) {
    // Writes to a pipe are asynchronous: exit only once what was printed has been handed over.
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
    process.exit();
  }
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
