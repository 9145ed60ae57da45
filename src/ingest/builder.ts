/**
 * CaptureBuilder: what every ingest format fills. It owns the frame columns and task list and
 * knows the /proc frame grammar (`[<ADDR>] TOKEN`, FORMATS.md §2–3), so formats only find
 * task boundaries and hand over frame lines.
 */
import {
  type Capture,
  type CaptureSource,
  emptyHostFacts,
  FrameColumns,
  FrameFlag,
  newTask,
  StringTable,
  type Task,
  TaskTable,
  VMLINUX,
} from "../model.js";
import { ByteInterner, CH, hexDigit, hexOut, indexOfByte, parseHex64 } from "./bytes.js";

/** Outcome of reading one frame token. */
export const TokenKind = {
  Frame: 0,
  /** `0xffffffffffffffff`: the pre-5.2 x86 end-of-trace marker, not a frame. */
  EndMarker: 1,
  Bad: 2,
} as const;
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind];

export class CaptureBuilder {
  readonly strings = new StringTable();
  readonly frames = new FrameColumns();
  /** Tasks; the current task's row is reserved at its start and written when it ends. */
  readonly tasks: TaskTable;
  readonly interner: ByteInterner;
  private readonly vmlinuxId: number;
  /** The task being filled (a scratch object, written into `tasks` by endTask()). */
  current: Task | null = null;
  private currentIndex = -1;

  constructor(expectedTasks = 64) {
    this.tasks = new TaskTable(expectedTasks);
    this.interner = new ByteInterner(this.strings);
    this.vmlinuxId = this.strings.intern(VMLINUX);
  }

  startTask(partial: Partial<Task>, line: number): Task {
    this.endTask();
    partial.frameStart = this.frames.length;
    partial.line = line;
    const t = newTask(partial as Partial<Task> & { frameStart: number });
    this.currentIndex = this.tasks.reserve();
    this.current = t;
    return t;
  }

  /** startTask for a task known only by ids and line (the /proc text path): no partial object. */
  startTaskIds(pid: number | null, tid: number | null, comm: Uint8Array | null, line: number): Task {
    this.endTask();
    const t: Task = {
      pid,
      tid,
      comm,
      state: null,
      flags: null,
      ppid: null,
      startTime: null,
      cpu: null,
      patchState: null,
      stackStatus: "ok",
      errno: null,
      running: false,
      statusKthread: null,
      endMarker: false,
      frameStart: this.frames.length,
      frameCount: 0,
      line,
    };
    this.currentIndex = this.tasks.reserve();
    this.current = t;
    return t;
  }

  /**
   * Ends the current task: its rows run to the end of the frame columns, or are `rows` (shared
   * rows placed elsewhere). `adjust` may change the task (its final counts known) before it is
   * written.
   */
  endTask(rows?: { start: number; count: number }, adjust?: (t: Task) => void): void {
    const t = this.current;
    if (t === null) return;
    if (rows !== undefined) {
      t.frameStart = rows.start;
      t.frameCount = rows.count;
    } else t.frameCount = this.frames.length - t.frameStart;
    if (t.frameCount === 0 && t.stackStatus === "ok") t.stackStatus = "empty";
    adjust?.(t);
    this.tasks.set(this.currentIndex, t);
    this.current = null;
    this.currentIndex = -1;
  }

  /** Drops the current task (it vanished while read). */
  dropTask(): void {
    if (this.current === null) return;
    this.current = null;
    this.currentIndex = -1;
    this.tasks.pop();
  }

  /** The index of the first ended task (not the current one) that `pred` accepts, or -1. */
  findTask(pred: (t: Task) => boolean): number {
    const n = this.current === null ? this.tasks.length : this.currentIndex;
    for (let i = 0; i < n; i++) if (pred(this.tasks.get(i))) return i;
    return -1;
  }

  /** A line of the task's block that could not be read: it may have been a frame. */
  addUnparsed(line: number): void {
    const i = this.frames.push();
    this.frames.flags[i] = FrameFlag.UNPARSED;
    this.frames.line[i] = line;
  }

  /**
   * Reads `[<ADDR>] TOKEN` in buf[start, end) (leading blanks allowed) into a new frame of the
   * current task. Returns the kind; on Bad nothing is added.
   */
  addProcFrameLine(buf: Uint8Array, start: number, end: number, line: number): TokenKind {
    while (start < end && (buf[start] === CH.SPACE || buf[start] === CH.TAB)) start++;
    while (end > start && (buf[end - 1] === CH.SPACE || buf[end - 1] === CH.TAB)) end--;
    if (end - start < 5 || buf[start] !== CH.LBRACKET || buf[start + 1] !== CH.LT) return TokenKind.Bad;
    const close = indexOfByte(buf, CH.GT, start + 2, end);
    if (close < 0 || close + 1 >= end || buf[close + 1] !== CH.RBRACKET) return TokenKind.Bad;
    let hasAddr = false;
    let lo = 0;
    let hi = 0;
    if (!parseHex64(buf, start + 2, close)) return TokenKind.Bad;
    if (hexOut.lo !== 0 || hexOut.hi !== 0) {
      // `[<0>]` (4.15+) and all-zero `%pK` addresses carry no address.
      hasAddr = true;
      lo = hexOut.lo;
      hi = hexOut.hi;
    }
    let p = close + 2;
    if (p < end && buf[p] !== CH.SPACE) return TokenKind.Bad;
    while (p < end && buf[p] === CH.SPACE) p++;
    return this.addToken(buf, p, end, line, hasAddr, lo, hi, 0);
  }

  /**
   * Reads a frame token `[? ]symbol[+0xOFF[/0xSIZE]][ [module[ buildid]]]` or a bare `0xHEX`.
   * `extraFlags` are OR-ed into the frame (GUESS, REGS from the caller's context).
   */
  addToken(
    buf: Uint8Array,
    start: number,
    end: number,
    line: number,
    hasAddr: boolean,
    lo: number,
    hi: number,
    extraFlags: number,
  ): TokenKind {
    let p = start;
    let flags = extraFlags;
    if (end - p >= 2 && buf[p] === CH.QUESTION && buf[p + 1] === CH.SPACE) {
      flags |= FrameFlag.GUESS;
      p += 2;
      while (p < end && buf[p] === CH.SPACE) p++;
    }
    if (p >= end) return TokenKind.Bad;
    // Bare hex: `0xffffffffffffffff` end marker, or code without a symbol.
    if (buf[p] === CH.ZERO && p + 2 < end && buf[p + 1] === CH.x && indexOfByte(buf, CH.SPACE, p, end) < 0) {
      if (!parseHex64(buf, p + 2, end)) return TokenKind.Bad;
      if (hexOut.lo === 0xffffffff && hexOut.hi === 0xffffffff) return TokenKind.EndMarker;
      const i = this.frames.push();
      this.frames.flags[i] = flags | FrameFlag.HAS_ADDRESS | FrameFlag.BARE_HEX;
      this.frames.addrLo[i] = hexOut.lo;
      this.frames.addrHi[i] = hexOut.hi;
      this.frames.object[i] = -1;
      this.frames.line[i] = line;
      return TokenKind.Frame;
    }
    // Symbol name: up to '+' or ' '.
    let q = p;
    while (q < end && buf[q] !== CH.PLUS && buf[q] !== CH.SPACE) q++;
    if (q === p) return TokenKind.Bad;
    const nameEnd = q;
    let offset = 0;
    let size = 0;
    let hasOffset = false;
    let hasSize = false;
    if (q < end && buf[q] === CH.PLUS) {
      const r = readHexField(buf, q + 1, end);
      if (r < 0) return TokenKind.Bad;
      offset = fieldValue;
      hasOffset = true;
      q = r;
      if (q < end && buf[q] === CH.SLASH) {
        const r2 = readHexField(buf, q + 1, end);
        if (r2 < 0) return TokenKind.Bad;
        size = fieldValue;
        hasSize = true;
        q = r2;
      }
    }
    let objectId = this.vmlinuxId;
    let buildId = -1;
    if (q < end) {
      if (buf[q] !== CH.SPACE) return TokenKind.Bad;
      while (q < end && buf[q] === CH.SPACE) q++;
      if (q < end) {
        if (buf[q] !== CH.LBRACKET || buf[end - 1] !== CH.RBRACKET) return TokenKind.Bad;
        const inner = q + 1;
        const innerEnd = end - 1;
        const sp = indexOfByte(buf, CH.SPACE, inner, innerEnd);
        const modEnd = sp < 0 ? innerEnd : sp;
        if (modEnd === inner) return TokenKind.Bad;
        for (let k = inner; k < modEnd; k++) if (buf[k] === CH.LBRACKET || buf[k] === CH.RBRACKET) return TokenKind.Bad;
        objectId = this.interner.intern(buf, inner, modEnd);
        if (sp >= 0) {
          const b = sp + 1;
          if (b >= innerEnd) return TokenKind.Bad;
          for (let k = b; k < innerEnd; k++) if (hexDigit(buf[k]) < 0) return TokenKind.Bad;
          buildId = this.interner.intern(buf, b, innerEnd);
        }
      }
    }
    const i = this.frames.push();
    this.frames.symbol[i] = this.interner.intern(buf, p, nameEnd);
    this.frames.object[i] = objectId;
    this.frames.buildId[i] = buildId;
    this.frames.offset[i] = offset;
    this.frames.size[i] = size;
    if (hasAddr) {
      flags |= FrameFlag.HAS_ADDRESS;
      this.frames.addrLo[i] = lo;
      this.frames.addrHi[i] = hi;
    }
    flags |= FrameFlag.SYMBOLIC;
    if (hasSize) flags |= FrameFlag.HAS_SIZE;
    if (!hasOffset) this.frames.offset[i] = 0;
    else flags |= FrameFlag.HAS_OFFSET;
    this.frames.flags[i] = flags;
    this.frames.line[i] = line;
    return TokenKind.Frame;
  }

  finish(source: CaptureSource): Capture {
    this.endTask();
    return {
      source,
      host: emptyHostFacts(),
      complete: "unknown",
      completeness: [],
      hidesSchedFrames: true,
      tasks: this.tasks,
      frames: this.frames,
      strings: this.strings,
      excluded: [],
      warnings: [],
      livepatches: null,
      modules: null,
    };
  }
}

let fieldValue = 0;

/** Reads `0xHEX` (≤ 8 digits: offsets and sizes fit in u32) at p; returns the end or -1. */
function readHexField(buf: Uint8Array, p: number, end: number): number {
  if (end - p < 3) return -1;
  if (buf[p] !== CH.ZERO || buf[p + 1] !== CH.x) return -1;
  let q = p + 2;
  let v = 0;
  while (q < end) {
    const d = hexDigit(buf[q]);
    if (d < 0) break;
    v = v * 16 + d;
    q++;
  }
  if (q === p + 2 || q - (p + 2) > 8) return -1;
  fieldValue = v;
  return q;
}
