/**
 * Facts about the live host for a capture: stat parsing, host facts (boot id, release, config,
 * capabilities, namespaces), kpatch.ko's patch modules (/sys/kernel/kpatch) and traceable
 * functions. Reads only under /proc, /sys and /boot; writes nothing. The walk itself is
 * captureLive in capture.ts (which also reads /sys/kernel/livepatch).
 */
import { closeSync, constants as fsc, openSync, readdirSync, readFileSync, readlinkSync, readSync } from "node:fs";
import { arch, hostname, release } from "node:os";
import { gunzipSync } from "node:zlib";
import type { AppliedFunction, AppliedPatch, HostFacts, Reason } from "../model.js";

/** Inode numbers of the initial namespaces (include/linux/proc_ns.h PROC_*_INIT_INO). */
const INIT_USER_NS = "user:[4026531837]";
/** The initial PID namespace's inode (PROC_PID_INIT_INO, include/linux/proc_ns.h). */
const INIT_PID_NS = "pid:[4026531836]";
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
  // pid 2's comm alone does not prove the initial PID namespace: any process can name itself
  // kthreadd (prctl PR_SET_NAME), and in a container's namespace pid 2 is an ordinary process.
  let initPidNs: boolean | null = null;
  try {
    initPidNs = readlinkSync(`${procRoot}/self/ns/pid`) === INIT_PID_NS;
  } catch {
    initPidNs = null;
  }
  const machine = arch() === "x64" ? "x86_64" : arch() === "arm64" ? "aarch64" : arch();
  return {
    bootId: readOrNull(`${procRoot}/sys/kernel/random/boot_id`)?.toString("latin1").trim() ?? null,
    release: rel,
    arch: machine,
    hostname: hostname(),
    capturedAt: new Date().toISOString(),
    config: readConfig(procRoot, rel),
    capSysAdmin,
    initPidNamespace: kthreadd === undefined || initPidNs === false ? false : kthreadd === "kthreadd",
  };
}

/** Outcome of reading one /proc or sysfs file. */
export type ReadResult = { ok: true; data: Uint8Array } | { ok: false; errno: string };
/** The same shape under the name the kpatch reader's callers use. */
export type SysReadResult = ReadResult;

export function errnoOf(e: unknown): string {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "EIO";
}

/** Longest /proc or sysfs file read (a stack file is a few KiB). */
export const MAX_FILE = 1 << 20;
const OPEN_FLAGS = fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0);

let readBuffer: Uint8Array | null = null;

/** Reads one file without following a final symlink, up to 1 MiB. */
export function readNoFollow(path: string): ReadResult {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    return { ok: false, errno: errnoOf(e) };
  }
  try {
    // One read buffer for every call (a zeroed 64 KiB per file was most of a walk's time).
    const buf = (readBuffer ??= new Uint8Array(64 * 1024));
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(buf.slice(0, n));
      total += n;
      if (total >= MAX_FILE) break;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return { ok: true, data: out };
  } catch (e) {
    return { ok: false, errno: errnoOf(e) };
  } finally {
    closeSync(fd);
  }
}


/** Directory entries split by kind (symlinks count as "other": never descended into). */
function entries(path: string): { dirs: string[]; other: string[] } | { errno: string } {
  try {
    const ents = readdirSync(path, { withFileTypes: true });
    return { dirs: ents.filter((d) => d.isDirectory()).map((d) => d.name).sort(), other: ents.filter((d) => !d.isDirectory()).map((d) => d.name).sort() };
  } catch (e) {
    return { errno: errnoOf(e) };
  }
}

/** What kpatch.ko's sysfs tree says: the patch modules, or why they could not be read. */
export interface KpatchState {
  /**
   * kpatch.ko patch modules, oldest first (enabled or not, as sysfs shows them); [] when
   * kpatch.ko is not loaded; null when the tree could not be read or is not the layout below.
   */
  patches: AppliedPatch[] | null;
  /** Why `patches` is null, one line each, naming the path (empty otherwise). */
  problems: string[];
  warnings: Reason[];
}

/**
 * kpatch.ko's patch modules from `<sysRoot>/kernel/kpatch` (dynup/kpatch ≥ 0.4.0, kmod/core/core.c
 * and kmod/patch/kpatch-patch-hook.c since "kmod: restructure kpatch sysfs tree"):
 *
 *   /sys/kernel/kpatch/<patch module>/enabled                      "0" / "1"
 *   /sys/kernel/kpatch/<patch module>/checksum
 *   /sys/kernel/kpatch/<patch module>/<object>/<function,sympos>/{old_addr,new_addr}
 *
 * (sympos is printed 1 for "unique", as livepatch does). kpatch < 0.4 used
 * `/sys/kernel/kpatch/patches/<module>/functions/<function>`, which does not say which object a
 * function patches: that layout is refused, as is anything else this reader does not recognise,
 * because a missed applied patch could make a verdict falsely safe.
 *
 * sysfs does not show everything the kernel decides with, so the rest is filled in:
 * - the order (the newest loaded module's replacement is the one kpatch checks): /proc/modules
 *   lists modules newest first, so `loadOrder` (its names, as readModules returns them) orders
 *   the patches; without it, or when a module is missing from it, patches are listed by name and
 *   two enabled modules replacing one function are refused (which one is on top is unknown);
 * - `replace` is the module parameter `<sysRoot>/module/<name>/parameters/replace` (Y/N);
 * - KPATCH_FORCE_UNSAFE is not visible: every function is recorded not forced, with a warning
 *   (the conservative side: a forced function is then checked like any other);
 * - kpatch has no transition (stop_machine): `transition` is false, `forced` false.
 */
export function readKpatchPatches(
  sysRoot = "/sys",
  opts: { loadOrder?: string[] | null; read?: (path: string) => SysReadResult } = {},
): KpatchState {
  const read = opts.read ?? readNoFollow;
  const root = `${sysRoot}/kernel/kpatch`;
  const problems: string[] = [];
  const warnings: Reason[] = [];
  const fail = (): KpatchState => ({ patches: null, problems, warnings });
  const top = entries(root);
  // No directory: kpatch.ko is not loaded (no patch module can be enabled without it).
  if ("errno" in top) {
    if (top.errno === "ENOENT") return { patches: [], problems, warnings };
    problems.push(`${root} could not be listed (${top.errno})`);
    return fail();
  }
  for (const o of top.other) problems.push(`${root}/${o}: not a patch module directory (kpatch.ko's layout is ${root}/<module>/<object>/<function,sympos>)`);
  const text = (p: string): string | null => {
    const r = read(p);
    return r.ok ? new TextDecoder("latin1").decode(r.data).trim() : null;
  };
  const patches: AppliedPatch[] = [];
  for (const name of top.dirs) {
    const dir = `${root}/${name}`;
    const en = read(`${dir}/enabled`);
    if (name === "patches" && !en.ok && en.errno === "ENOENT") {
      // kpatch < 0.4.0: kpatch_patches_kobj. Empty when no patch module is loaded.
      const legacy = entries(dir);
      if ("errno" in legacy) problems.push(`${dir} could not be listed (${legacy.errno})`);
      else if (legacy.dirs.length + legacy.other.length > 0) {
        problems.push(
          `${dir}/ is kpatch < 0.4's layout (${legacy.dirs.join(", ") || legacy.other.join(", ")}): it does not say which object each function patches, so the applied stack cannot be read`,
        );
      }
      continue;
    }
    if (!en.ok) {
      problems.push(`${dir}/enabled could not be read (${en.errno})`);
      continue;
    }
    const enabled = new TextDecoder("latin1").decode(en.data).trim();
    if (enabled !== "0" && enabled !== "1") {
      problems.push(`${dir}/enabled: ${JSON.stringify(enabled.slice(0, 40))} is not 0 or 1`);
      continue;
    }
    const objs = entries(dir);
    if ("errno" in objs) {
      problems.push(`${dir} could not be listed (${objs.errno})`);
      continue;
    }
    if (objs.dirs.length === 0 && enabled === "1") {
      problems.push(`${dir}: enabled but no <object> directory (not kpatch.ko's layout)`);
      continue;
    }
    const funcs: AppliedFunction[] = [];
    for (const object of objs.dirs) {
      const odir = `${dir}/${object}`;
      if (!/^[A-Za-z0-9_.-]+$/.test(object)) problems.push(`${odir}: ${JSON.stringify(object)} is not an object name`);
      const fns = entries(odir);
      if ("errno" in fns) {
        problems.push(`${odir} could not be listed (${fns.errno})`);
        continue;
      }
      for (const fn of fns.dirs) {
        const m = /^([^,]+),(\d{1,10})$/.exec(fn);
        if (m === null) {
          problems.push(`${odir}/${fn}: not a <function,sympos> directory`);
          continue;
        }
        const attrs = entries(`${odir}/${fn}`);
        if ("errno" in attrs) {
          problems.push(`${odir}/${fn} could not be listed (${attrs.errno})`);
          continue;
        }
        if (!attrs.other.includes("old_addr") && !attrs.other.includes("new_addr")) {
          problems.push(`${odir}/${fn}: no old_addr/new_addr (not kpatch.ko's layout)`);
          continue;
        }
        funcs.push({ object, oldName: m[1], oldSympos: Number(m[2]), newName: null, newSize: null, force: false });
      }
    }
    funcs.sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : a.oldName < b.oldName ? -1 : a.oldName > b.oldName ? 1 : a.oldSympos - b.oldSympos));
    const rp = read(`${sysRoot}/module/${name}/parameters/replace`);
    const rv = rp.ok ? new TextDecoder("latin1").decode(rp.data).trim() : null;
    if (rv !== null && !/^[YN01]$/.test(rv)) problems.push(`${sysRoot}/module/${name}/parameters/replace: ${JSON.stringify(rv.slice(0, 40))} is not Y or N`);
    if (!rp.ok && rp.errno !== "ENOENT") warnings.push({ code: "kpatch-unreadable", message: `${sysRoot}/module/${name}/parameters/replace could not be read (${rp.errno}): taken as not replace` });
    patches.push({ name, enabled: enabled === "1", transition: false, replace: rv === "Y" || rv === "1", forced: false, stackOrder: null, funcs });
  }
  if (problems.length > 0) return fail();

  // Oldest first: /proc/modules lists the newest module first.
  const order = opts.loadOrder ?? null;
  const known = order !== null && patches.every((p) => order.includes(p.name));
  if (known) patches.sort((a, b) => order.indexOf(b.name) - order.indexOf(a.name));
  const enabled = patches.filter((p) => p.enabled);
  const shared = new Map<string, string[]>();
  for (const p of enabled) {
    for (const f of p.funcs) {
      const key = `${f.object}:${f.oldName},${f.oldSympos || 1}`;
      shared.set(key, [...(shared.get(key) ?? []), p.name]);
    }
  }
  const overlaps = [...shared].filter(([, ps]) => ps.length > 1);
  if (overlaps.length > 0) {
    const list = overlaps.map(([k, ps]) => `${k} (${ps.join(", ")})`).join("; ");
    if (!known) {
      problems.push(`several enabled kpatch modules replace the same function (${list}) and their load order is unknown (${order === null ? "/proc/modules not read" : "a module is missing from /proc/modules"}): which replacement is on top cannot be told`);
      return fail();
    }
    warnings.push({
      code: "kpatch-order-assumed",
      message: `several enabled kpatch modules replace the same function (${list}): the newest loaded (/proc/modules order) is taken as on top; a module disabled and re-enabled since would be newer`,
    });
  } else if (!known && enabled.length > 1) {
    warnings.push({ code: "kpatch-order-unknown", message: "the load order of the kpatch modules is unknown (/proc/modules not read): listed by name" });
  }
  if (patches.length > 0) {
    warnings.push({ code: "kpatch-forced-unknown", message: "whether a kpatch function is forced (KPATCH_FORCE_UNSAFE) is not visible in sysfs: recorded as not forced, so it is checked" });
  }
  return { patches, problems, warnings };
}

/**
 * kpatch.ko state on this host that patchsafe could not read: [] when kpatch.ko is not loaded
 * or its tree was read (the capture then records it as applied patches), else one line per
 * problem naming the path (an unreadable or unrecognised /sys/kernel/kpatch), for an error that
 * asks for --applied: a missed applied patch could make a verdict falsely safe.
 */
export function loadedKpatchModules(sysRoot = "/sys", procRoot = "/proc"): string[] {
  const mods = readNoFollow(`${procRoot}/modules`);
  const loadOrder = mods.ok ? moduleNames(new TextDecoder("latin1").decode(mods.data)) : null;
  const st = readKpatchPatches(sysRoot, { loadOrder });
  return st.patches === null ? st.problems : [];
}

/** Module names from /proc/modules text, in its order (newest first). */
function moduleNames(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.split(" ", 1)[0])
    .filter((n) => n !== "");
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
