import { readlinkSync } from 'node:fs';
import os from 'node:os';

/**
 * Lowers the scheduling priority of the calling thread only (Linux: `setpriority` on a thread
 * id changes that thread, not the process). `canary up`'s control-plane thread (and the
 * database thread it starts) runs niced so that, when the cores are busy, users' requests on the
 * proxy's thread are served first and the API, the dashboard, the analysis and their SQL take
 * what is left. Returns false where the thread id
 * cannot be known (no /proc/thread-self) or the change is refused.
 */
export function niceThisThread(nice: number): boolean {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    os.setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}
