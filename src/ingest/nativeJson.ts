/**
 * patchsafe's native JSON capture (`"format": "patchsafe-capture"`): tasks with their state,
 * flags, patch_state and frames, plus host facts and completeness. It is the fixture format of
 * the test suite and the human-readable twin of the binary snapshot (the snapshot issue makes it
 * versioned and binary). Frames are frame tokens as the kernel prints them:
 *   "schedule+0x3d/0xa0"  "? foo+0x10/0x40 [mod]"  "0xffffffffc0451234"
 * or objects {"text": …, "address": "0x…", "regs": true}, or {"unparsed": true} for a line that
 * could not be read (the task stays undecided: it may have been a frame).
 * comm is a string whose code points U+0000–U+00FF are the raw bytes (JSON escapes the rest).
 */
import { PatchsafeError } from "../errors.js";
import { type Capture, type HostFacts, emptyHostFacts, FrameFlag, hex64, MAX_COMM_BYTES, type Reason, type StackStatus, type Task, type TriState, u64 } from "../model.js";
import { encodeLatin1, latin1 } from "./bytes.js";
import { CaptureBuilder, TokenKind } from "./builder.js";
import { jsonErrorOffset, lineAt } from "./jsonPosition.js";

export const NATIVE_FORMAT = "patchsafe-capture";
export const NATIVE_VERSION = 1;

const STACK_STATUSES: StackStatus[] = ["ok", "empty", "unreadable", "truncated", "vanished"];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** True when the text looks like a native capture (cheap sniff for format detection). */
export function looksLikeNativeJson(head: string): boolean {
  return /^\s*\{/.test(head) && head.includes(`"${NATIVE_FORMAT}"`);
}

export function parseNativeJson(text: string, file = "<input>"): Capture {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 120);
    const at = jsonErrorOffset(text);
    throw new PatchsafeError("E_INPUT", `not valid JSON: ${msg}`, { file, line: at === null ? undefined : lineAt(text, at) });
  }
  const fail = (path: string, what: string): never => {
    throw new PatchsafeError("E_INPUT", `${path}: ${what}`, { file });
  };
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return fail("$", "expected an object");
  if (doc.format !== NATIVE_FORMAT) return fail("$.format", `expected "${NATIVE_FORMAT}"`);
  if (typeof doc.version !== "number" || !Number.isInteger(doc.version)) return fail("$.version", "expected an integer");
  if (doc.version > NATIVE_VERSION) {
    return fail("$.version", `capture format ${doc.version} is newer than this patchsafe reads (≤ ${NATIVE_VERSION}); upgrade patchsafe`);
  }
  const int = (v: Json | undefined, path: string, nullable = true): number | null => {
    if (v === undefined || v === null) return nullable ? null : fail(path, "expected an integer");
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) return fail(path, "expected a non-negative integer or null");
    return v;
  };
  const str = (v: Json | undefined, path: string): string | null => {
    if (v === undefined || v === null) return null;
    if (typeof v !== "string") return fail(path, "expected a string or null");
    return v;
  };
  const bool = (v: Json | undefined, path: string): boolean | null => {
    if (v === undefined || v === null) return null;
    if (typeof v !== "boolean") return fail(path, "expected a boolean or null");
    return v;
  };
  const reasons = (v: Json | undefined, path: string): Reason[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) return fail(path, "expected an array");
    return v.map((r, i) => {
      if (r === null || typeof r !== "object" || Array.isArray(r) || typeof r.code !== "string" || typeof r.message !== "string") {
        return fail(`${path}[${i}]`, "expected {code, message}");
      }
      // Codes reach --json, where they are a public contract: words and hyphens only.
      if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(r.code)) return fail(`${path}[${i}].code`, "expected lowercase words joined by hyphens");
      return { code: r.code, message: r.message };
    });
  };

  const host: HostFacts = emptyHostFacts();
  const h = doc.host;
  if (h !== undefined && h !== null) {
    if (typeof h !== "object" || Array.isArray(h)) return fail("$.host", "expected an object");
    host.bootId = str(h.bootId, "$.host.bootId");
    host.release = str(h.release, "$.host.release");
    host.arch = str(h.arch, "$.host.arch");
    host.hostname = str(h.hostname, "$.host.hostname");
    host.capturedAt = str(h.capturedAt, "$.host.capturedAt");
    host.capSysAdmin = bool(h.capSysAdmin, "$.host.capSysAdmin");
    host.initPidNamespace = bool(h.initPidNamespace, "$.host.initPidNamespace");
    const c = h.config;
    if (c !== undefined && c !== null) {
      if (typeof c !== "object" || Array.isArray(c)) return fail("$.host.config", "expected an object");
      host.config.livepatch = bool(c.livepatch, "$.host.config.livepatch");
      host.config.reliableStacktrace = bool(c.reliableStacktrace, "$.host.config.reliableStacktrace");
      const u = str(c.unwinder, "$.host.config.unwinder");
      if (u !== null && u !== "orc" && u !== "frame-pointer" && u !== "other") return fail("$.host.config.unwinder", "expected orc, frame-pointer or other");
      host.config.unwinder = u;
    }
  }
  let complete: TriState = "unknown";
  if (doc.complete === true || doc.complete === false) complete = doc.complete;
  else if (doc.complete !== undefined && doc.complete !== "unknown") return fail("$.complete", 'expected true, false or "unknown"');
  const hides = doc.hidesSchedFrames;
  if (hides !== undefined && typeof hides !== "boolean") return fail("$.hidesSchedFrames", "expected a boolean");

  if (!Array.isArray(doc.tasks)) return fail("$.tasks", "expected an array");
  const b = new CaptureBuilder();
  doc.tasks.forEach((t, ti) => {
    const p = `$.tasks[${ti}]`;
    if (t === null || typeof t !== "object" || Array.isArray(t)) return fail(p, "expected an object");
    const commStr = str(t.comm, `${p}.comm`);
    let comm: Uint8Array | null = null;
    if (commStr !== null) {
      if (commStr.length > MAX_COMM_BYTES) fail(`${p}.comm`, `${commStr.length} bytes: a task name is at most ${MAX_COMM_BYTES}`);
      for (let i = 0; i < commStr.length; i++) if (commStr.charCodeAt(i) > 0xff) fail(`${p}.comm`, "code points above U+00FF cannot be comm bytes");
      comm = encodeLatin1(commStr);
    }
    const state = str(t.state, `${p}.state`);
    if (state !== null && !/^[A-Za-z]$/.test(state)) fail(`${p}.state`, "expected one state letter");
    const ps = t.patchState;
    if (ps !== undefined && ps !== null && ps !== -1 && ps !== 0 && ps !== 1) fail(`${p}.patchState`, "expected -1, 0, 1 or null");
    const status = t.stackStatus ?? "ok";
    if (typeof status !== "string" || !STACK_STATUSES.includes(status as StackStatus)) fail(`${p}.stackStatus`, `expected one of ${STACK_STATUSES.join(", ")}`);
    const task: Partial<Task> = {
      pid: int(t.pid, `${p}.pid`),
      tid: int(t.tid, `${p}.tid`),
      comm,
      state,
      flags: int(t.flags, `${p}.flags`),
      ppid: int(t.ppid, `${p}.ppid`),
      startTime: int(t.startTime, `${p}.startTime`),
      cpu: int(t.cpu, `${p}.cpu`),
      patchState: (ps ?? null) as Task["patchState"],
      stackStatus: status as StackStatus,
      errno: str(t.errno, `${p}.errno`),
      running: bool(t.running, `${p}.running`) ?? false,
      statusKthread: bool(t.statusKthread, `${p}.statusKthread`),
      endMarker: bool(t.endMarker, `${p}.endMarker`) ?? false,
    };
    const started = b.startTask(task, 0);
    const frames = t.frames ?? [];
    if (!Array.isArray(frames)) return fail(`${p}.frames`, "expected an array");
    frames.forEach((f, fi) => {
      const fp = `${p}.frames[${fi}]`;
      let text: string;
      let extra = 0;
      let addr: bigint | null = null;
      if (f !== null && typeof f === "object" && !Array.isArray(f) && f.unparsed === true) {
        b.addUnparsed(0);
        return;
      }
      if (typeof f === "string") text = f;
      else if (f !== null && typeof f === "object" && !Array.isArray(f) && typeof f.text === "string") {
        text = f.text;
        if (f.regs === true) extra |= FrameFlag.REGS;
        if (f.inline === true) extra |= FrameFlag.INLINE;
        if (f.address !== undefined && f.address !== null) {
          if (typeof f.address !== "string" || !/^0x[0-9a-fA-F]{1,16}$/.test(f.address)) fail(`${fp}.address`, "expected a hex string 0x…");
          addr = BigInt(f.address as string);
        }
      } else return fail(fp, "expected a frame string or {text, address?, regs?}");
      const bytes = encodeLatin1(text);
      const lo = addr === null ? 0 : Number(addr & 0xffffffffn);
      const hi = addr === null ? 0 : Number(addr >> 32n);
      const kind = b.addToken(bytes, 0, bytes.length, 0, addr !== null, lo, hi, extra);
      if (kind === TokenKind.EndMarker) started.endMarker = true;
      else if (kind === TokenKind.Bad) fail(fp, `not a frame token: ${JSON.stringify(text)}`);
    });
    // endTask turns an "ok" task without frames into "empty"; keep what the file said otherwise.
    b.endTask(undefined, (t) => {
      if (status !== "ok") t.stackStatus = status as StackStatus;
    });
  });
  const cap = b.finish({ name: file, format: NATIVE_FORMAT, section: 0, firstLine: null, lastLine: null });
  cap.host = host;
  cap.complete = complete;
  cap.completeness = reasons(doc.completeness, "$.completeness");
  cap.warnings = reasons(doc.warnings, "$.warnings");
  cap.hidesSchedFrames = hides ?? true;
  // Enabled live patches recorded with the capture (sysfs), oldest first.
  const lps = doc.livepatches;
  if (lps !== undefined && lps !== null) {
    if (!Array.isArray(lps)) return fail("$.livepatches", "expected an array");
    cap.livepatches = lps.map((p, i) => {
      const pp = `$.livepatches[${i}]`;
      if (p === null || typeof p !== "object" || Array.isArray(p)) return fail(pp, "expected an object");
      const name = str(p.name, `${pp}.name`);
      if (name === null || !/^[A-Za-z0-9_.-]+$/.test(name)) return fail(`${pp}.name`, "expected the patch module's name");
      if (!Array.isArray(p.funcs)) return fail(`${pp}.funcs`, "expected an array");
      return {
        name,
        enabled: bool(p.enabled, `${pp}.enabled`) ?? true,
        transition: bool(p.transition, `${pp}.transition`) ?? false,
        replace: bool(p.replace, `${pp}.replace`) ?? false,
        forced: bool(p.forced, `${pp}.forced`) ?? false,
        stackOrder: int(p.stackOrder, `${pp}.stackOrder`),
        funcs: p.funcs.map((f, j) => {
          const fp = `${pp}.funcs[${j}]`;
          if (f === null || typeof f !== "object" || Array.isArray(f)) return fail(fp, "expected an object");
          const oldName = str(f.oldName, `${fp}.oldName`);
          if (oldName === null) return fail(`${fp}.oldName`, "expected a symbol name");
          return {
            object: str(f.object, `${fp}.object`) ?? "vmlinux",
            oldName,
            oldSympos: int(f.oldSympos, `${fp}.oldSympos`) ?? 0,
            newName: str(f.newName, `${fp}.newName`),
            newSize: int(f.newSize, `${fp}.newSize`),
            force: bool(f.force, `${fp}.force`) ?? false,
          };
        }),
      };
    });
  }
  const mods = doc.modules;
  if (mods !== undefined && mods !== null) {
    if (!Array.isArray(mods) || !mods.every((x) => typeof x === "string")) return fail("$.modules", "expected an array of module names");
    cap.modules = mods as string[];
  }
  const ex = doc.excluded ?? [];
  if (!Array.isArray(ex)) return fail("$.excluded", "expected an array");
  cap.excluded = ex.map((e, i) => {
    if (e === null || typeof e !== "object" || Array.isArray(e)) return fail(`$.excluded[${i}]`, "expected an object");
    return { pid: int(e.pid, `$.excluded[${i}].pid`, false)!, tid: int(e.tid, `$.excluded[${i}].tid`, false)!, reason: str(e.reason, `$.excluded[${i}].reason`) ?? "" };
  });
  return cap;
}

/** The frame token for row i, as the kernel would print it. */
export function frameText(cap: Capture, i: number): string {
  const f = cap.frames;
  const flags = f.flags[i];
  if (flags & FrameFlag.UNPARSED) return "<unparsed line>";
  const guess = flags & FrameFlag.GUESS ? "? " : "";
  if (flags & FrameFlag.BARE_HEX) return `${guess}0x${u64(f.addrLo[i], f.addrHi[i]).toString(16)}`;
  let s = guess + cap.strings.get(f.symbol[i]);
  if (flags & FrameFlag.SYMBOLIC && (f.offset[i] !== 0 || flags & FrameFlag.HAS_SIZE)) s += `+0x${f.offset[i].toString(16)}`;
  if (flags & FrameFlag.HAS_SIZE) s += `/0x${f.size[i].toString(16)}`;
  const obj = cap.strings.get(f.object[i]);
  if (obj !== "vmlinux") s += f.buildId[i] >= 0 ? ` [${obj} ${cap.strings.get(f.buildId[i])}]` : ` [${obj}]`;
  return s;
}

/** Serializes a capture to the native JSON form (deterministic key order). */
export function captureToNativeJson(cap: Capture): string {
  const tasks = cap.tasks.map((t) => {
    const frames: Json[] = [];
    for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
      const flags = cap.frames.flags[i];
      if (flags & FrameFlag.UNPARSED) {
        frames.push({ unparsed: true });
        continue;
      }
      const text = frameText(cap, i);
      const addr = cap.frames.address(i);
      if ((addr !== null && !(flags & FrameFlag.BARE_HEX)) || flags & (FrameFlag.REGS | FrameFlag.INLINE)) {
        const o: { [k: string]: Json } = { text };
        if (addr !== null && !(flags & FrameFlag.BARE_HEX)) o.address = hex64(addr);
        if (flags & FrameFlag.REGS) o.regs = true;
        if (flags & FrameFlag.INLINE) o.inline = true;
        frames.push(o);
      } else frames.push(text);
    }
    return { ...taskFactsJson(t), frames };
  });
  const doc = {
    format: NATIVE_FORMAT,
    version: NATIVE_VERSION,
    host: cap.host,
    complete: cap.complete,
    completeness: cap.completeness,
    hidesSchedFrames: cap.hidesSchedFrames,
    excluded: cap.excluded,
    warnings: cap.warnings,
    livepatches: cap.livepatches,
    modules: cap.modules,
    tasks,
  };
  return `${JSON.stringify(doc, null, 1)}\n`;
}

/** A task's facts as the JSON forms write them (comm as a string of its raw bytes, U+0000–U+00FF). */
export function taskFactsJson(t: Task) {
  return {
    pid: t.pid,
    tid: t.tid,
    comm: t.comm === null ? null : latin1(t.comm, 0, t.comm.length),
    state: t.state,
    flags: t.flags,
    ppid: t.ppid,
    startTime: t.startTime,
    cpu: t.cpu,
    patchState: t.patchState,
    stackStatus: t.stackStatus,
    errno: t.errno,
    running: t.running,
    statusKthread: t.statusKthread,
    endMarker: t.endMarker,
  };
}
