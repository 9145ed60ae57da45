/**
 * Live capture for snapshots (issue 5): every thread's stack, comm, stat, status and
 * patch_state, plus the applied patches (/sys/kernel/livepatch, and kpatch.ko's
 * /sys/kernel/kpatch), /proc/modules and the host facts, with reads that cannot hang the capture.
 *
 * Why a helper process: reading /proc/<pid>/stack takes the target's exec_update_lock
 * (fs/proc/base.c lock_trace(): down_read_killable), so a task stuck in exec can block the read
 * indefinitely, and a synchronous read in Node cannot be interrupted. Reading on a worker thread
 * is not enough either: Node joins every worker at exit, so the process would hang at exit
 * instead (measured). So every file is read by a small helper process (`node -e`), brokered by
 * a worker thread that only does asynchronous pipe I/O, while this thread waits for each result
 * on a shared counter with a deadline (Atomics.wait). A read that misses its deadline marks that
 * thread's stack unreadable (ETIMEDOUT); the helper is SIGKILLed (which ends the kernel's
 * killable wait) and a fresh one takes the rest of the walk. The caller stays synchronous.
 *
 * The walk uses no ptrace, sends no signal and takes no userspace lock. Files are opened with
 * O_NOFOLLOW, and only directory entries that are directories are descended into, so no symlink
 * leads out of /proc (or a test's fake tree). Threads that exit mid-walk are simply gone.
 */
import { readdirSync } from "node:fs";
import type { MessageChannel, Worker } from "node:worker_threads";
import { workerThreads } from "./lazyBuiltins.js";
import { CaptureBuilder, TokenKind } from "../ingest/builder.js";
import type { AppliedFunction, AppliedPatch, Capture, Reason } from "../model.js";
import { errnoOf, liveHostFacts, MAX_FILE, parseStat, readKpatchPatches, type ReadResult, readNoFollow } from "./live.js";

export { readNoFollow, type ReadResult };

/** Outcome of reading one file: its bytes, or the errno name (ETIMEDOUT when the deadline passed). */

/** Reads files with a deadline each. */
export interface FileReader {
  /** Reads the files in order; stops at the first timeout (the rest are reported ETIMEDOUT too). */
  readAll(paths: string[]): ReadResult[];
  close(): void;
  /** What this reader guarantees, for the capture's warnings. */
  readonly kind: "helper-process" | "direct";
  /** The deadline per file, ms (null: none). */
  readonly timeoutMs: number | null;
}


/** Reads in this thread: no deadline (fallback when a worker cannot start, and for tests). */
export function directReader(): FileReader {
  return { kind: "direct", timeoutMs: null, readAll: (paths) => paths.map(readNoFollow), close() {} };
}

// The reader process: reads each requested file (NUL-separated paths, one batch per line) with
// O_NOFOLLOW and writes [u32 length][u8 kind: 0 data, 1 errno][payload] per file, in order.
/** A line of the reader script, to recognise our own helper process in /proc/<pid>/cmdline. */
const HELPER_MARKER = "const flags = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0);";
const CHILD_SOURCE = `
const fs = require("node:fs");
const flags = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0);
function out(kind, payload) {
  const h = Buffer.alloc(5); h.writeUInt32LE(payload.length, 0); h[4] = kind;
  fs.writeSync(1, Buffer.concat([h, payload]));
}
function read(path) {
  let fd;
  try { fd = fs.openSync(path, flags); } catch (e) { return out(1, Buffer.from(String((e && e.code) || "EIO"))); }
  try {
    const chunks = []; let total = 0; const buf = Buffer.allocUnsafe(65536);
    for (;;) { const n = fs.readSync(fd, buf, 0, buf.length, null); if (n === 0) break; chunks.push(Buffer.from(buf.subarray(0, n))); total += n; if (total >= ${MAX_FILE}) break; }
    out(0, Buffer.concat(chunks));
  } catch (e) { out(1, Buffer.from(String((e && e.code) || "EIO"))); } finally { fs.closeSync(fd); }
}
let pending = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => {
  pending += d;
  let i;
  while ((i = pending.indexOf("\\n")) >= 0) { const line = pending.slice(0, i); pending = pending.slice(i + 1); for (const p of line.split("\\0")) read(p); }
});
process.stdin.on("end", () => process.exit(0));
`;

// The broker thread: never blocks (asynchronous pipes only), so it can always be joined at exit.
// It forwards batches to the reader process and each file's result to the main thread, and on
// request SIGKILLs a stuck reader (the kernel's killable wait then ends) and starts a new one.
const BROKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { spawn } = require("node:child_process");
const { port, counter, execPath, childSource } = workerData;
const seq = new Int32Array(counter);
let child = null;
let buf = Buffer.alloc(0);
function drain() {
  while (buf.length >= 5) {
    const n = buf.readUInt32LE(0);
    if (buf.length < 5 + n) break;
    const kind = buf[4];
    const payload = buf.subarray(5, 5 + n);
    buf = buf.subarray(5 + n);
    port.postMessage(kind === 0 ? { data: new Uint8Array(payload) } : { errno: payload.toString("latin1") });
    Atomics.add(seq, 0, 1);
    Atomics.notify(seq, 0);
  }
}
function start() {
  const c = spawn(execPath, ["-e", childSource], { stdio: ["pipe", "pipe", "ignore"] });
  c.on("error", () => {});
  c.stdin.on("error", () => {});
  c.stdout.on("data", (d) => { if (c === child) { buf = Buffer.concat([buf, d]); drain(); } });
  child = c;
}
port.on("message", (m) => {
  if (m.kill || m.close) {
    if (child !== null) { child.kill("SIGKILL"); child.stdin.destroy(); child.stdout.destroy(); }
    child = null;
    buf = Buffer.alloc(0);
    Atomics.add(seq, 1, 1);
    Atomics.notify(seq, 1);
    if (m.close) port.close();
    return;
  }
  if (child === null) start();
  child.stdin.write(m.paths.join("\\0") + "\\n");
});
Atomics.store(seq, 2, 1);
Atomics.notify(seq, 2);
`;

/**
 * Reads on a separate process, brokered by a worker thread, with a deadline per file. Why not
 * read on the worker itself: a thread blocked in a read cannot be interrupted, and Node joins
 * every worker at exit, so the process would hang at exit instead of during the walk. A process
 * can be SIGKILLed out of the (killable) wait.
 */
class ProcessReader implements FileReader {
  get kind(): "helper-process" | "direct" {
    return this.fallback ? "direct" : "helper-process";
  }
  private worker: Worker | null = null;
  private port: MessageChannel["port1"] | null = null;
  private seq: Int32Array | null = null;
  private seen = 0;
  private acks = 0;
  /** The next read is the first of a new helper process: allow for its start-up. */
  private fresh = true;
  /** Set when the broker could not be started: read in this thread. */
  private fallback = false;
  constructor(readonly timeoutMs: number) {}

  private start(): boolean {
    const counter = new SharedArrayBuffer(12);
    const seq = new Int32Array(counter);
    const { MessageChannel, Worker } = workerThreads();
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(BROKER_SOURCE, {
      eval: true,
      workerData: { port: port2, counter, execPath: process.execPath, childSource: CHILD_SOURCE },
      transferList: [port2],
    });
    worker.unref();
    port1.unref();
    Atomics.wait(seq, 2, 0, 10_000);
    if (Atomics.load(seq, 2) === 0) {
      void worker.terminate();
      return false;
    }
    this.worker = worker;
    this.port = port1;
    this.seq = seq;
    return true;
  }

  /** Kills the reader process (stuck, or at close) and waits for the broker to confirm. */
  private kill(close: boolean): void {
    if (this.port === null || this.seq === null) return;
    this.port.postMessage(close ? { close: true } : { kill: true });
    const want = this.acks + 1;
    const deadline = Date.now() + 5000;
    while (Atomics.load(this.seq, 1) < want && Date.now() < deadline) Atomics.wait(this.seq, 1, this.acks, deadline - Date.now());
    this.acks = Atomics.load(this.seq, 1);
    // Results posted before the kill was handled belong to the abandoned batch.
    while (workerThreads().receiveMessageOnPort(this.port) !== undefined);
    this.seen = Atomics.load(this.seq, 0);
    this.fresh = true;
  }

  readAll(paths: string[]): ReadResult[] {
    if (this.fallback) return paths.map(readNoFollow);
    if (this.worker === null && !this.start()) {
      this.fallback = true;
      return paths.map(readNoFollow);
    }
    const port = this.port!;
    const seq = this.seq!;
    port.postMessage({ paths });
    const out: ReadResult[] = [];
    // The first read of a new helper process also waits for it to start (node start-up).
    for (let i = 0; i < paths.length; i++) {
      const deadline = Date.now() + this.timeoutMs + (this.fresh && i === 0 ? 10_000 : 0);
      while (Atomics.load(seq, 0) === this.seen) {
        const left = deadline - Date.now();
        if (left <= 0 || Atomics.wait(seq, 0, this.seen, left) === "timed-out") break;
      }
      if (Atomics.load(seq, 0) === this.seen) {
        this.kill(false);
        for (let k = i; k < paths.length; k++) out.push({ ok: false, errno: "ETIMEDOUT" });
        return out;
      }
      this.seen++;
      this.fresh = false;
      const msg = workerThreads().receiveMessageOnPort(port)?.message as { data?: Uint8Array; errno?: string } | undefined;
      if (msg === undefined) out.push({ ok: false, errno: "EIO" });
      else if (msg.data !== undefined) out.push({ ok: true, data: msg.data });
      else out.push({ ok: false, errno: msg.errno ?? "EIO" });
    }
    return out;
  }

  close(): void {
    this.kill(true);
    if (this.worker !== null) void this.worker.terminate();
    this.worker = null;
    this.port = null;
  }
}

/** A reader that reads each file in a helper process and gives up on it after `timeoutMs`. */
export function timedReader(timeoutMs = 2000): FileReader {
  return new ProcessReader(timeoutMs);
}

export interface CaptureOptions {
  /** Root of the proc filesystem (tests point it at a fake tree). */
  procRoot?: string;
  /** Root of sysfs (tests point it at a fake tree). */
  sysRoot?: string;
  /** pid whose threads are left out (default: this process). */
  selfPid?: number;
  /** Deadline per file read, ms (default 2000). */
  readTimeoutMs?: number;
  /** Reader to use (default: a worker-thread timed reader). */
  reader?: FileReader;
  /** Host facts (default: liveHostFacts(procRoot)); tests pass fixed ones. */
  hostFacts?: Capture["host"];
}

function dirs(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

function numericDirs(path: string): number[] | null {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory() && /^\d+$/.test(d.name))
      .map((d) => Number(d.name))
      .sort((a, b) => a - b);
  } catch {
    return null;
  }
}

const text = (r: ReadResult): string | null => (r.ok ? new TextDecoder("latin1").decode(r.data) : null);

/**
 * The enabled livepatches under `<sysRoot>/kernel/livepatch`: enabled, transition, replace,
 * stack_order and the `<object>/<function,sympos>` directories. Oldest first when every patch
 * has stack_order (6.13+), else by name with a warning. `forced` is not visible in sysfs (the
 * `force` attribute is write-only): recorded false, with a warning.
 */
export function readLivepatches(sysRoot = "/sys", read: (p: string) => ReadResult = readNoFollow): { patches: AppliedPatch[] | null; warnings: Reason[] } {
  const root = `${sysRoot}/kernel/livepatch`;
  const warnings: Reason[] = [];
  let names: string[];
  try {
    names = readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
  } catch (e) {
    const code = errnoOf(e);
    // No directory: a kernel without CONFIG_LIVEPATCH, or no patch ever loaded. Both mean none.
    if (code === "ENOENT") return { patches: [], warnings };
    warnings.push({ code: "livepatch-unreadable", message: `${root} could not be listed (${code}): enabled livepatches not recorded` });
    return { patches: null, warnings };
  }
  const flag = (p: string): boolean | null => {
    const t = text(read(p))?.trim();
    return t === "1" ? true : t === "0" ? false : null;
  };
  const patches: AppliedPatch[] = [];
  for (const name of names) {
    const dir = `${root}/${name}`;
    const enabled = flag(`${dir}/enabled`);
    const transition = flag(`${dir}/transition`);
    const replace = flag(`${dir}/replace`);
    const so = text(read(`${dir}/stack_order`))?.trim();
    if (enabled === null) warnings.push({ code: "livepatch-unreadable", message: `${dir}/enabled could not be read: taken as enabled` });
    const funcs: AppliedFunction[] = [];
    for (const object of dirs(dir)) {
      for (const fn of dirs(`${dir}/${object}`)) {
        const comma = fn.lastIndexOf(",");
        const sympos = comma < 0 ? 0 : Number(fn.slice(comma + 1));
        if (comma <= 0 || !Number.isSafeInteger(sympos) || sympos < 0) {
          warnings.push({ code: "livepatch-unreadable", message: `${dir}/${object}/${fn}: not a function,sympos directory` });
          continue;
        }
        funcs.push({ object, oldName: fn.slice(0, comma), oldSympos: sympos, newName: null, newSize: null, force: false });
      }
    }
    funcs.sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : a.oldName < b.oldName ? -1 : a.oldName > b.oldName ? 1 : a.oldSympos - b.oldSympos));
    patches.push({
      name,
      enabled: enabled ?? true,
      transition: transition ?? false,
      replace: replace ?? false,
      forced: false,
      stackOrder: so !== undefined && /^\d+$/.test(so) ? Number(so) : null,
      funcs,
    });
  }
  if (patches.length > 1 && patches.some((p) => p.stackOrder === null)) {
    warnings.push({ code: "livepatch-order-unknown", message: "the order of the enabled livepatches is unknown (stack_order needs Linux 6.13): listed by name" });
  } else patches.sort((a, b) => a.stackOrder! - b.stackOrder!);
  if (patches.length > 0) {
    warnings.push({ code: "livepatch-forced-unknown", message: "whether an enabled livepatch's transition was forced is not visible in sysfs: recorded as not forced" });
  }
  return { patches, warnings };
}

/** Names of the loaded modules from `<procRoot>/modules` (state Live, Loading or Unloading); [] without the file (no module support); null when unreadable. */
export function readModules(procRoot = "/proc", read: (p: string) => ReadResult = readNoFollow): string[] | null {
  const r = read(`${procRoot}/modules`);
  // No /proc/modules: a kernel without CONFIG_MODULES, so none are loaded.
  if (!r.ok) return r.errno === "ENOENT" ? [] : null;
  const t = text(r);
  if (t === null) return null;
  const out: string[] = [];
  for (const line of t.split("\n")) {
    const name = line.split(" ", 1)[0];
    if (name !== "") out.push(name);
  }
  return out;
}

export interface CaptureReport {
  capture: Capture;
  /** Unreadable thread stacks by errno. */
  unreadable: Map<string, number>;
  vanished: number;
  reader: "helper-process" | "direct";
}

/**
 * Captures every thread of the host with a deadline per file, plus the applied patches
 * (livepatches and kpatch.ko modules; an unreadable kpatch tree makes the capture incomplete) and
 * modules.
 * patchsafe's own threads are left out (the capturing thread is always running) and the capture
 * says so. Throws only when /proc itself cannot be listed.
 */
export function captureHost(opts: CaptureOptions = {}): CaptureReport {
  const procRoot = opts.procRoot ?? "/proc";
  const sysRoot = opts.sysRoot ?? "/sys";
  const selfPid = opts.selfPid ?? process.pid;
  const timeout = opts.readTimeoutMs ?? 2000;
  const reader = opts.reader ?? timedReader(timeout);
  const b = new CaptureBuilder();
  const excluded: Capture["excluded"] = [];
  const unreadable = new Map<string, number>();
  let vanished = 0;
  const pids = numericDirs(procRoot);
  if (pids === null) throw new Error(`cannot list ${procRoot}`);
  try {
    for (const pid of pids) {
      const tids = numericDirs(`${procRoot}/${pid}/task`);
      if (tids === null) {
        vanished++;
        continue;
      }
      // patchsafe's own helper process (the reader below) is a child of this process running
      // our reader script: it is part of patchsafe, not of the host being checked.
      const helper = pid !== selfPid && isOwnHelper(procRoot, pid, selfPid, reader);
      for (const tid of tids) {
        if (pid === selfPid || helper) {
          excluded.push({ pid, tid, reason: helper ? "patchsafe's stack-reading helper process" : "patchsafe's own thread (the capturing thread is always running)" });
          continue;
        }
        const dir = `${procRoot}/${pid}/task/${tid}`;
        const [statR, commR, statusR, psR, stackR] = reader.readAll([`${dir}/stat`, `${dir}/comm`, `${dir}/status`, `${dir}/patch_state`, `${dir}/stack`]);
        if (!statR.ok && statR.errno !== "ETIMEDOUT") {
          vanished++;
          continue;
        }
        const stat = statR.ok ? parseStat(new TextDecoder("latin1").decode(statR.data)) : null;
        let comm: Uint8Array | null = null;
        if (commR.ok) {
          const c = commR.data;
          comm = c.slice(0, c.length > 0 && c[c.length - 1] === 0x0a ? c.length - 1 : c.length);
        }
        const statusText = text(statusR);
        const kt = statusText === null ? null : /^Kthread:\s*([01])$/m.exec(statusText);
        const ps = text(psR)?.trim();
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
        if (!stackR.ok) {
          if (stackR.errno === "ENOENT" || stackR.errno === "ESRCH") {
            b.dropTask();
            vanished++;
            continue;
          }
          task.stackStatus = "unreadable";
          task.errno = stackR.errno;
          unreadable.set(stackR.errno, (unreadable.get(stackR.errno) ?? 0) + 1);
          b.endTask();
          continue;
        }
        const stack = stackR.data;
        let pos = 0;
        while (pos < stack.length) {
          let nl = stack.indexOf(0x0a, pos);
          if (nl < 0) nl = stack.length;
          if (nl > pos) {
            const kind = b.addProcFrameLine(stack, pos, nl, 0);
            if (kind === TokenKind.EndMarker) task.endMarker = true;
            else if (kind === TokenKind.Bad) b.addUnparsed(0);
          }
          pos = nl + 1;
        }
        b.endTask(undefined, (t) => {
          if (t.frameCount >= 64 && !t.endMarker) t.stackStatus = "truncated";
        });
      }
    }
  } finally {
    if (opts.reader === undefined) reader.close();
  }
  const cap = b.finish({ name: "live", format: "live-proc", section: 0, firstLine: null, lastLine: null });
  cap.host = opts.hostFacts ?? liveHostFacts(procRoot);
  cap.excluded = excluded;
  const reasons: Reason[] = [];
  for (const [code, n] of unreadable) {
    const why =
      code === "EPERM"
        ? "; on some hosts the threads of pid 1 are unreadable even to root"
        : code === "ETIMEDOUT"
          ? `: the read did not return within ${reader.timeoutMs ?? timeout} ms (a task stuck in exec holds the lock /proc/PID/stack takes)`
          : "";
    reasons.push({ code: "unreadable", message: `${n} thread stack(s) could not be read (${code}${why})` });
  }
  if (cap.host.capSysAdmin !== true) reasons.push({ code: "no-cap-sys-admin", message: "the capture ran without CAP_SYS_ADMIN in the initial user namespace: stacks of other tasks may be hidden" });
  if (cap.host.initPidNamespace !== true) reasons.push({ code: "not-initial-pid-namespace", message: "pid 2 (kthreadd) is not visible: the capture ran inside a PID namespace and sees only part of the host" });
  // The applied stack: enabled livepatches, then kpatch.ko's modules (ordered by /proc/modules).
  cap.modules = readModules(procRoot);
  const lp = readLivepatches(sysRoot);
  const kp = readKpatchPatches(sysRoot, { loadOrder: cap.modules });
  cap.livepatches = lp.patches === null || kp.patches === null ? null : [...lp.patches, ...kp.patches];
  if (lp.patches === null) {
    reasons.push({ code: "livepatch-unreadable", message: `/sys/kernel/livepatch could not be read (${lp.warnings.map((w) => w.message).join("; ")}): the applied patch stack is unknown` });
  }
  if (kp.patches === null) {
    // Never "no patches": a missed applied patch could make a verdict falsely safe.
    reasons.push({ code: "kpatch-unreadable", message: `kpatch.ko's patch modules could not be read (${kp.problems.join("; ")}): the applied patch stack is unknown` });
  }
  cap.complete = reasons.length === 0;
  cap.completeness = reasons;
  if (vanished > 0) cap.warnings.push({ code: "vanished", message: `${vanished} thread(s) exited during the walk and are not part of the capture` });
  if (reader.kind === "direct") cap.warnings.push({ code: "no-read-timeout", message: "files were read without a deadline (no reader thread)" });
  cap.warnings.push(...lp.warnings, ...kp.warnings);
  return { capture: cap, unreadable, vanished, reader: reader.kind };
}

/** Whether `pid` is this process's reader helper: a child of ours whose command line is our reader script. */
function isOwnHelper(procRoot: string, pid: number, selfPid: number, reader: FileReader): boolean {
  if (reader.kind !== "helper-process") return false;
  const [statR] = reader.readAll([`${procRoot}/${pid}/stat`]);
  if (!statR.ok || parseStat(new TextDecoder("latin1").decode(statR.data))?.ppid !== selfPid) return false;
  // Only our own children get their command line read (it takes the target's mmap lock).
  const [cmdR] = reader.readAll([`${procRoot}/${pid}/cmdline`]);
  return cmdR.ok && new TextDecoder("latin1").decode(cmdR.data).includes(HELPER_MARKER);
}

/** The live host as `check` and the inventory see it: captureHost's capture. */
export function captureLive(opts: CaptureOptions = {}): Capture {
  return captureHost(opts).capture;
}
