/**
 * /proc/<pid>/task/<tid>/stack text in the shapes people produce (SPEC §6, FORMATS.md §3):
 *
 *   grep -H . /proc/*\/task/*\/stack     /proc/12/task/12/stack:[<0>] ep_poll+0x4b0/0x510
 *   tail -n +1 /proc/*\/task/*\/stack    ==> /proc/12/task/12/stack <==   then frame lines
 *   a per-task header                    == /proc/12/task/12 comm          then frame lines
 *   bare lines                           [<0>] ep_poll+0x4b0/0x510         (one anonymous task)
 *   old kernels                          [<ffffffff8112291c>] pipe_wait+0x61/0x7b … and the
 *                                        [<ffffffffffffffff>] 0xffffffffffffffff end marker
 *
 * A byte-level streaming tokenizer: feed chunks split anywhere; no string per line.
 * procTextReference.ts is the slow string parser it is tested against.
 */
import { type Capture, FrameFlag, PATCH_STATE_NULL, STACK_STATUS_CODE, type Task } from "../model.js";
import { ByteMap, CH, endsWithAscii, indexOfByte, parseDecimal, startsWithAscii } from "./bytes.js";
import { CaptureBuilder, TokenKind } from "./builder.js";
import { LineSplitter } from "./bytes.js";
import { LEAN_STATE, type LeanColumns, TOKEN_EVENT } from "./procTokenizer.js";

/** Where fastRun() reads a run's frame texts (the wasm tokenizer). */
export interface RunSource {
  stack(id: number): Uint32Array;
  text(id: number): Uint8Array;
  /** Optional (the wasm tokenizer, ProcTokenizer): leanRuns()'s loop in wasm; see there. */
  leanMark?(id: number, start: number, count: number): void;
  leanRuns?(from: number, to: number, state: Uint32Array, cols: LeanColumns, at: number, room: number): number;
}

/** A stack's rows as shared by every task whose run produced it; null: not shareable. */
interface SharedStack {
  start: number;
  count: number;
  endMarker: boolean;
}

/** What pushIds(…, "ok") writes, for leanRuns(), which writes the columns itself. */
const STACK_OK = STACK_STATUS_CODE.ok;
const NO_PATCH_STATE = PATCH_STATE_NULL;

/** /proc/<pid>/stack prints at most this many entries (MAX_STACK_TRACE_DEPTH). */
export const PROC_STACK_MAX = 64;

/** errno names for the messages grep/tail/cat print when a stack file cannot be read. */
const ERRNO_TEXT: [string, string][] = [
  ["Operation not permitted", "EPERM"],
  ["Permission denied", "EACCES"],
  ["No such file or directory", "ENOENT"],
  ["No such process", "ESRCH"],
];

const pathOut = { pid: 0, tid: 0, end: 0 };

/**
 * Reads `/proc/PID[/task/TID][/stack]` at p. Sets pathOut (tid = pid for /proc/PID/stack) and
 * returns true when the path is well formed; pathOut.end is the index after it.
 */
function readProcPath(buf: Uint8Array, p: number, end: number, requireStack: boolean): boolean {
  if (!startsWithAscii(buf, p, end, "/proc/")) return false;
  let q = p + 6;
  let s = q;
  while (q < end && buf[q] >= 48 && buf[q] <= 57) q++;
  const pid = parseDecimal(buf, s, q);
  if (pid < 0) return false;
  let tid = pid;
  if (startsWithAscii(buf, q, end, "/task/")) {
    q += 6;
    s = q;
    while (q < end && buf[q] >= 48 && buf[q] <= 57) q++;
    tid = parseDecimal(buf, s, q);
    if (tid < 0) return false;
  }
  if (startsWithAscii(buf, q, end, "/stack")) q += 6;
  else if (requireStack) return false;
  pathOut.pid = pid;
  pathOut.tid = tid;
  pathOut.end = q;
  return true;
}

/** /proc prints at most 64 entries: a full trace without the end marker may have been cut. */
function markTruncated(t: Task): void {
  if (t.stackStatus === "ok" && t.frameCount >= PROC_STACK_MAX && !t.endMarker) t.stackStatus = "truncated";
}

export class ProcTextParser {
  private readonly b: CaptureBuilder;
  private readonly splitter: LineSplitter;
  private ignoredOutside = 0;
  private firstIgnored = 0;
  private sawRealAddresses = false;
  /**
   * Frame tokens seen before -> the frame row they produced. Real dumps repeat a few hundred
   * distinct frame lines across thousands of tasks: a repeat is a hash and a copy of the row
   * instead of a parse (same bytes, same row: only the line number differs).
   */
  private readonly seen = new ByteMap();
  /** Highest line number given to numberedLine()/fastRun() (the splitter counts its own). */
  private lastNumbered = 0;
  /**
   * The current task was started by fastRun() and has no rows yet: they are placed when it
   * closes (shared with every earlier task of the same stack) or as its own rows as soon as
   * anything else touches the task.
   */
  private pendingStack = -1;
  private pendingCount = 0;
  /**
   * The current task exists only as these fields (fastRun() started it; nothing else touched it):
   * when its stack's rows are already shared it goes into the task columns without ever being a
   * builder task. materialize() makes it one.
   */
  private lean = false;
  private leanPid = 0;
  private leanTid = 0;
  private leanLine = 0;
  private pendingSource: RunSource | null = null;
  /** Per tokenizer stack id: its shared rows, null when it cannot be shared, undefined unseen. */
  private readonly shared: (SharedStack | null | undefined)[] = [];
  private sharedUsed = false;
  /** The lean state handed to and from RunSource.leanRuns (LEAN_STATE words). */
  private readonly leanState = new Uint32Array(LEAN_STATE.WORDS);

  /** expectedTasks: the task columns' first capacity (they grow past it). */
  constructor(
    private readonly name: string,
    expectedTasks = 64,
  ) {
    this.b = new CaptureBuilder(expectedTasks);
    this.splitter = new LineSplitter((buf, s, e, line) => this.line(buf, s, e, line));
  }

  push(chunk: Uint8Array): void {
    this.splitter.push(chunk);
  }

  /**
   * One complete line buf[start, end) without its newline: the same as push() of the line plus
   * "\n" (after any partial line pushed before), without the copy. For wrappers that already
   * split lines.
   */
  pushLine(buf: Uint8Array, start: number, end: number): void {
    this.splitter.pushLine(buf, start, end);
  }

  /**
   * One line with its line number, for wrappers that count lines themselves (the tokenizer path):
   * as if it came through the splitter (which cuts one CR).
   */
  numberedLine(buf: Uint8Array, start: number, end: number, line: number): void {
    if (end > start && buf[end - 1] === CH.CR) end--;
    if (line > this.lastNumbered) this.lastNumbered = line;
    this.line(buf, start, end, line);
  }

  /**
   * Lines [line, line + count) are `/proc/PID/task/TID/stack:TEXT` lines of one stack file whose
   * TEXTs are source.stack(stack): the same as line() for each of them, without touching the
   * bytes again. A task that is exactly one run shares its rows with every task of the same stack.
   */
  fastRun(pid: number, tid: number, line: number, count: number, stack: number, source: RunSource): void {
    const last = line + count - 1;
    if (last > this.lastNumbered) this.lastNumbered = last;
    if (this.lean ? this.leanPid !== pid || this.leanTid !== tid : this.startsTask(pid, tid)) {
      this.closeTask();
      // Fields, not an object: one run per task, a million tasks.
      this.lean = true;
      this.leanPid = pid;
      this.leanTid = tid;
      this.leanLine = line;
      this.pendingStack = stack;
      this.pendingCount = count;
      this.pendingSource = source;
      return;
    }
    // The run continues the current task (a blank or other line came between): own rows.
    this.unpend();
    this.replay(source.stack(stack), source, line);
  }

  /**
   * TokenSink.runs: fastRun() for each run event in ev[from, to) (TOKEN_EVENT layout), up to the
   * first other event; returns its word index. The common case, a run that starts a new task
   * while the current one is a whole run of a known shared stack, is handled here without a
   * call per task: that task goes straight into the task columns (as closeTask() puts it).
   */
  fastRuns(ev: Uint32Array, from: number, to: number, source: RunSource): number {
    let k = from;
    for (; k < to && ev[k] === TOKEN_EVENT.RUN; k += TOKEN_EVENT.WORDS) {
      // Runs of the common case in a small loop of its own (leanRuns); fastRun() takes the rest
      // (closeTask() puts a lean task of a known shared stack into the columns the same way).
      k = this.leanRuns(ev, k, to, source);
      if (k >= to || ev[k] !== TOKEN_EVENT.RUN) break;
      this.fastRun(ev[k + 1], ev[k + 2], ev[k + 3], ev[k + 4], ev[k + 5], source);
    }
    return k;
  }

  /**
   * fastRuns()'s common case in a loop of its own: while the current task is lean and a whole run
   * of a known shared stack, and the next run starts another task, the current one is written
   * straight into the task columns (as pushIds() writes it) and the next becomes the lean one.
   * Returns the first event it leaves to fastRuns(). V8 compiles a loop as a whole: with the
   * calls of the other cases inlined into it, this loop took ~13 ms of optimizing compile and ran
   * interpreted meanwhile (a 100k-task dump: ~15 ms of the check).
   */
  private leanRuns(ev: Uint32Array, from: number, to: number, source: RunSource): number {
    const tasks = this.b.tasks;
    if (!this.lean || tasks.rareColumnsUsed()) return from;
    if (source.leanRuns !== undefined) return this.leanRunsInSource(from, to, source);
    const { pid: pidCol, tid: tidCol, frameStart, frameCount, line: lineCol, state, stackStatusCode, patchStateCode, bits } = tasks;
    const shared = this.shared;
    const capacity = tasks.capacity;
    const first = tasks.length;
    let n = first;
    let leanPid = this.leanPid;
    let leanTid = this.leanTid;
    let leanLine = this.leanLine;
    let pending = this.pendingStack;
    let pendingCount = this.pendingCount;
    let lastNumbered = this.lastNumbered;
    let k = from;
    for (; k < to && ev[k] === TOKEN_EVENT.RUN; k += TOKEN_EVENT.WORDS) {
      const pid = ev[k + 1];
      const tid = ev[k + 2];
      if (pid === leanPid && tid === leanTid) break;
      const known = shared[pending];
      if (known === undefined || known === null || known.endMarker || known.count === 0 || known.count >= PROC_STACK_MAX || n === capacity) break;
      pidCol[n] = leanPid;
      tidCol[n] = leanTid;
      frameStart[n] = known.start;
      frameCount[n] = known.count;
      lineCol[n] = leanLine;
      state[n] = 0;
      stackStatusCode[n] = STACK_OK;
      patchStateCode[n] = NO_PATCH_STATE;
      bits[n] = 0;
      n++;
      const line = ev[k + 3];
      const count = ev[k + 4];
      const last = line + count - 1;
      if (last > lastNumbered) lastNumbered = last;
      leanPid = pid;
      leanTid = tid;
      leanLine = line;
      pending = ev[k + 5];
      pendingCount = count;
    }
    if (n > first) {
      tasks.length = n;
      this.sharedUsed = true;
      this.leanPid = leanPid;
      this.leanTid = leanTid;
      this.leanLine = leanLine;
      this.pendingStack = pending;
      this.pendingCount = pendingCount;
      this.pendingSource = source;
      this.lastNumbered = lastNumbered;
    }
    return k;
  }

  /**
   * leanRuns() by the source's own loop (the wasm tokenizer: ProcTokenizer.leanRuns), which knows
   * the stacks leanMark() told it about: exactly those whose shared[] entry leanRuns() accepts.
   * It writes pid, tid, frameStart, frameCount and line; the columns every lean row has the same
   * value in are filled here.
   */
  private leanRunsInSource(from: number, to: number, source: RunSource): number {
    const tasks = this.b.tasks;
    const st = this.leanState;
    st[LEAN_STATE.PID] = this.leanPid;
    st[LEAN_STATE.TID] = this.leanTid;
    st[LEAN_STATE.LINE] = this.leanLine;
    st[LEAN_STATE.STACK] = this.pendingStack;
    st[LEAN_STATE.COUNT] = this.pendingCount;
    st[LEAN_STATE.LAST] = this.lastNumbered;
    const first = tasks.length;
    const k = source.leanRuns!(from, to, st, tasks, first, tasks.capacity - first);
    const m = st[LEAN_STATE.WRITTEN];
    if (m > 0) {
      const end = first + m;
      tasks.state.fill(0, first, end);
      tasks.stackStatusCode.fill(STACK_OK, first, end);
      tasks.patchStateCode.fill(NO_PATCH_STATE, first, end);
      tasks.bits.fill(0, first, end);
      tasks.length = end;
      this.sharedUsed = true;
      this.leanPid = st[LEAN_STATE.PID];
      this.leanTid = st[LEAN_STATE.TID];
      this.leanLine = st[LEAN_STATE.LINE];
      this.pendingStack = st[LEAN_STATE.STACK];
      this.pendingCount = st[LEAN_STATE.COUNT];
      this.pendingSource = source;
      this.lastNumbered = st[LEAN_STATE.LAST];
    }
    return k;
  }

  /** The frame lines of a run, through frame() (which parses each distinct text once). */
  private replay(ids: Uint32Array, source: RunSource, line: number): void {
    for (let k = 0; k < ids.length; k++) {
      const text = source.text(ids[k]);
      this.frame(text, 0, text.length, line + k);
    }
  }

  /** Whether a run of (pid, tid) starts a new task rather than continuing the builder's current one. */
  private startsTask(pid: number, tid: number): boolean {
    const t = this.b.current;
    return t === null || t.pid !== pid || t.tid !== tid || t.stackStatus !== "ok";
  }

  /** Makes a lean current task a builder task (its rows still pending). */
  private materialize(): void {
    if (!this.lean) return;
    this.lean = false;
    this.b.startTaskIds(this.leanPid, this.leanTid, null, this.leanLine);
  }

  /** Gives a pending task its own rows (something other than its run touches it). */
  private unpend(): void {
    if (this.pendingStack < 0) return;
    this.materialize();
    const stack = this.pendingStack;
    this.pendingStack = -1;
    this.replay(this.pendingSource!.stack(stack), this.pendingSource!, this.b.current!.line);
  }

  finish(): Capture {
    this.splitter.end();
    this.closeTask();
    const cap = this.b.finish({ name: this.name, format: "proc-text", section: 0, firstLine: 1, lastLine: Math.max(this.splitter.lineNo, this.lastNumbered) });
    if (this.sharedUsed) cap.sharedRows = true;
    cap.complete = "unknown";
    cap.completeness.push({
      code: "text-dump",
      message:
        "a /proc text dump cannot prove which tasks it left out (grep -H prints nothing for an empty stack; unreadable files may be missing): a verdict speaks only for the tasks given",
    });
    // Frames before the first task header, or after an error line closed a task, belong to no
    // header: in a dump that has headers (grep -H, tail, `==`) that is the tail of a stack whose
    // head was cut (an excerpt, `| tail -n 300`), and its innermost frames, the ones that
    // matter, are missing. Read as a whole task it reached its bottom and was clean: SAFE with
    // the task sleeping in the patched function. Only a dump of bare lines (`cat
    // /proc/PID/stack`) has anonymous traces by design.
    const tasks = cap.tasks;
    let headed = false;
    let anonymous = 0;
    for (let i = 0; i < tasks.length; i++) {
      if (tasks.tidOf(i) === null) anonymous++;
      else headed = true;
    }
    if (headed && anonymous > 0) {
      for (let i = 0; i < tasks.length; i++) if (tasks.tidOf(i) === null && tasks.stackStatusCode[i] === STACK_STATUS_CODE.ok) tasks.stackStatusCode[i] = STACK_STATUS_CODE.truncated;
      cap.completeness.push({ code: "anonymous-stacks", message: `${anonymous} trace(s) without a task header in a dump that has them: the head of each was cut` });
    }
    if (this.ignoredOutside > 0) {
      cap.warnings.push({
        code: "ignored-lines",
        message: `${this.ignoredOutside} line(s) outside any task block were not stack lines and were ignored (first at line ${this.firstIgnored})`,
      });
    }
    if (this.sawRealAddresses) {
      cap.warnings.push({ code: "real-addresses", message: "the dump prints real kernel addresses (a pre-4.15 kernel or kptr_restrict off): frames are resolved by symbol; a symbol table from the same boot is needed to trust them" });
    }
    return cap;
  }

  private closeTask(): void {
    if (this.lean) {
      const known = this.shared[this.pendingStack];
      if (known === undefined || known === null) this.materialize();
      else {
        // A repeat of a shared stack: straight into the task columns (what placePending() and
        // endTask() would make of it, without the builder task).
        this.lean = false;
        this.pendingStack = -1;
        this.sharedUsed = true;
        const status = known.count === 0 ? "empty" : known.count >= PROC_STACK_MAX && !known.endMarker ? "truncated" : "ok";
        const i = this.b.tasks.pushIds(this.leanPid, this.leanTid, known.start, known.count, this.leanLine, status);
        if (known.endMarker) this.b.tasks.setFacts(i, null, null, false, null, true);
        return;
      }
    }
    const t = this.b.current;
    if (t === null) return;
    const rows = this.pendingStack >= 0 ? this.placePending(t) : undefined;
    this.b.endTask(rows, markTruncated);
  }

  /**
   * Rows for a task that is exactly one run: the first task of a stack gets its own rows and, when
   * every line gave exactly one clean frame (an end marker may close it), they become the stack's
   * shared rows; later tasks of that stack point at them. frameLine() gives each task's lines.
   */
  private placePending(t: Task): { start: number; count: number } | undefined {
    const stack = this.pendingStack;
    const known = this.shared[stack];
    if (known === undefined) {
      this.unpend();
      const f = this.b.frames;
      const count = f.length - t.frameStart;
      let clean = count === this.pendingCount - (t.endMarker ? 1 : 0);
      for (let i = t.frameStart; clean && i < f.length; i++) if (f.flags[i] & FrameFlag.UNPARSED) clean = false;
      this.shared[stack] = clean ? { start: t.frameStart, count, endMarker: t.endMarker } : null;
      if (clean) for (let i = t.frameStart; i < f.length; i++) f.flags[i] |= FrameFlag.SHARED;
      // What leanRuns() accepts as a lean task's stack, told to a source that runs it itself.
      if (clean && !t.endMarker && count > 0 && count < PROC_STACK_MAX) this.pendingSource?.leanMark?.(stack, t.frameStart, count);
      return undefined;
    }
    if (known === null) {
      this.unpend();
      return undefined;
    }
    // The task's rows are the stack's shared ones (endTask() is told so; its own range is empty).
    this.pendingStack = -1;
    t.endMarker = known.endMarker;
    this.sharedUsed = true;
    return { start: known.start, count: known.count };
  }

  private startTask(pid: number | null, tid: number | null, line: number, comm: Uint8Array | null = null): void {
    this.closeTask();
    this.b.startTaskIds(pid, tid, comm, line);
  }

  private frame(buf: Uint8Array, s: number, e: number, line: number): void {
    this.materialize();
    if (this.b.current === null) this.startTask(null, null, line);
    const t = this.b.current!;
    const f = this.b.frames;
    const before = f.length;
    let kind: TokenKind;
    const row = this.seen.get(buf, s, e);
    if (row >= 0) {
      // Not the SHARED mark of a run's rows: this row is the task's own.
      f.pushCopy(f, row, line, f.flags[row] & ~FrameFlag.SHARED);
      kind = TokenKind.Frame;
    } else {
      kind = this.b.addProcFrameLine(buf, s, e, line);
      if (kind === TokenKind.Frame && f.length === before + 1) this.seen.set(buf, s, e, before);
    }
    if (kind === TokenKind.EndMarker) t.endMarker = true;
    else if (kind === TokenKind.Bad) this.b.addUnparsed(line);
    else if (t.endMarker) {
      // A frame after the end marker: the block is not one trace; keep it but flag it.
      this.b.addUnparsed(line);
    }
    if (this.b.frames.length > before && !this.sawRealAddresses && (this.b.frames.flags[before] & FrameFlag.HAS_ADDRESS) !== 0 && (this.b.frames.flags[before] & FrameFlag.BARE_HEX) === 0) {
      this.sawRealAddresses = true;
    }
  }

  private line(buf: Uint8Array, start: number, end: number, line: number): void {
    let s = start;
    while (s < end && (buf[s] === CH.SPACE || buf[s] === CH.TAB)) s++;
    let e = end;
    while (e > s && (buf[e - 1] === CH.SPACE || buf[e - 1] === CH.TAB)) e--;
    if (s === e) return;
    // Anything but a blank line may add to the current task: a run's task takes its own rows.
    this.unpend();
    const c = buf[s];
    if (c === CH.LBRACKET) return this.frame(buf, s, e, line);
    // tail: ==> /proc/1/task/1/stack <==
    if (startsWithAscii(buf, s, e, "==> ")) {
      if (endsWithAscii(buf, s, e, " <==") && readProcPath(buf, s + 4, e - 4, true) && pathOut.end === e - 4) {
        return this.startTask(pathOut.pid, pathOut.tid, line);
      }
      return this.other(line);
    }
    // == /proc/PID/task/TID comm
    if (startsWithAscii(buf, s, e, "== ")) {
      if (readProcPath(buf, s + 3, e, false)) {
        let q = pathOut.end;
        let comm: Uint8Array | null = null;
        if (q < e) {
          if (buf[q] !== CH.SPACE) return this.other(line);
          // comm runs to the end of the line as written (leading/trailing blanks already trimmed
          // by the line reader would lose a comm's own blanks: take the raw remainder).
          q++;
          comm = buf.slice(q, end);
        }
        return this.startTask(pathOut.pid, pathOut.tid, line, comm);
      }
      return this.other(line);
    }
    // grep -H: /proc/1/task/1/stack:[<0>] …
    if (c === CH.SLASH && readProcPath(buf, s, e, true) && buf[pathOut.end] === CH.COLON) {
      const t = this.b.current;
      if (t === null || t.pid !== pathOut.pid || t.tid !== pathOut.tid || t.stackStatus !== "ok") {
        this.startTask(pathOut.pid, pathOut.tid, line);
      }
      return this.frame(buf, pathOut.end + 1, e, line);
    }
    // grep: /proc/1/task/1/stack: Operation not permitted
    // tail: cannot open '/proc/1/task/1/stack' for reading: Operation not permitted
    // cat: /proc/1/task/1/stack: Operation not permitted
    const slash = indexOfByte(buf, CH.SLASH, s, e);
    if (slash > s && (startsWithAscii(buf, s, e, "grep: ") || startsWithAscii(buf, s, e, "tail: ") || startsWithAscii(buf, s, e, "cat: "))) {
      if (readProcPath(buf, slash, e, true)) {
        const pid = pathOut.pid;
        const tid = pathOut.tid;
        const text = String.fromCharCode(...buf.subarray(pathOut.end, e));
        const known = ERRNO_TEXT.find(([m]) => text.includes(m));
        // `tail` prints its `==> path <==` header before failing: the error belongs to it.
        const cur = this.b.current;
        const sameHeader = cur !== null && cur.pid === pid && cur.tid === tid && this.b.frames.length === cur.frameStart;
        if (!sameHeader) this.startTask(pid, tid, line);
        const t = this.b.current!;
        if (known !== undefined && (known[1] === "ENOENT" || known[1] === "ESRCH")) t.stackStatus = "vanished";
        else t.stackStatus = "unreadable";
        t.errno = known?.[1] ?? "EIO";
        this.closeTask();
        return;
      }
    }
    this.other(line);
  }

  private other(line: number): void {
    this.materialize();
    if (this.b.current !== null) {
      this.b.addUnparsed(line);
      return;
    }
    if (this.ignoredOutside++ === 0) this.firstIgnored = line;
  }
}

/** Parses a whole /proc text dump held in memory (bytes or an ASCII/latin1 string). */
export function parseProcText(input: Uint8Array | string, name = "<input>"): Capture {
  const p = new ProcTextParser(name);
  p.push(typeof input === "string" ? latin1Bytes(input) : input);
  return p.finish();
}

function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}
