/**
 * patchsafe's data model (SPEC §9). Every stage reads and writes these shapes:
 *
 *   ingest ──▶ Capture (tasks + columnar frames)  ──resolve──▶ ResolvedFrames (u64 scan keys)
 *   patch  ──▶ RangeTable (blocking ranges, roles)  ──scan──▶ hits ──decide──▶ Verdict ──report
 *
 * Frames and tasks are columnar (typed arrays, one row per frame or task) because captures hold
 * millions of them; a task is read as a Task object where speed does not matter. Later issues add columns and fields; none of these is ever replaced.
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

/**
 * The longest comm an input may carry. The kernel's is at most 15 bytes (TASK_COMM_LEN), and the
 * longest names tools print (a kworker with its workqueue appended) stay within 64; a longer one
 * is not a task name, and a hostile input could make it any size.
 */
export const MAX_COMM_BYTES = 256;

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

/**
 * The array-like reading the column classes share (TaskTable, Outcomes, Blockers): rows are
 * columns, read as objects made on demand by get(i), for code that looks at a few rows or reads
 * better with objects. Hot loops read the columns.
 */
export abstract class Rows<T> implements Iterable<T> {
  abstract length: number;
  abstract get(i: number): T;

  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  toArray(): T[] {
    const out: T[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.get(i);
    return out;
  }

  map<U>(fn: (row: T, i: number) => U): U[] {
    const out: U[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = fn(this.get(i), i);
    return out;
  }

  forEach(fn: (row: T, i: number) => void): void {
    for (let i = 0; i < this.length; i++) fn(this.get(i), i);
  }

  filter(pred: (row: T, i: number) => boolean): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.length; i++) {
      const r = this.get(i);
      if (pred(r, i)) out.push(r);
    }
    return out;
  }

  findIndex(pred: (row: T, i: number) => boolean): number {
    for (let i = 0; i < this.length; i++) if (pred(this.get(i), i)) return i;
    return -1;
  }

  find(pred: (row: T, i: number) => boolean): T | undefined {
    const i = this.findIndex(pred);
    return i < 0 ? undefined : this.get(i);
  }

  some(pred: (row: T, i: number) => boolean): boolean {
    return this.findIndex(pred) >= 0;
  }

  every(pred: (row: T, i: number) => boolean): boolean {
    return this.findIndex((r, i) => !pred(r, i)) < 0;
  }
}

export const STACK_STATUSES: readonly StackStatus[] = ["ok", "empty", "unreadable", "truncated", "vanished"];
export const STACK_STATUS_CODE: Record<StackStatus, number> = { ok: 0, empty: 1, unreadable: 2, truncated: 3, vanished: 4 };
/** TaskTable.bits */
const BIT = { RUNNING: 1, END_MARKER: 2, KTHREAD_KNOWN: 4, KTHREAD: 8 } as const;
/** TaskTable.patchState: a code for null. */
export const PATCH_STATE_NULL = -2;

/**
 * The tasks of a capture as columns, one row per task. A 1M-task capture as one object per task
 * held ~170 MB of heap and cost ~250 ms to build and far more in GC; as columns it is a few typed
 * arrays. Columns that most inputs leave null (ppid, cpu, start time, PF flags, comm) are only
 * allocated once some task has a value.
 *
 * get(i) returns the row as a fresh Task object: a copy, so changing it changes nothing here
 * (set() does). Hot loops read the columns; the array-like helpers (map, filter, …) are for
 * code that looks at a few tasks or reads better with objects.
 */
export class TaskTable extends Rows<Readonly<Task>> {
  length = 0;
  /** null as NaN (Float64: pids and tids are identities, never truncated to 32 bits). */
  pid: Float64Array;
  tid: Float64Array;
  frameStart: Uint32Array;
  frameCount: Uint32Array;
  line: Uint32Array;
  /** stat state letter's char code, 0 for null. */
  state: Uint8Array;
  /** Index into STACK_STATUSES. */
  stackStatusCode: Uint8Array;
  /** -1, 0, 1, or -2 for null. */
  patchStateCode: Int8Array;
  /** BIT.* */
  bits: Uint8Array;
  private ppidCol: Float64Array | null = null;
  private cpuCol: Float64Array | null = null;
  private startTimeCol: Float64Array | null = null;
  private flagsCol: Float64Array | null = null;
  /** comm bytes: commOff/commLen into commBlob; commLen -1 for null. */
  private commOff: Uint32Array | null = null;
  private commLen: Int32Array | null = null;
  private commBlob = new Uint8Array(0);
  private commUsed = 0;
  /** errno names of unreadable tasks: rare, so a map. */
  private readonly errnos = new Map<number, string>();

  constructor(capacity = 64) {
    super();
    capacity = Math.max(capacity, 1);
    this.pid = new Float64Array(capacity);
    this.tid = new Float64Array(capacity);
    this.frameStart = new Uint32Array(capacity);
    this.frameCount = new Uint32Array(capacity);
    this.line = new Uint32Array(capacity);
    this.state = new Uint8Array(capacity);
    this.stackStatusCode = new Uint8Array(capacity);
    this.patchStateCode = new Int8Array(capacity);
    this.bits = new Uint8Array(capacity);
  }

  static from(tasks: Iterable<Task>): TaskTable {
    const list = Array.isArray(tasks) ? (tasks as Task[]) : [...tasks];
    const out = new TaskTable(list.length);
    for (const t of list) out.push(t);
    return out;
  }

  get capacity(): number {
    return this.pid.length;
  }

  /**
   * A copy of every row, with room for at least `capacity` rows: each column copied whole, no
   * Task object per row (a model that adds tasks to a million-task capture copies it first).
   */
  copy(capacity = this.length): TaskTable {
    const cap = Math.max(capacity, this.length, 1);
    const out = new TaskTable(1);
    const fit = <T extends Column>(a: T): T => grown(a.length > cap ? (a.subarray(0, cap) as T) : a, cap);
    out.pid = fit(this.pid);
    out.tid = fit(this.tid);
    out.frameStart = fit(this.frameStart);
    out.frameCount = fit(this.frameCount);
    out.line = fit(this.line);
    out.state = fit(this.state);
    out.stackStatusCode = fit(this.stackStatusCode);
    out.patchStateCode = fit(this.patchStateCode);
    out.bits = fit(this.bits);
    out.ppidCol = this.ppidCol === null ? null : fit(this.ppidCol);
    out.cpuCol = this.cpuCol === null ? null : fit(this.cpuCol);
    out.startTimeCol = this.startTimeCol === null ? null : fit(this.startTimeCol);
    out.flagsCol = this.flagsCol === null ? null : fit(this.flagsCol);
    out.commOff = this.commOff === null ? null : fit(this.commOff);
    out.commLen = this.commLen === null ? null : fit(this.commLen);
    out.commBlob = this.commBlob.slice(0, this.commUsed);
    out.commUsed = this.commUsed;
    for (const [i, e] of this.errnos) out.errnos.set(i, e);
    out.length = this.length;
    return out;
  }

  /** Appends a task (missing fields as newTask fills them); returns its index. */
  push(p: Partial<Task> & { frameStart: number }): number {
    if (this.length === this.capacity) this.grow(this.length < 1 << 20 ? this.length * 2 : Math.ceil(this.length * 1.5));
    const i = this.length++;
    this.set(i, newTask(p));
    return i;
  }

  /**
   * Appends a task known only by ids and rows (the /proc text path): every other field null or
   * default, no object made.
   */
  pushIds(pid: number | null, tid: number | null, frameStart: number, frameCount: number, line: number, stackStatus: StackStatus): number {
    if (this.length === this.capacity) this.grow(this.length < 1 << 20 ? this.length * 2 : Math.ceil(this.length * 1.5));
    const i = this.length++;
    this.pid[i] = pid === null ? Number.NaN : pid;
    this.tid[i] = tid === null ? Number.NaN : tid;
    this.frameStart[i] = frameStart;
    this.frameCount[i] = frameCount;
    this.line[i] = line;
    this.state[i] = 0;
    this.stackStatusCode[i] = STACK_STATUS_CODE[stackStatus];
    this.patchStateCode[i] = PATCH_STATE_NULL;
    this.bits[i] = 0;
    if (this.ppidCol !== null) this.ppidCol[i] = Number.NaN;
    if (this.cpuCol !== null) this.cpuCol[i] = Number.NaN;
    if (this.startTimeCol !== null) this.startTimeCol[i] = Number.NaN;
    if (this.flagsCol !== null) this.flagsCol[i] = Number.NaN;
    if (this.commLen !== null) this.commLen[i] = -1;
    return i;
  }

  /**
   * Whether any of the columns most inputs leave null (ppid, cpu, start time, PF flags, comm) is
   * allocated: code that writes rows into the columns itself must then fill those too (pushIds).
   */
  rareColumnsUsed(): boolean {
    return this.ppidCol !== null || this.cpuCol !== null || this.startTimeCol !== null || this.flagsCol !== null || this.commLen !== null;
  }

  /**
   * Appends `n` tasks at once, each as pushIds(null, null, 0, 0, 0, "ok") would append it (every
   * field null or default), for a decoder that then writes the columns itself (pid, tid,
   * frameStart, frameCount, line, stackStatusCode, …) without a call per task. Returns the first
   * new index.
   */
  appendBlank(n: number): number {
    const i = this.length;
    const end = i + n;
    if (end > this.capacity) this.grow(Math.max(end, this.length < 1 << 20 ? this.length * 2 : Math.ceil(this.length * 1.5)));
    this.length = end;
    this.pid.fill(Number.NaN, i, end);
    this.tid.fill(Number.NaN, i, end);
    this.frameStart.fill(0, i, end);
    this.frameCount.fill(0, i, end);
    this.line.fill(0, i, end);
    this.state.fill(0, i, end);
    this.stackStatusCode.fill(STACK_STATUS_CODE.ok, i, end);
    this.patchStateCode.fill(PATCH_STATE_NULL, i, end);
    this.bits.fill(0, i, end);
    if (this.ppidCol !== null) this.ppidCol.fill(Number.NaN, i, end);
    if (this.cpuCol !== null) this.cpuCol.fill(Number.NaN, i, end);
    if (this.startTimeCol !== null) this.startTimeCol.fill(Number.NaN, i, end);
    if (this.flagsCol !== null) this.flagsCol.fill(Number.NaN, i, end);
    if (this.commLen !== null) this.commLen.fill(-1, i, end);
    return i;
  }

  /** Appends a row to be written later with set() (a builder's current task); returns its index. */
  reserve(): number {
    if (this.length === this.capacity) this.grow(this.length < 1 << 20 ? this.length * 2 : Math.ceil(this.length * 1.5));
    const i = this.length++;
    this.pid[i] = Number.NaN;
    this.tid[i] = Number.NaN;
    return i;
  }

  /** Removes the last task. */
  pop(): void {
    if (this.length === 0) return;
    this.length--;
    this.errnos.delete(this.length);
  }

  /** Overwrites row i (< length) with t. */
  set(i: number, t: Task): void {
    this.pid[i] = t.pid === null ? Number.NaN : t.pid;
    this.tid[i] = t.tid === null ? Number.NaN : t.tid;
    this.frameStart[i] = t.frameStart;
    this.frameCount[i] = t.frameCount;
    this.line[i] = t.line;
    this.stackStatusCode[i] = STACK_STATUS_CODE[t.stackStatus];
    this.setFacts(i, t.state, t.patchState, t.running, t.statusKthread, t.endMarker);
    // The rare fields only when present or already held (a million /proc text tasks have none).
    if (t.ppid !== null || t.cpu !== null || t.startTime !== null || t.flags !== null || this.ppidCol !== null || this.cpuCol !== null || this.startTimeCol !== null || this.flagsCol !== null) {
      this.setNumbers(i, t.ppid, t.cpu, t.startTime, t.flags);
    }
    if (t.errno !== null || this.errnos.size > 0) this.setErrno(i, t.errno);
    if (t.comm !== null || this.commLen !== null) this.setComm(i, t.comm);
  }

  /** The rarely present numbers of row i (null: absent). */
  setNumbers(i: number, ppid: number | null, cpu: number | null, startTime: number | null, flags: number | null): void {
    this.setOptional("ppidCol", i, ppid);
    this.setOptional("cpuCol", i, cpu);
    this.setOptional("startTimeCol", i, startTime);
    this.setOptional("flagsCol", i, flags);
  }

  setErrno(i: number, errno: string | null): void {
    if (errno === null) this.errnos.delete(i);
    else this.errnos.set(i, errno);
  }

  /** Sets row i's state (null or a letter), patch state and flags bits in one go. */
  setFacts(i: number, state: string | null, patchState: -1 | 0 | 1 | null, running: boolean, statusKthread: boolean | null, endMarker: boolean): void {
    this.state[i] = state === null ? 0 : state.charCodeAt(0);
    this.patchStateCode[i] = patchState === null ? PATCH_STATE_NULL : patchState;
    this.bits[i] = (running ? BIT.RUNNING : 0) | (endMarker ? BIT.END_MARKER : 0) | (statusKthread !== null ? BIT.KTHREAD_KNOWN : 0) | (statusKthread === true ? BIT.KTHREAD : 0);
  }

  private setOptional(col: "ppidCol" | "cpuCol" | "startTimeCol" | "flagsCol", i: number, v: number | null): void {
    let c = this[col];
    if (c === null) {
      if (v === null) return;
      c = this[col] = new Float64Array(this.capacity).fill(Number.NaN);
    }
    c[i] = v === null ? Number.NaN : v;
  }

  setComm(i: number, comm: Uint8Array | null): void {
    if (this.commLen === null) {
      if (comm === null) return;
      this.commOff = new Uint32Array(this.capacity);
      this.commLen = new Int32Array(this.capacity).fill(-1);
    }
    if (comm === null) {
      this.commLen[i] = -1;
      return;
    }
    if (this.commUsed + comm.length > this.commBlob.length) {
      const b = new Uint8Array(Math.max(1024, (this.commUsed + comm.length) * 2));
      b.set(this.commBlob.subarray(0, this.commUsed));
      this.commBlob = b;
    }
    this.commBlob.set(comm, this.commUsed);
    this.commOff![i] = this.commUsed;
    this.commLen[i] = comm.length;
    this.commUsed += comm.length;
  }

  private grow(capacity: number): void {
    this.pid = grown(this.pid, capacity);
    this.tid = grown(this.tid, capacity);
    this.frameStart = grown(this.frameStart, capacity);
    this.frameCount = grown(this.frameCount, capacity);
    this.line = grown(this.line, capacity);
    this.state = grown(this.state, capacity);
    this.stackStatusCode = grown(this.stackStatusCode, capacity);
    this.patchStateCode = grown(this.patchStateCode, capacity);
    this.bits = grown(this.bits, capacity);
    if (this.ppidCol !== null) this.ppidCol = grown(this.ppidCol, capacity);
    if (this.cpuCol !== null) this.cpuCol = grown(this.cpuCol, capacity);
    if (this.startTimeCol !== null) this.startTimeCol = grown(this.startTimeCol, capacity);
    if (this.flagsCol !== null) this.flagsCol = grown(this.flagsCol, capacity);
    if (this.commOff !== null) this.commOff = grown(this.commOff, capacity);
    if (this.commLen !== null) this.commLen = grown(this.commLen, capacity);
  }

  // Single fields, for code that reads one or two of them per task.
  pidOf(i: number): number | null {
    const v = this.pid[i];
    return v === v ? v : null;
  }
  tidOf(i: number): number | null {
    const v = this.tid[i];
    return v === v ? v : null;
  }
  stateOf(i: number): string | null {
    const c = this.state[i];
    return c === 0 ? null : STATE_LETTERS[c] ?? String.fromCharCode(c);
  }
  stackStatusOf(i: number): StackStatus {
    return STACK_STATUSES[this.stackStatusCode[i]];
  }
  patchStateOf(i: number): -1 | 0 | 1 | null {
    const c = this.patchStateCode[i];
    return c === PATCH_STATE_NULL ? null : (c as -1 | 0 | 1);
  }
  runningOf(i: number): boolean {
    return (this.bits[i] & BIT.RUNNING) !== 0;
  }
  endMarkerOf(i: number): boolean {
    return (this.bits[i] & BIT.END_MARKER) !== 0;
  }
  statusKthreadOf(i: number): boolean | null {
    const b = this.bits[i];
    return (b & BIT.KTHREAD_KNOWN) === 0 ? null : (b & BIT.KTHREAD) !== 0;
  }
  flagsOf(i: number): number | null {
    return optional(this.flagsCol, i);
  }
  ppidOf(i: number): number | null {
    return optional(this.ppidCol, i);
  }
  cpuOf(i: number): number | null {
    return optional(this.cpuCol, i);
  }
  startTimeOf(i: number): number | null {
    return optional(this.startTimeCol, i);
  }
  /** The PF flags column (NaN: none), or null when no task has flags: for loops that read it per task. */
  flagsColumn(): Float64Array | null {
    return this.flagsCol;
  }
  /** How many tasks have an errno. */
  errnoCount(): number {
    return this.errnos.size;
  }
  errnoOf(i: number): string | null {
    return this.errnos.size === 0 ? null : (this.errnos.get(i) ?? null);
  }
  /** The comm bytes (a view: read-only), or null. */
  commOf(i: number): Uint8Array | null {
    if (this.commLen === null) return null;
    const n = this.commLen[i];
    return n < 0 ? null : this.commBlob.subarray(this.commOff![i], this.commOff![i] + n);
  }
  override get(i: number): Readonly<Task> {
    if (i < 0 || i >= this.length || !Number.isInteger(i)) throw new RangeError(`task ${i} of ${this.length}`);
    return {
      pid: this.pidOf(i),
      tid: this.tidOf(i),
      comm: this.commOf(i),
      state: this.stateOf(i),
      flags: this.flagsOf(i),
      ppid: this.ppidOf(i),
      startTime: this.startTimeOf(i),
      cpu: this.cpuOf(i),
      patchState: this.patchStateOf(i),
      stackStatus: this.stackStatusOf(i),
      errno: this.errnoOf(i),
      running: this.runningOf(i),
      statusKthread: this.statusKthreadOf(i),
      endMarker: this.endMarkerOf(i),
      frameStart: this.frameStart[i],
      frameCount: this.frameCount[i],
      line: this.line[i],
    };
  }

  /** Copies of every row (mutable: changing one changes nothing here). */
  override toArray(): Task[] {
    const out: Task[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = { ...this.get(i) };
    return out;
  }
}

type Column = Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array | Int8Array;

/** A copy of column `a` with room for `capacity` rows (the columns' one way to grow). */
export function grown<T extends Column>(a: T, capacity: number): T {
  const b = new (a.constructor as new (n: number) => T)(capacity);
  b.set(a);
  return b;
}

/** One-letter strings by char code (no string made per task read). */
const STATE_LETTERS: string[] = [];
for (let c = 32; c < 127; c++) STATE_LETTERS[c] = String.fromCharCode(c);

function optional(col: Float64Array | null, i: number): number | null {
  if (col === null) return null;
  const v = col[i];
  return v === v ? v : null;
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

/** Interned values (Map identity: strings by value, objects by reference). Id order is first-seen order. */
export class Interner<T> {
  readonly values: T[] = [];
  private readonly ids = new Map<T, number>();

  intern(v: T): number {
    let id = this.ids.get(v);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(v);
      this.ids.set(v, id);
    }
    return id;
  }

  get(id: number): T {
    return this.values[id];
  }

  find(v: T): number | undefined {
    return this.ids.get(v);
  }
}

/** Interned strings: symbol names, module names, build ids. */
export class StringTable extends Interner<string> {}

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
   * Appends `n` rows at once, each as push() leaves it (ids -1, everything else 0), for a decoder
   * that then writes the columns itself; returns the first new row. Read the column fields after
   * the call: growing replaces them.
   */
  appendRows(n: number): number {
    const i = this.length;
    const end = i + n;
    if (end > this.symbol.length) this.grow(Math.max(end, this.length < 1 << 20 ? this.length * 2 || 1024 : Math.ceil(this.length * 1.5)));
    this.length = end;
    this.symbol.fill(-1, i, end);
    this.object.fill(-1, i, end);
    this.buildId.fill(-1, i, end);
    this.offset.fill(0, i, end);
    this.size.fill(0, i, end);
    this.addrLo.fill(0, i, end);
    this.addrHi.fill(0, i, end);
    this.flags.fill(0, i, end);
    this.line.fill(0, i, end);
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
    this.symbol = grown(this.symbol, capacity);
    this.object = grown(this.object, capacity);
    this.buildId = grown(this.buildId, capacity);
    this.offset = grown(this.offset, capacity);
    this.size = grown(this.size, capacity);
    this.addrLo = grown(this.addrLo, capacity);
    this.addrHi = grown(this.addrHi, capacity);
    this.flags = grown(this.flags, capacity);
    this.line = grown(this.line, capacity);
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
  tasks: TaskTable;
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
  /**
   * The functions ftrace can hook (available_filter_functions) when the capture read it: a patched
   * function not in it cannot be live-patched (SPEC §3 `unpatchable`). Absent/null: not recorded.
   */
  traceable?: NameSet | null;
}

/** A set of names (a Set, or a snapshot's bitset over its symbol table rows). */
export interface NameSet {
  has(name: string): boolean;
}

/**
 * The source line of frame row `i` as it appears in task `t`'s block. Rows of a shared span
 * carry FrameFlag.SHARED; ingest shares a span only where each task's frames sit on consecutive
 * lines starting at the task's own first line (grep -H runs, snapshots with implicit lines), so
 * the line follows from the task. Other rows carry their own line.
 */
export function frameLine(cap: Capture, t: Pick<Task, "line" | "frameStart">, i: number): number {
  if (!cap.sharedRows || (cap.frames.flags[i] & FrameFlag.SHARED) === 0) return cap.frames.line[i];
  return t.line + (i - t.frameStart);
}

/** Frames over all tasks as the input shows them (rows shared by several tasks count for each). */
export function framesInTasks(cap: Capture): number {
  let n = 0;
  const count = cap.tasks.frameCount;
  for (let i = 0; i < cap.tasks.length; i++) n += count[i];
  return n;
}

/** Formats a u64 as the JSON contract's hex string. */
export function hex64(v: bigint): string {
  return `0x${v.toString(16).padStart(16, "0")}`;
}

export function u64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
