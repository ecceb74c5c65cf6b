/**
 * A worker for the failover scenario: the SDK's Worker from the build under
 * test with a no-op handler. It remembers every welcome (which dispatcher,
 * when) and when the first task of that session arrived, and answers
 * (history.ts):
 *   first {sinceMs, dispatcher?, notDispatcher?, withTask?, timeoutMs}: the first welcome at or after sinceMs that matches
 *     (withTask: once that session has also received a task)
 *   placement: the latest welcome
 * With an xds: target the bootstrap comes from GRPC_XDS_BOOTSTRAP_CONFIG.
 */
import { epochMs } from '../../deployed/clock';
import { emit, settings } from '../../deployed/messages';
import { answerCommands, History } from './history';

interface Settings {
  sdk: string;
  target: string;
  zone: string;
  workerId: string;
  slots: number;
}

interface WorkerLike {
  start(o?: { deadlineMs?: number }): Promise<void>;
  close(o?: { graceMs?: number }): Promise<void>;
  readonly stats: Record<string, number>;
}

interface Welcome {
  atMs: number;
  sessionId: string;
  dispatcherId: string;
  dispatcherZone: string;
  firstTaskMs?: number;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const { Worker } = require(s.sdk) as { Worker: new (o: unknown) => WorkerLike };
  const history = new History<Welcome>((x) => x.atMs);
  let current: Welcome | undefined;
  const worker = new Worker({
    target: s.target,
    zone: s.zone,
    workerId: s.workerId,
    slots: s.slots,
    handler: () => {
      if (current !== undefined && current.firstTaskMs === undefined) {
        current.firstTaskMs = epochMs();
        history.changed();
      }
      return 'ok';
    },
    onConnected: (info: { sessionId: string; dispatcherId: string; dispatcherZone: string }) => {
      current = { atMs: epochMs(), ...info };
      history.add(current);
    },
  });
  await worker.start({ deadlineMs: 30_000 });
  emit('ready', { dispatcherId: current?.dispatcherId, dispatcherZone: current?.dispatcherZone, pid: process.pid });

  const stop = async (): Promise<void> => {
    await worker.close({ graceMs: 500 }).catch(() => undefined);
    process.exit(0);
  };
  answerCommands(
    {
      first: async (c) => {
        const since = Number(c['sinceMs'] ?? 0);
        const match = (x: Welcome): boolean =>
          x.atMs >= since &&
          (c['dispatcher'] === undefined || x.dispatcherId === c['dispatcher']) &&
          (c['notDispatcher'] === undefined || x.dispatcherId !== c['notDispatcher']) &&
          (c['withTask'] !== true || x.firstTaskMs !== undefined);
        return { found: (await history.first(match, Number(c['timeoutMs'] ?? 10_000))) ?? null };
      },
      placement: () => ({ found: current ?? null, stats: worker.stats }),
    },
    stop,
  );
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
