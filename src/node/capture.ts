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
import { existsSync, lstatSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { MessageChannel, Worker } from "node:worker_threads";
import { workerThreads } from "./lazyBuiltins.js";
import { CaptureBuilder, TokenKind } from "../ingest/builder.js";
import type { AppliedFunction, AppliedPatch, Capture, Reason } from "../model.js";
import { errnoOf, liveHostFacts, MAX_FILE, parseStat, readKpatchPatches, type ReadResult, readNoFollow, readTraceable } from "./live.js";

export { readNoFollow, type ReadResult };

/** Outcome of reading one file: its bytes, or the errno name (ETIMEDOUT when the deadline passed). */

/** Reads files with a deadline each. */
export interface FileReader {
  /** Reads the files in order; stops at the first timeout (the rest are reported ETIMEDOUT too). */
  readAll(paths: string[]): ReadResult[];
  /**
   * readAll of each group, the groups' files requested together (one round trip for many
   * threads' files): a timeout ends its group as readAll's ends its files, and the next group
   * is read on (by a fresh helper). The results equal readAll's group by group: returned, or with
   * `each` handed over group by group as they come (then nothing is kept and [] is returned).
   * `each` must not read through this reader.
   */
  readGroups?(groups: string[][], each?: (group: number, results: ReadResult[]) => void): ReadResult[][];
  close(): void;
  /** What this reader guarantees, for the capture's warnings. */
  readonly kind: "helper-process" | "direct";
  /** The deadline per file, ms (null: none). */
  readonly timeoutMs: number | null;
  /**
   * Starts what the first read needs (the helper process: a Node start-up, ~50 ms) without
   * waiting for it, so that it boots while the caller does other work (reading /proc/kallsyms).
   */
  prestart?(): void;
  /** Reads with up to `count` helpers from now on, where the reader has several (a host of many threads). */
  grow?(count: number): void;
}


/** Reads in this thread: no deadline (fallback when a worker cannot start, and for tests). */
export function directReader(): FileReader {
  return {
    kind: "direct",
    timeoutMs: null,
    readAll: (paths) => paths.map(readNoFollow),
    readGroups: (groups, each) => {
      if (each === undefined) return groups.map((g) => g.map(readNoFollow));
      groups.forEach((g, k) => each(k, g.map(readNoFollow)));
      return [];
    },
    close() {},
  };
}

// The reader process: reads each requested file (NUL-separated paths, one batch per line) with
// O_NOFOLLOW and writes [u32 length][u8 kind: 0 data, 1 errno][payload] per file, in order.
/** A line of the reader script, to recognise our own helper process in /proc/<pid>/cmdline. */
const HELPER_MARKER = "const flags = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0);";
const CHILD_SOURCE = `
const fs = require("node:fs");
const flags = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0);
const chunk = Buffer.allocUnsafe(65536);
// Results are written in batches, flushed before and after each stack or cmdline file (the reads
// that take a lock of the target and can block): a read that never returns then holds back only
// its own result (or, were another file to block, only its own thread's), so the main thread's
// deadline lands on that thread.
let out = [];
function flush() { if (out.length > 0) { fs.writeSync(1, Buffer.concat(out)); out = []; } }
function put(kind, payload) {
  const h = Buffer.allocUnsafe(5); h.writeUInt32LE(payload.length, 0); h[4] = kind;
  out.push(h, payload);
}
function read(path) {
  const locking = path.endsWith("/stack") || path.endsWith("/cmdline");
  if (locking) flush();
  readOne(path);
  if (locking) flush();
}
function readOne(path) {
  let fd;
  try { fd = fs.openSync(path, flags); } catch (e) { return put(1, Buffer.from(String((e && e.code) || "EIO"))); }
  try {
    const parts = []; let total = 0;
    for (;;) { const n = fs.readSync(fd, chunk, 0, chunk.length, null); if (n === 0) break; parts.push(Buffer.from(chunk.subarray(0, n))); total += n; if (total >= ${MAX_FILE}) break; }
    put(0, parts.length === 1 ? parts[0] : Buffer.concat(parts));
  } catch (e) { put(1, Buffer.from(String((e && e.code) || "EIO"))); } finally { fs.closeSync(fd); }
}
let pending = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => {
  pending += d;
  let i;
  while ((i = pending.indexOf("\\n")) >= 0) { const line = pending.slice(0, i); pending = pending.slice(i + 1); for (const p of line.split("\\0")) read(p); flush(); }
});
process.stdin.on("end", () => process.exit(0));
`;

// The broker thread: never blocks (asynchronous pipes only), so it can always be joined at exit.
// It forwards batches to the reader process and the files' results to the main thread (the
// results complete in each chunk of the pipe as one message; seq[0] counts files), and on
// request SIGKILLs a stuck reader (the kernel's killable wait then ends) and starts a new one.
const BROKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { spawn } = require("node:child_process");
const { port, counter, execPath, childSource, helpers } = workerData;
const seq = new Int32Array(counter);
// The helper processes (one, and up to \`helpers\` when the main thread asks for more: a host of
// many threads): each reads the requests it was given in order. Requests go to them in turn;
// results go to the main thread in request order, so those of a request read ahead wait here
// until every request before it is complete.
let procs = [];
// Requests not yet forwarded whole, in the order they came: { expect, results, sent }.
let requests = [];
let turn = 0;
function forward() {
  // Every result ready in order, in one message whose file contents are one transferred buffer
  // (a message, or an ArrayBuffer, per file cost more than the reads on a host of thousands of
  // threads). results[i]: the length of file i's bytes, or its errno name.
  const results = [];
  const parts = [];
  let total = 0;
  while (requests.length > 0) {
    const r = requests[0];
    for (; r.sent < r.results.length; r.sent++) {
      const x = r.results[r.sent];
      if (typeof x === "string") results.push(x);
      else { results.push(x.length); parts.push(x); total += x.length; }
    }
    if (r.sent < r.expect) break;
    requests.shift();
  }
  if (results.length === 0) return;
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.length; }
  port.postMessage({ results, bytes }, [bytes.buffer]);
  Atomics.add(seq, 0, results.length);
  Atomics.notify(seq, 0);
}
function drain(h) {
  while (h.buf.length >= 5) {
    const n = h.buf.readUInt32LE(0);
    if (h.buf.length < 5 + n) break;
    const kind = h.buf[4];
    const payload = h.buf.subarray(5, 5 + n);
    h.buf = h.buf.subarray(5 + n);
    const r = h.fifo[0];
    if (r === undefined) continue; // not ours to forward (cannot happen: a helper answers what it was asked)
    r.results.push(kind === 0 ? payload : payload.toString("latin1"));
    if (r.results.length === r.expect) h.fifo.shift();
  }
  forward();
}
function startAll(want) {
  for (let k = procs.length; k < want; k++) {
    const c = spawn(execPath, ["-e", childSource], { stdio: ["pipe", "pipe", "ignore"] });
    const h = { c, buf: Buffer.alloc(0), fifo: [] };
    c.on("error", () => {});
    c.stdin.on("error", () => {});
    c.stdout.on("data", (d) => { if (procs.includes(h)) { h.buf = h.buf.length === 0 ? d : Buffer.concat([h.buf, d]); drain(h); } });
    procs.push(h);
  }
}
port.on("message", (m) => {
  if (m.spawn) {
    startAll(Math.min(helpers, m.helpers ?? 1));
    return;
  }
  if (m.kill || m.close) {
    for (const h of procs) { h.c.kill("SIGKILL"); h.c.stdin.destroy(); h.c.stdout.destroy(); }
    procs = [];
    requests = [];
    Atomics.add(seq, 1, 1);
    Atomics.notify(seq, 1);
    if (m.close) port.close();
    return;
  }
  if (procs.length === 0) startAll(1);
  const h = procs[turn++ % procs.length];
  const r = { expect: m.paths.length, results: [], sent: 0 };
  requests.push(r);
  h.fifo.push(r);
  h.c.stdin.write(m.paths.join("\\0") + "\\n");
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
  /** `helpers`: helper processes reading in turn (requests alternate between them). */
  constructor(
    readonly timeoutMs: number,
    private readonly helpers = 1,
  ) {}

  /** Starts the broker thread without waiting for it (messages posted meanwhile wait on its port). */
  private launch(): void {
    const counter = new SharedArrayBuffer(12);
    const { MessageChannel, Worker } = workerThreads();
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(BROKER_SOURCE, {
      eval: true,
      workerData: { port: port2, counter, execPath: process.execPath, childSource: CHILD_SOURCE, helpers: this.helpers },
      transferList: [port2],
    });
    worker.unref();
    port1.unref();
    this.worker = worker;
    this.port = port1;
    this.seq = new Int32Array(counter);
  }

  /** Launches the broker if need be and waits until it runs; false (and nothing left running) if it does not start. */
  private start(): boolean {
    if (this.started) return true;
    if (this.worker === null) this.launch();
    Atomics.wait(this.seq!, 2, 0, 10_000);
    if (Atomics.load(this.seq!, 2) === 0) {
      void this.worker!.terminate();
      this.worker = null;
      this.port = null;
      this.seq = null;
      return false;
    }
    this.started = true;
    return true;
  }

  private started = false;

  /**
   * Up to `count` helper processes from now on (at most the reader's limit), started without
   * waiting: requests then go to them in turn. After a helper is killed, one starts again.
   */
  grow(count: number): void {
    if (this.fallback || count <= 1) return;
    if (this.worker === null) {
      try {
        this.launch();
      } catch {
        return; // the first read tries again, and reports what it reports
      }
    }
    this.port!.postMessage({ spawn: true, helpers: count });
    this.startupUntil = this.requestsRead + Math.min(count, this.helpers);
  }

  /** Requests whose first file was waited for so far, and below which one a request gets the start-up allowance. */
  private requestsRead = 0;
  private startupUntil = 1;

  prestart(): void {
    if (this.fallback || this.worker !== null) return;
    try {
      this.launch();
    } catch {
      return; // the first read tries again, and reports what it reports without a prestart
    }
    // The broker spawns the helper as soon as it runs: its start-up overlaps the caller's work.
    this.port!.postMessage({ spawn: true, helpers: 1 });
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
    this.queue = [];
    this.queueAt = 0;
    this.fresh = true;
  }

  readAll(paths: string[]): ReadResult[] {
    return this.readGroups([paths])[0];
  }

  readGroups(groups: string[][], each?: (group: number, results: ReadResult[]) => void): ReadResult[][] {
    const out: ReadResult[][] = [];
    const emit = each ?? ((_: number, r: ReadResult[]) => void out.push(r));
    if (this.fallback || !this.start()) {
      this.fallback = true;
      groups.forEach((g, k) => emit(k, g.map(readNoFollow)));
      return out;
    }
    // Requests of GROUPS_PER_REQUEST groups, as many ahead of the group being handed out as there
    // may be helpers (at least two): helpers read the next requests while the caller handles this
    // one's results, and what is in flight stays bounded. A timeout kills the helpers; the groups
    // after the stuck one are asked again of a new one.
    const ahead = Math.max(2, this.helpers) * GROUPS_PER_REQUEST;
    for (let g = 0; g < groups.length; ) {
      let posted = g;
      /** The first group of each request posted. */
      const starts = new Set<number>();
      const topUp = (): void => {
        while (posted < groups.length && posted - g < ahead) {
          const end = Math.min(groups.length, posted + GROUPS_PER_REQUEST);
          this.port!.postMessage({ paths: groups.slice(posted, end).flat() });
          starts.add(posted);
          posted = end;
        }
      };
      topUp();
      let timedOut = false;
      for (; g < groups.length && !timedOut; g++) {
        if (posted - g <= ahead - GROUPS_PER_REQUEST) topUp();
        const paths = groups[g];
        const got: ReadResult[] = [];
        for (let i = 0; i < paths.length; i++) {
          // A helper's first request begins with its first read (a Node start-up): its first file
          // gets the start-up allowance. Requests go to the helpers in turn, so after helpers
          // are started the next as many requests include each new helper's first.
          const startup = i === 0 && starts.has(g) && this.requestsRead++ < this.startupUntil;
          const r = this.next(startup);
          if (r === null) {
            for (let k = i; k < paths.length; k++) got.push({ ok: false, errno: "ETIMEDOUT" });
            timedOut = true;
            break;
          }
          got.push(r);
        }
        emit(g, got);
      }
    }
    return out;
  }

  /** Results received and not yet handed out (a message carries several). */
  private queue: ReadResult[] = [];
  private queueAt = 0;

  /**
   * The next file's result, waiting at most the deadline from now (a new helper's first read
   * also waits for its start-up: a Node start); null when it did not come: the helper is then
   * killed, and whatever it still had in flight is dropped with it.
   */
  private next(startup = false): ReadResult | null {
    if (this.queueAt === this.queue.length) {
      const seq = this.seq!;
      const deadline = Date.now() + this.timeoutMs + (this.fresh || startup ? STARTUP_MS : 0);
      while (Atomics.load(seq, 0) === this.seen) {
        const left = deadline - Date.now();
        if (left <= 0 || Atomics.wait(seq, 0, this.seen, left) === "timed-out") break;
      }
      if (Atomics.load(seq, 0) === this.seen) {
        this.kill(false);
        return null;
      }
      const msg = workerThreads().receiveMessageOnPort(this.port!)?.message as { results?: (number | string)[]; bytes?: Uint8Array } | undefined;
      const results = msg?.results ?? [];
      const bytes = msg?.bytes ?? new Uint8Array(0);
      const queue: ReadResult[] = [];
      let at = 0;
      for (const r of results) {
        if (typeof r === "string") queue.push({ ok: false, errno: r });
        else if (typeof r === "number" && at + r <= bytes.length) {
          queue.push({ ok: true, data: bytes.subarray(at, at + r) });
          at += r;
        } else queue.push({ ok: false, errno: "EIO" });
      }
      // The counter moves only after the message is posted: a bump with no message is a broken
      // broker, reported as an I/O error for that one file.
      this.seen += Math.max(results.length, 1);
      this.queue = queue.length > 0 ? queue : [{ ok: false, errno: "EIO" }];
      this.queueAt = 0;
      this.fresh = false;
    }
    return this.queue[this.queueAt++];
  }

  close(): void {
    // A broker that was prestarted but never read through is told to close too (it may have
    // spawned the helper): kill() waits for its acknowledgement.
    if (this.worker !== null && !this.started && !this.start()) return;
    this.kill(true);
    if (this.worker !== null) void this.worker.terminate();
    this.worker = null;
    this.port = null;
    this.started = false;
  }
}

/** Groups (threads, in captureHost) whose files one request to the helper asks for. */
const GROUPS_PER_REQUEST = 256;

/** A reader that reads each file in a helper process and gives up on it after `timeoutMs`. */
export function timedReader(timeoutMs = 2000, helpers = Math.max(1, Math.min(MAX_HELPERS, availableParallelism()))): FileReader {
  return new ProcessReader(timeoutMs, helpers);
}

/** What a helper's first read may take beyond the deadline: its Node start-up on a busy host. */
const STARTUP_MS = 10_000;

/** Helper processes a timed reader starts at most (each is a Node process: ~30 MB, ~50 ms to start). */
const MAX_HELPERS = 4;
/** Threads per helper process (captureHost asks for a second one from twice this many on). */
export const THREADS_PER_HELPER = 1500;

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

/**
 * The numeric entries of a /proc directory (pids, tids) that are directories, not symlinks; null
 * when the directory cannot be listed. With `withFileTypes`, Node lstat()s an entry whose type
 * the listing does not give, and a process that exits between the listing and that lstat fails
 * the whole call with ENOENT for that entry (seen under churn: the capture stopped with "cannot
 * list /proc"). Then the names are listed alone and each numeric one looked at by itself: one
 * that is gone is skipped, like any thread that exits during the walk.
 */
function numericDirs(path: string): number[] | null {
  let out: number[];
  try {
    out = readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory() && /^\d+$/.test(d.name))
      .map((d) => Number(d.name));
  } catch (e) {
    const err = e as { code?: string; path?: string };
    if (err.code !== "ENOENT" || err.path === undefined || err.path === path) return null;
    try {
      out = readdirSync(path)
        .filter((name) => /^\d+$/.test(name) && isDirectoryNoFollow(`${path}/${name}`))
        .map(Number);
    } catch {
      return null;
    }
  }
  return out.sort((a, b) => a - b);
}

/** Whether `path` is a directory itself (not a symlink to one); false when it is gone or unreadable. */
function isDirectoryNoFollow(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

/** One decoder for every /proc file (a TextDecoder per file cost as much as the parse). */
const latin1 = new TextDecoder("latin1");
const text = (r: ReadResult): string | null => (r.ok ? latin1.decode(r.data) : null);
/** A thread's stat, parsed (null when unread or unparsable). */
const statOf = (r: ReadResult): ReturnType<typeof parseStat> | null => (r.ok ? parseStat(latin1.decode(r.data)) : null);

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
    const tr = read(`${dir}/transition`);
    const transition = flag(`${dir}/transition`);
    // No such file: a kernel before 4.12, with no consistency model and so no transition. Any
    // other failure leaves unknown whether a transition is running, which the kernel lets
    // nothing else start beside and during which tasks run either version: not "none".
    if (transition === null && !(!tr.ok && tr.errno === "ENOENT")) {
      warnings.push({ code: "livepatch-unreadable", message: `${dir}/transition could not be read (${tr.ok ? "not 0 or 1" : tr.errno}): whether a transition is in progress is unknown` });
      return { patches: null, warnings };
    }
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
  /** Processes still there whose threads could not be listed: not gone, so the capture is partial. */
  let unlisted = 0;
  const pids = numericDirs(procRoot);
  if (pids === null) throw new Error(`cannot list ${procRoot}`);
  /** One thread's files as read: builds its task (or counts it vanished). */
  /** One thread's files as read (its stat already parsed): builds its task (or counts it vanished). */
  const addThread = (pid: number, tid: number, [statR, commR, statusR, psR, stackR]: ReadResult[], stat: ReturnType<typeof parseStat> | null): void => {
    // Only a thread that is gone is left out; one whose stat cannot be read for another reason
    // (EACCES from an LSM, …) is still there: its stack read says what is known of it.
    if (!statR.ok && (statR.errno === "ENOENT" || statR.errno === "ESRCH")) {
      vanished++;
      return;
    }
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
        return;
      }
      task.stackStatus = "unreadable";
      task.errno = stackR.errno;
      unreadable.set(stackR.errno, (unreadable.get(stackR.errno) ?? 0) + 1);
      b.endTask();
      return;
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
  };
  try {
    // Every process's threads are listed first, then their files are read: requests of many
    // threads' files (FileReader.readGroups), not a round trip per thread (which made a
    // 5000-thread host take 2 s).
    const threads: { pid: number; tid: number }[] = [];
    for (const pid of pids) {
      const tids = numericDirs(`${procRoot}/${pid}/task`);
      if (tids === null) {
        // Gone (it exited during the walk), or there but unlistable: its threads were not read.
        if (existsSync(`${procRoot}/${pid}`)) unlisted++;
        else vanished++;
        continue;
      }
      for (const tid of tids) {
        if (pid === selfPid) excluded.push({ pid, tid, reason: "patchsafe's own thread (the capturing thread is always running)" });
        else threads.push({ pid, tid });
      }
    }
    /** Per child of this process: whether it is our helper (decided after the walk). */
    const helperPid = new Map<number, boolean>();
    // /proc/PID/patch_state exists for every task or for none (CONFIG_LIVEPATCH): on a kernel
    // without it, asking for it per thread cost a failed open (an exception in Node) per thread.
    const patchState = procRoot !== "/proc" || existsSync("/proc/self/patch_state");
    const noPatchState: ReadResult = { ok: false, errno: "ENOENT" };
    const groups = threads.map(({ pid, tid }) => {
      const dir = `${procRoot}/${pid}/task/${tid}`;
      return patchState ? [`${dir}/stat`, `${dir}/comm`, `${dir}/status`, `${dir}/patch_state`, `${dir}/stack`] : [`${dir}/stat`, `${dir}/comm`, `${dir}/status`, `${dir}/stack`];
    });
    // A host of many threads is read by several helpers (each is a Node start-up: not worth it
    // for a few thousand threads).
    reader.grow?.(Math.floor(threads.length / THREADS_PER_HELPER));
    // Threads are handled as their files come in, in order (the reader asks ahead), except
    // those of this process's children: whether such a child is our helper needs its cmdline,
    // read through the reader once the walk is done; their threads are added after the rest.
    const ours: { pid: number; tid: number; files: ReadResult[]; stat: ReturnType<typeof parseStat> }[] = [];
    const each = (k: number, read: ReadResult[]): void => {
      const { pid, tid } = threads[k];
      const files = patchState ? read : [read[0], read[1], read[2], noPatchState, read[3]];
      const stat = statOf(files[0]);
      if (reader.kind === "helper-process" && stat?.ppid === selfPid) ours.push({ pid, tid, files, stat });
      else addThread(pid, tid, files, stat);
    };
    if (reader.readGroups !== undefined) reader.readGroups(groups, each);
    else groups.forEach((g, k) => each(k, reader.readAll(g)));
    // patchsafe's own helper process (the reader) is a child of this process running our reader
    // script: part of patchsafe, not of the host being checked.
    for (const { pid, tid, files, stat } of ours) {
      let helper = helperPid.get(pid);
      if (helper === undefined) {
        const [cmdR] = reader.readAll([`${procRoot}/${pid}/cmdline`]);
        helperPid.set(pid, (helper = text(cmdR)?.includes(HELPER_MARKER) === true));
      }
      if (helper) excluded.push({ pid, tid, reason: "patchsafe's stack-reading helper process" });
      else addThread(pid, tid, files, stat);
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
  if (unlisted > 0) reasons.push({ code: "unreadable", message: `the threads of ${unlisted} process(es) could not be listed (${procRoot}/PID/task): their stacks were not read` });
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
  // What ftrace can hook: a later check of the snapshot needs it as a check of the live host
  // does (a notrace function cannot be patched); without it that check could say safe.
  cap.traceable = readTraceable(sysRoot);
  if (vanished > 0) cap.warnings.push({ code: "vanished", message: `${vanished} thread(s) exited during the walk and are not part of the capture` });
  if (reader.kind === "direct") cap.warnings.push({ code: "no-read-timeout", message: "files were read without a deadline (no reader thread)" });
  cap.warnings.push(...lp.warnings, ...kp.warnings);
  return { capture: cap, unreadable, vanished, reader: reader.kind };
}

/** The live host as `check` and the inventory see it: captureHost's capture. */
export function captureLive(opts: CaptureOptions = {}): Capture {
  return captureHost(opts).capture;
}

/**
 * captureHost, with `first` run before the walk while the reader's helper process starts (a
 * Node start-up, ~50 ms, on another core): the CLI reads /proc/kallsyms then, ~40 ms of kernel
 * time and the parse. Returns the report and what `first` returned; an error of `first` stops
 * before the walk (the helper is closed either way).
 */
export function captureHostAfter<T>(first: () => T, opts: CaptureOptions = {}): { report: CaptureReport; first: T } {
  const reader = opts.reader ?? timedReader(opts.readTimeoutMs ?? 2000);
  try {
    reader.prestart?.();
    const before = first();
    return { report: captureHost({ ...opts, reader }), first: before };
  } finally {
    if (opts.reader === undefined) reader.close();
  }
}
