/**
 * Live capture of this host: walk /proc/<pid>/task/<tid>, read stack, comm (bytes), stat and
 * status of every thread, plus the host facts the rules need. Reads only under /proc and /sys;
 * writes nothing. patchsafe's own threads are left out (the capturing thread is always running)
 * and the capture says so.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { arch, hostname, release } from "node:os";
import { gunzipSync } from "node:zlib";
import { CaptureBuilder, TokenKind } from "../ingest/builder.js";
import { CH } from "../ingest/bytes.js";
import type { Capture, HostFacts, Reason } from "../model.js";

/** /proc/<pid>/stat field 9 flag bits (include/linux/sched.h). */
export const PF = {
  IO_WORKER: 0x00000010,
  FROZEN: 0x00010000,
  NOFREEZE: 0x00008000,
  USER_WORKER: 0x00004000,
  KTHREAD: 0x00200000,
} as const;

/** Inode numbers of the initial namespaces (include/linux/proc_ns.h PROC_*_INIT_INO). */
const INIT_USER_NS = "user:[4026531837]";
const CAP_SYS_ADMIN_BIT = 21n;

export interface LiveOptions {
  /** Root of the proc filesystem (tests point it at a fake tree). */
  procRoot?: string;
  sysRoot?: string;
  /** pid whose threads are left out (default: this process). */
  selfPid?: number;
}

function errnoOf(e: unknown): string {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "EIO";
}

function readOrNull(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch {
    return null;
  }
}

export interface StatFields {
  state: string;
  ppid: number;
  flags: number;
  startTime: number;
  cpu: number | null;
}

/** Parses /proc/<pid>/stat after the last `)`: comm may contain `)` and spaces. */
export function parseStat(text: string): StatFields | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const f = text.slice(close + 2).trim().split(" ");
  if (f.length < 20) return null;
  const num = (s: string | undefined): number => (s === undefined ? Number.NaN : Number(s));
  const state = f[0];
  const ppid = num(f[1]);
  const flags = num(f[6]);
  const startTime = num(f[19]);
  const cpu = num(f[36]);
  if (!/^[A-Za-z]$/.test(state) || !Number.isFinite(ppid) || !Number.isFinite(flags) || !Number.isFinite(startTime)) return null;
  return { state, ppid, flags, startTime, cpu: Number.isFinite(cpu) ? cpu : null };
}

function readConfig(procRoot: string, rel: string): HostFacts["config"] {
  const cfg: HostFacts["config"] = { livepatch: null, reliableStacktrace: null, unwinder: null };
  let text: string | null = null;
  const gz = readOrNull(`${procRoot}/config.gz`);
  if (gz !== null) {
    try {
      text = gunzipSync(gz).toString("latin1");
    } catch {
      text = null;
    }
  }
  if (text === null) text = readOrNull(`/boot/config-${rel}`)?.toString("latin1") ?? null;
  if (text === null) return cfg;
  const on = (name: string): boolean => new RegExp(`^CONFIG_${name}=y$`, "m").test(text!);
  cfg.livepatch = on("LIVEPATCH");
  cfg.reliableStacktrace = on("HAVE_RELIABLE_STACKTRACE");
  cfg.unwinder = on("UNWINDER_ORC") ? "orc" : on("UNWINDER_FRAME_POINTER") ? "frame-pointer" : "other";
  return cfg;
}

/** Host facts of the machine patchsafe runs on. */
export function liveHostFacts(procRoot = "/proc"): HostFacts {
  const rel = release();
  let capSysAdmin: boolean | null = null;
  const status = readOrNull(`${procRoot}/self/status`)?.toString("latin1");
  const m = status === undefined ? null : /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  let initUserNs: boolean | null = null;
  try {
    initUserNs = readlinkSync(`${procRoot}/self/ns/user`) === INIT_USER_NS;
  } catch {
    initUserNs = null;
  }
  if (m !== null) capSysAdmin = ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN_BIT) & 1n) === 1n && initUserNs !== false;
  const kthreadd = readOrNull(`${procRoot}/2/comm`)?.toString("latin1").trim();
  const machine = arch() === "x64" ? "x86_64" : arch() === "arm64" ? "aarch64" : arch();
  return {
    bootId: readOrNull(`${procRoot}/sys/kernel/random/boot_id`)?.toString("latin1").trim() ?? null,
    release: rel,
    arch: machine,
    hostname: hostname(),
    capturedAt: new Date().toISOString(),
    config: readConfig(procRoot, rel),
    capSysAdmin,
    initPidNamespace: kthreadd === undefined ? false : kthreadd === "kthreadd",
  };
}

/** Enabled livepatches and kpatch modules on this host (names), for the not-yet-supported guard. */
export function livePatchState(sysRoot = "/sys"): { livepatches: string[]; kpatch: string[] } {
  const list = (dir: string): string[] => {
    try {
      return readdirSync(dir).sort();
    } catch {
      return [];
    }
  };
  return { livepatches: list(`${sysRoot}/kernel/livepatch`), kpatch: list(`${sysRoot}/kernel/kpatch/patches`) };
}

/** Captures every thread's kernel stack. Throws only when /proc itself cannot be listed. */
export function captureLive(opts: LiveOptions = {}): Capture {
  const procRoot = opts.procRoot ?? "/proc";
  const selfPid = opts.selfPid ?? process.pid;
  const b = new CaptureBuilder();
  const excluded: Capture["excluded"] = [];
  let vanished = 0;
  const unreadable = new Map<string, number>();
  const pids = readdirSync(procRoot)
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b2) => a - b2);
  for (const pid of pids) {
    let tids: number[];
    try {
      tids = readdirSync(`${procRoot}/${pid}/task`)
        .filter((d) => /^\d+$/.test(d))
        .map(Number)
        .sort((a, b2) => a - b2);
    } catch {
      vanished++;
      continue;
    }
    for (const tid of tids) {
      if (pid === selfPid) {
        excluded.push({ pid, tid, reason: "patchsafe's own thread (the capturing thread is always running)" });
        continue;
      }
      const dir = `${procRoot}/${pid}/task/${tid}`;
      const statText = readOrNull(`${dir}/stat`);
      if (statText === null) {
        vanished++;
        continue;
      }
      const stat = parseStat(statText.toString("latin1"));
      const commRaw = readOrNull(`${dir}/comm`);
      // comm ends with one '\n' added by the kernel; the bytes before it are the name, raw.
      const comm = commRaw === null ? null : new Uint8Array(commRaw.subarray(0, commRaw.length > 0 && commRaw[commRaw.length - 1] === CH.LF ? commRaw.length - 1 : commRaw.length));
      const statusText = readOrNull(`${dir}/status`)?.toString("latin1");
      const kt = statusText === undefined ? null : /^Kthread:\s*([01])$/m.exec(statusText);
      const ps = readOrNull(`${dir}/patch_state`)?.toString("latin1").trim();
      const task = b.startTask(
        {
          pid,
          tid,
          comm,
          state: stat?.state ?? null,
          flags: stat?.flags ?? null,
          ppid: stat?.ppid ?? null,
          startTime: stat?.startTime ?? null,
          cpu: stat?.cpu ?? null,
          statusKthread: kt === null ? null : kt[1] === "1",
          patchState: ps === "-1" ? -1 : ps === "0" ? 0 : ps === "1" ? 1 : null,
        },
        0,
      );
      let stack: Buffer;
      try {
        stack = readFileSync(`${dir}/stack`);
      } catch (e) {
        const code = errnoOf(e);
        if (code === "ENOENT" || code === "ESRCH") {
          // The thread exited mid-walk: it is gone, not a blocker.
          b.endTask();
          b.tasks.pop();
          vanished++;
          continue;
        }
        task.stackStatus = "unreadable";
        task.errno = code;
        unreadable.set(code, (unreadable.get(code) ?? 0) + 1);
        b.endTask();
        continue;
      }
      let pos = 0;
      while (pos < stack.length) {
        let nl = stack.indexOf(CH.LF, pos);
        if (nl < 0) nl = stack.length;
        if (nl > pos) {
          const kind = b.addProcFrameLine(stack, pos, nl, 0);
          if (kind === TokenKind.EndMarker) task.endMarker = true;
          else if (kind === TokenKind.Bad) b.addUnparsed(0);
        }
        pos = nl + 1;
      }
      b.endTask();
      if (task.frameCount >= 64 && !task.endMarker) task.stackStatus = "truncated";
    }
  }
  const cap = b.finish({ name: "live", format: "live-proc", section: 0, firstLine: null, lastLine: null });
  cap.host = liveHostFacts(procRoot);
  cap.excluded = excluded;
  const reasons: Reason[] = [];
  for (const [code, n] of unreadable) {
    reasons.push({
      code: "unreadable",
      message: `${n} thread stack(s) could not be read (${code}${code === "EPERM" ? "; on some hosts the threads of pid 1 are unreadable even to root" : ""})`,
    });
  }
  if (cap.host.capSysAdmin !== true) reasons.push({ code: "no-cap-sys-admin", message: "the capture ran without CAP_SYS_ADMIN in the initial user namespace: stacks of other tasks may be hidden" });
  if (cap.host.initPidNamespace !== true) reasons.push({ code: "not-initial-pid-namespace", message: "pid 2 (kthreadd) is not visible: the capture ran inside a PID namespace and sees only part of the host" });
  cap.complete = reasons.length === 0;
  cap.completeness = reasons;
  if (vanished > 0) cap.warnings.push({ code: "vanished", message: `${vanished} thread(s) exited during the walk and are not part of the capture` });
  return cap;
}

/**
 * Functions ftrace can hook (and so livepatch can patch), from available_filter_functions where
 * tracefs is mounted and readable; null when it is not (the curated notrace list applies then).
 */
export function readTraceable(sysRoot = "/sys"): Set<string> | null {
  for (const path of [`${sysRoot}/kernel/tracing/available_filter_functions`, `${sysRoot}/kernel/debug/tracing/available_filter_functions`]) {
    const text = readOrNull(path)?.toString("latin1");
    if (text === undefined || text.length === 0) continue;
    const out = new Set<string>();
    for (const line of text.split("\n")) {
      const name = line.split(" ")[0].trim();
      if (name !== "") out.add(name);
    }
    return out;
  }
  return null;
}
