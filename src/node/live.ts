/**
 * Facts about the live host for a capture: stat parsing, host facts (boot id, release, config,
 * capabilities, namespaces), the live patch state and traceable functions. Reads only under
 * /proc, /sys and /boot; writes nothing. The walk itself is captureLive in capture.ts.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { arch, hostname, release } from "node:os";
import { gunzipSync } from "node:zlib";
import type { HostFacts } from "../model.js";

/** Inode numbers of the initial namespaces (include/linux/proc_ns.h PROC_*_INIT_INO). */
const INIT_USER_NS = "user:[4026531837]";
const CAP_SYS_ADMIN_BIT = 21n;

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

/** kpatch.ko patch modules loaded on this host (/sys/kernel/kpatch/patches), whose stack patchsafe does not read yet. */
export function loadedKpatchModules(sysRoot = "/sys"): string[] {
  try {
    return readdirSync(`${sysRoot}/kernel/kpatch/patches`).sort();
  } catch {
    return [];
  }
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
