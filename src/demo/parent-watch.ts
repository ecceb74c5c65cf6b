/**
 * Preloaded (`node --require parent-watch.js …`) into every process the demo
 * starts, the real `zonal serve` included: when the demo process is gone
 * (killed with SIGKILL, so it could not stop its children), the child sends
 * itself SIGTERM and stops as it would on Ctrl-C. The demo passes its pid in
 * ZONAL_DEMO_PARENT_PID; without it this does nothing.
 */
export {};

const CHECK_EVERY_MS = 500;

const parentPid = Number(process.env['ZONAL_DEMO_PARENT_PID'] ?? '');

function parentAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: it is gone. EPERM: it exists but is not ours to signal (the pid was reused); treat it as gone.
    return false;
  }
}

if (Number.isInteger(parentPid) && parentPid > 0) {
  const timer = setInterval(() => {
    if (parentAlive(parentPid)) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, CHECK_EVERY_MS);
  timer.unref();
}
