/**
 * patchsafe's data model (SPEC §9). Every stage reads and writes these shapes:
 *
 *   ingest ──▶ Capture (tasks + columnar frames)  ──resolve──▶ ResolvedFrames (u64 scan keys)
 *   patch  ──▶ RangeTable (blocking ranges, roles)  ──scan──▶ hits ──decide──▶ Verdict ──report
 *
 * Frames are columnar (typed arrays, one row per frame) because captures hold millions of them;
 * tasks are plain objects. Later issues add columns and fields; none of these is ever replaced.
 */

export type TriState = true | false | "unknown";

export interface Reason {
  code: string;
  message: string;
}

/** Where a capture came from. */
export interface CaptureSource {
  /** File name as the user gave it, `-` for stdin, `live` for a live capture. */
  name: string;
  /** Input format that produced the capture (`proc-text`, `patchsafe-capture`, `live-proc`, …). */
  format: string;
  /** Dump section within the file (a dmesg may hold several), 0-based. */
  section: number;
  firstLine: number | null;
  lastLine: number | null;
}

/** Facts about the host the capture describes; null where the input does not say. */
export interface HostFacts {
  bootId: string | null;
  release: string | null;
  arch: string | null;
  hostname: string | null;
  /** Capture time, ISO 8601. */
  capturedAt: string | null;
  /** Kernel config facts the rules need (null: unknown). */
  config: {
    livepatch: boolean | null;
    reliableStacktrace: boolean | null;
    unwinder: "orc" | "frame-pointer" | "other" | null;
  };
  /** Whether the capturing process had CAP_SYS_ADMIN in the initial user namespace. */
  capSysAdmin: boolean | null;
  /** Whether the capture ran in the initial PID namespace (pid 2 kthreadd visible). */
  initPidNamespace: boolean | null;
}

export function emptyHostFacts(): HostFacts {
  return {
    bootId: null,
    release: null,
    arch: null,
    hostname: null,
    capturedAt: null,
    config: { livepatch: null, reliableStacktrace: null, unwinder: null },
    capSysAdmin: null,
    initPidNamespace: null,
  };
}

export type StackStatus = "ok" | "empty" | "unreadable" | "truncated" | "vanished";

/** One thread of execution (a tid). */
export interface Task {
  pid: number | null;
  tid: number | null;
  /** The raw comm bytes (attacker-controlled: any byte but NUL); null when the input omits it. */
  comm: Uint8Array | null;
  /** One-letter state as /proc/<pid>/stat prints it (R S D T t X Z P I), or null. */
  state: string | null;
  /** PF_* flags from stat field 9, or null. */
  flags: number | null;
  ppid: number | null;
  /** stat field 22 (clock ticks since boot): tids are reused, (tid, startTime) is not. */
  startTime: number | null;
  cpu: number | null;
  /** /proc/<pid>/patch_state: -1 no transition, 0 unpatched, 1 patched; null unknown. */
  patchState: -1 | 0 | 1 | null;
  stackStatus: StackStatus;
  /** errno name when the stack was unreadable (EPERM, EACCES, …). */
  errno: string | null;
  /** The dump said the task was on a CPU when captured. */
  running: boolean;
  /** `Kthread: 1` in status (kernels since ~6.4); null when absent. */
  statusKthread: boolean | null;
  /** The walker's end marker (`0xffffffffffffffff`, pre-5.2 x86) was seen after the frames. */
  endMarker: boolean;
  /**
   * Frames of this task are rows [frameStart, frameStart + frameCount) of the frame columns.
   * Rows may be shared: tasks with identical stacks may point at the same rows (see
   * Capture.sharedRows); rows are read-only once ingest has finished.
   */
  frameStart: number;
  frameCount: number;
  /** First source line of the task's block (1-based), 0 when not from text. */
  line: number;
}

export function newTask(p: Partial<Task> & { frameStart: number }): Task {
  // Field by field, not a spread: one hidden class for every task (a 1M-task capture makes
  // a million of these).
  return {
    pid: p.pid ?? null,
    tid: p.tid ?? null,
    comm: p.comm ?? null,
    state: p.state ?? null,
    flags: p.flags ?? null,
    ppid: p.ppid ?? null,
    startTime: p.startTime ?? null,
    cpu: p.cpu ?? null,
    patchState: p.patchState ?? null,
    stackStatus: p.stackStatus ?? "ok",
    errno: p.errno ?? null,
    running: p.running ?? false,
    statusKthread: p.statusKthread ?? null,
    endMarker: p.endMarker ?? false,
    frameStart: p.frameStart,
    frameCount: p.frameCount ?? 0,
    line: p.line ?? 0,
  };
}

/** Per-frame flag bits (FrameColumns.flags). */
export const FrameFlag = {
  /** `? ` entry: a word found on the stack, not part of the unwound chain. */
  GUESS: 1 << 0,
  /** Inside an interrupt / exception / pt_regs section (`<IRQ>`, `<NMI>`, …). */
  REGS: 1 << 1,
  /** `[inline]` pseudo-frame of a symbolized report (no return address of its own). */
  INLINE: 1 << 2,
  /** A line in the task's block that the parser could not read; it may have been a frame. */
  UNPARSED: 1 << 3,
  /** The address column is valid. */
  HAS_ADDRESS: 1 << 4,
  /** symbol / offset columns are valid. */
  SYMBOLIC: 1 << 5,
  /** The printed size column is valid. */
  HAS_SIZE: 1 << 6,
  /** Only a bare hex address was printed: code with no symbol (BPF, trampolines, garbage). */
  BARE_HEX: 1 << 7,
  /** An offset was printed (`+0x…`); without it (crash `bt`, ARM callers) only the address places the frame. */
  HAS_OFFSET: 1 << 8,
  /**
   * The row belongs to a span that several tasks may share (Capture.sharedRows): its `line` is
   * that of the first task; frameLine() gives the line in any sharing task's block.
   */
  SHARED: 1 << 9,
} as const;

/** Interned strings: symbol names, module names, build ids. Id order is first-seen order. */
export class StringTable {
  readonly values: string[] = [];
  private readonly ids = new Map<string, number>();

  intern(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(s);
      this.ids.set(s, id);
    }
    return id;
  }

  get(id: number): string {
    return this.values[id];
  }

  find(s: string): number | undefined {
    return this.ids.get(s);
  }
}

/** The object name of the kernel image: a frame without `[module]` is in vmlinux. */
export const VMLINUX = "vmlinux";

/**
 * Frames of all tasks, one row per frame, innermost first within a task. Growable while a
 * parser fills it; `length` rows are valid. -1 in an id column means "absent".
 */
export class FrameColumns {
  length = 0;
  symbol: Int32Array;
  object: Int32Array;
  buildId: Int32Array;
  offset: Uint32Array;
  size: Uint32Array;
  /** Absolute address as two u32 halves (valid with HAS_ADDRESS). */
  addrLo: Uint32Array;
  addrHi: Uint32Array;
  flags: Uint16Array;
  /** 1-based source line, 0 when not from text. */
  line: Uint32Array;

  constructor(capacity = 1024) {
    this.symbol = new Int32Array(capacity);
    this.object = new Int32Array(capacity);
    this.buildId = new Int32Array(capacity);
    this.offset = new Uint32Array(capacity);
    this.size = new Uint32Array(capacity);
    this.addrLo = new Uint32Array(capacity);
    this.addrHi = new Uint32Array(capacity);
    this.flags = new Uint16Array(capacity);
    this.line = new Uint32Array(capacity);
  }

  /** Appends a zeroed row (ids -1) and returns its index. */
  push(): number {
    // 1.5x past 1M rows: a 5M-frame capture then carries at most half its size again in slack,
    // not all of it (the old and new columns coexist during the copy).
    if (this.length === this.symbol.length) this.grow(this.length < 1 << 20 ? this.length * 2 || 1024 : Math.ceil(this.length * 1.5));
    const i = this.length++;
    this.symbol[i] = -1;
    this.object[i] = -1;
    this.buildId[i] = -1;
    this.offset[i] = 0;
    this.size[i] = 0;
    this.addrLo[i] = 0;
    this.addrHi[i] = 0;
    this.flags[i] = 0;
    this.line[i] = 0;
    return i;
  }

  /**
   * Appends a copy of row `row` of `src` (this or other columns) with its own line and flags;
   * returns the new row's index.
   */
  pushCopy(src: FrameColumns, row: number, line: number, flags: number = src.flags[row]): number {
    const i = this.push();
    // Read `src` after push(): when src is this, growing replaced the arrays.
    this.symbol[i] = src.symbol[row];
    this.object[i] = src.object[row];
    this.buildId[i] = src.buildId[row];
    this.offset[i] = src.offset[row];
    this.size[i] = src.size[row];
    this.addrLo[i] = src.addrLo[row];
    this.addrHi[i] = src.addrHi[row];
    this.flags[i] = flags;
    this.line[i] = line;
    return i;
  }

  private grow(capacity: number): void {
    const grow = <T extends Int32Array | Uint32Array | Uint16Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a);
      return b;
    };
    this.symbol = grow(this.symbol, (n) => new Int32Array(n));
    this.object = grow(this.object, (n) => new Int32Array(n));
    this.buildId = grow(this.buildId, (n) => new Int32Array(n));
    this.offset = grow(this.offset, (n) => new Uint32Array(n));
    this.size = grow(this.size, (n) => new Uint32Array(n));
    this.addrLo = grow(this.addrLo, (n) => new Uint32Array(n));
    this.addrHi = grow(this.addrHi, (n) => new Uint32Array(n));
    this.flags = grow(this.flags, (n) => new Uint16Array(n));
    this.line = grow(this.line, (n) => new Uint32Array(n));
  }

  address(i: number): bigint | null {
    if ((this.flags[i] & FrameFlag.HAS_ADDRESS) === 0) return null;
    return (BigInt(this.addrHi[i]) << 32n) | BigInt(this.addrLo[i]);
  }
}

/** One function of an applied (enabled) patch, as /sys/kernel/livepatch or a patch file shows it. */
export interface AppliedFunction {
  object: string;
  oldName: string;
  /** livepatch old_sympos (0 = unique). */
  oldSympos: number;
  /** The replacement's symbol name; null = same as oldName (kpatch-built modules keep the name). */
  newName: string | null;
  /** The replacement's size in bytes, when known (hand-written modules' files may give it). */
  newSize: number | null;
  /** kpatch KPATCH_FORCE_UNSAFE: never checked; the module can then never be unloaded. */
  force: boolean;
}

/** A patch already on the host (SPEC §9 PatchStack entry), oldest first in a stack. */
export interface AppliedPatch {
  /** Module name: its replacements carry `[name]` in stack frames. */
  name: string;
  enabled: boolean;
  /** This patch's transition is in progress (/sys/kernel/livepatch/<p>/transition). */
  transition: boolean;
  replace: boolean;
  /** A transition of this patch was forced. */
  forced: boolean;
  /** /sys/kernel/livepatch/<p>/stack_order (6.13+), null when unknown. */
  stackOrder: number | null;
  funcs: AppliedFunction[];
}

/** One capture: a consistent set of tasks from one host at (about) one instant. */
export interface Capture {
  source: CaptureSource;
  host: HostFacts;
  /** SPEC §3 completeness. */
  complete: TriState;
  completeness: Reason[];
  /** The walker that produced the stacks drops .sched.text/.spinlock.text frames (/proc, kpatch). */
  hidesSchedFrames: boolean;
  tasks: Task[];
  frames: FrameColumns;
  /**
   * Tasks with identical stacks share frame rows (a 1M-task dump holds a few hundred distinct
   * stacks). Then `frames.line` of a shared row is its line in the first task that produced it;
   * use frameLine() for a frame's line in a given task's block. Absent/false: every task owns its rows.
   */
  sharedRows?: boolean;
  strings: StringTable;
  /** Tasks deliberately left out (patchsafe's own threads), with why. */
  excluded: { pid: number; tid: number; reason: string }[];
  warnings: Reason[];
  /** Enabled live patches recorded with the capture (oldest first); null = not recorded. */
  livepatches: AppliedPatch[] | null;
  /** Loaded modules (/proc/modules names); null = not recorded. */
  modules: string[] | null;
}

/**
 * The source line of frame row `i` as it appears in task `t`'s block. Rows of a shared span
 * carry FrameFlag.SHARED; ingest shares a span only where each task's frames sit on consecutive
 * lines starting at the task's own first line (grep -H runs, snapshots with implicit lines), so
 * the line follows from the task. Other rows carry their own line.
 */
export function frameLine(cap: Capture, t: Task, i: number): number {
  if (!cap.sharedRows || (cap.frames.flags[i] & FrameFlag.SHARED) === 0) return cap.frames.line[i];
  return t.line + (i - t.frameStart);
}

/** Frames over all tasks as the input shows them (rows shared by several tasks count for each). */
export function framesInTasks(cap: Capture): number {
  let n = 0;
  for (const t of cap.tasks) n += t.frameCount;
  return n;
}

/** Formats a u64 as the JSON contract's hex string. */
export function hex64(v: bigint): string {
  return `0x${v.toString(16).padStart(16, "0")}`;
}

export function u64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
