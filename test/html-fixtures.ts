/** Inputs shared by test/html.test.ts and test/browser.test.ts: hostile names and a hand-built series. */
import type { CheckResult } from "../src/check.js";
import { parseNativeJson } from "../src/ingest/nativeJson.js";
import type { PredictedTask, Prediction } from "../src/predict/types.js";
import { patchOf, runCheck, USER_EPOLL } from "./helpers.js";

/** The hostile names of the escaping test (also used by browser.test.ts). */
export const HOSTILE = {
  comm: "<img src=x onerror=alert(1)>",
  symbol: "evil</script><svg/onload=alert(2)>",
  module: `m"od'<b>`,
  file: `dump"'<i>x</i>&amp;.json`,
} as const;

/** A native capture whose comm, frame symbol, module and file name are all hostile. */
function hostileDoc(): Record<string, unknown> {
  return {
    format: "patchsafe-capture",
    version: 1,
    complete: true,
    hidesSchedFrames: true,
    tasks: [
      { pid: 100, tid: 100, comm: HOSTILE.comm, state: "S", flags: 0x400000, frames: [USER_EPOLL[0], `${HOSTILE.symbol}+0x10/0x40 [${HOSTILE.module}]`, ...USER_EPOLL.slice(1)] },
      { pid: 101, tid: 101, comm: `a"b'c&d`, state: "S", flags: 0x400000, frames: USER_EPOLL },
    ],
  };
}

/** The hostile capture checked for do_epoll_wait and the hostile symbol: two blocked tasks. */
export function hostileResult(): CheckResult {
  const cap = parseNativeJson(JSON.stringify(hostileDoc()), HOSTILE.file);
  // The patch names the hostile symbol too (defence in depth: patch names come from the admin and
  // --func validates them, but the page must not rely on that).
  const patch = patchOf("do_epoll_wait");
  patch.funcs.push({ object: HOSTILE.module, oldName: HOSTILE.symbol, oldSympos: 0, newName: null, newSize: null, force: false });
  return runCheck(cap, patch, { symbols: null });
}

/** The hostile capture as a native JSON file (the in-browser checker reads it). */
export function hostileCaptureJson(): string {
  return JSON.stringify(hostileDoc());
}

function task(tid: number, comm: string, statuses: PredictedTask["statuses"], extra: Partial<PredictedTask> = {}): PredictedTask {
  const seen = statuses.filter((s) => s !== null).length;
  const clean = statuses.filter((s) => s === "clean" || s === "done").length;
  const blocked = statuses.filter((s) => s === "blocked").length;
  const undecided = statuses.filter((s) => s === "undecided").length;
  const first = statuses.findIndex((s) => s === "clean" || s === "done");
  return { pid: tid, tid, comm, startTime: 1000 + tid, statuses, seen, clean, blocked, undecided, neverClean: clean === 0, neverLeaves: false, firstCleanAt: first < 0 ? null : first + 1, ...extra };
}

/** Four captures: a kthread that never leaves, a task that leaves after capture 2, alternating blockers. */
export function handPrediction(): Prediction {
  return {
    captures: 4,
    times: ["2026-11-01T10:00:00Z", "2026-11-01T10:00:02Z", "2026-11-01T10:00:04Z", "2026-11-01T10:00:06Z"],
    neverClean: [14],
    allCleanAt: null,
    allCleanShare: 0,
    kpatchLoadChance: 0,
    completion: { estimator: "hand-built (test)", seconds: null, low: null, high: null },
    tasks: [
      task(14, "ksoftirqd/0", ["blocked", "blocked", "blocked", "blocked"], { neverLeaves: true }),
      task(4519, "node", ["blocked", "blocked", "clean", "clean"]),
      task(200, HOSTILE.comm, ["blocked", "clean", "blocked", "clean"]),
      task(201, "alt-b", ["clean", "blocked", "clean", null]),
      task(300, "bash", ["clean", "clean", "clean", "clean"]),
    ],
    functions: [
      { object: "vmlinux", name: "smpboot_thread_fn", sympos: null, blockedIn: 4, tids: [[14], [14], [14], [14]] },
      { object: "vmlinux", name: "do_epoll_wait", sympos: null, blockedIn: 4, tids: [[4519, 200], [4519, 201], [200], []] },
    ],
    assumptions: ["captures are samples, not a trace"],
    warnings: [`a warning naming ${HOSTILE.symbol}`],
  };
}

