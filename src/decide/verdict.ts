/** The decision's output: per-task outcomes and the host verdict (SPEC §3, §7). */
import { grown, Interner, type Reason, Rows, type TriState } from "../model.js";
import type { RangeRole } from "../patch/ranges.js";
import type { TaskKind } from "./kinds.js";

export type HostVerdict = "safe" | "blocked" | "undecided";
export type Model = "livepatch" | "kpatch" | "quiesce";
export type Direction = "apply" | "revert";
export type TaskStatus = "clean" | "done" | "blocked" | "undecided" | "idle" | "excluded";

export type UndecidedCode =
  | "running"
  | "unreliable"
  | "truncated"
  | "unreadable"
  | "possibly-live"
  | "hidden"
  | "cold"
  | "unresolved"
  | "ambiguous"
  | "unparsed-line"
  | "empty-stack"
  | "no-symbol-table"
  | "incomplete-capture"
  | "no-reliable-stacktrace"
  | "freeze-would-fail";

export type RemedyCode = "never-leaves" | "signal" | "wait" | "park-offline-cpu" | "reverse" | "force" | "unpatchable";

/** One rule that matched a task, in SPEC §3 order. */
export interface RuleMatch {
  /** `done`, `blocked`, `clean` or an UndecidedCode. */
  code: string;
  message: string;
  /** Global frame row, when the rule is about one frame. */
  frame: number | null;
  /** Index into RangeTable.functions, when about a patched function. */
  func: number | null;
  kernelSees: boolean;
}

export interface Remedy {
  code: RemedyCode;
  message: string;
  callees?: string[];
}

export interface Blocker {
  task: number;
  func: number;
  frame: number;
  /** Index of the frame within the task's stack (0 = innermost). */
  frameIndex: number;
  kernelSees: boolean;
  role: RangeRole;
  remedy: Remedy;
}

export interface TaskOutcome {
  task: number;
  kind: TaskKind;
  status: TaskStatus;
  /** Every rule that matched, in order; the first decides. */
  matches: RuleMatch[];
}

const ROLES: readonly RangeRole[] = ["original", "previous-replacement", "own-replacement", "nop", "conservative-extra"];
const ROLE_CODE: Record<RangeRole, number> = { original: 0, "previous-replacement": 1, "own-replacement": 2, nop: 3, "conservative-extra": 4 };

/** A range role as Blockers.roleCode stores it. */
export function roleCode(role: RangeRole): number {
  return ROLE_CODE[role];
}

/**
 * Blockers as columns (a 1M-task host can have a few hundred thousand: as objects they were most
 * of what the young-generation GC copied). Remedy objects are shared between the blockers of one
 * stack: read-only, kept once in `remedies` and referred to by index (remedyRef), so that every
 * column is a typed array a wasm loop can fill. get(), iteration and the array-like helpers make
 * Blocker objects on demand.
 */

export class Blockers extends Rows<Blocker> {
  length = 0;
  task: Uint32Array;
  func: Uint32Array;
  frame: Uint32Array;
  frameIndex: Uint32Array;
  /** 1 when the kernel's walk sees the frame. */
  kernelSees: Uint8Array;
  roleCode: Uint8Array;
  /** Per blocker: its remedy, as an index into the distinct remedies (remedyId()). */
  declare remedyRef: Uint32Array;
  /** The distinct remedies, interned by identity. */
  declare private readonly remedyTable: Interner<Remedy>;

  /** `remedies`: the table to start with (remedyRef values index it). */
  constructor(capacity = 16, remedies: Remedy[] = []) {
    super();
    capacity = Math.max(capacity, 1);
    this.task = new Uint32Array(capacity);
    this.func = new Uint32Array(capacity);
    this.frame = new Uint32Array(capacity);
    this.frameIndex = new Uint32Array(capacity);
    this.kernelSees = new Uint8Array(capacity);
    this.roleCode = new Uint8Array(capacity);
    // Not enumerable: which blockers share a remedy object is not part of the blockers (two
    // deciders that give every blocker equal remedies give deep-equal Blockers; iterating compares
    // the remedies), as Outcomes' match lists.
    Object.defineProperties(this, {
      remedyRef: { value: new Uint32Array(capacity), writable: true },
      remedyTable: { value: new Interner<Remedy>() },
    });
    for (const r of remedies) this.remedyTable.intern(r);
  }

  /** The remedyRef of remedy `r` (the same object, by identity, gets the same index). */
  remedyId(r: Remedy): number {
    return this.remedyTable.intern(r);
  }

  /** Blocker i's remedy. */
  remedy(i: number): Remedy {
    return this.remedyTable.get(this.remedyRef[i]);
  }

  static from(list: Iterable<Blocker>): Blockers {
    const arr = [...list];
    const out = new Blockers(arr.length);
    for (const b of arr) out.push(b);
    return out;
  }

  push(b: Blocker): void {
    this.pushFields(b.task, b.func, b.frame, b.frameIndex, b.kernelSees, ROLE_CODE[b.role], b.remedy);
  }

  pushFields(task: number, func: number, frame: number, frameIndex: number, kernelSees: boolean, roleCode: number, remedy: Remedy): void {
    if (this.length === this.task.length) this.grow(this.length * 2);
    const i = this.length++;
    this.task[i] = task;
    this.func[i] = func;
    this.frame[i] = frame;
    this.frameIndex[i] = frameIndex;
    this.kernelSees[i] = kernelSees ? 1 : 0;
    this.roleCode[i] = roleCode;
    this.remedyRef[i] = this.remedyId(remedy);
  }

  private grow(capacity: number): void {
    this.task = grown(this.task, capacity);
    this.func = grown(this.func, capacity);
    this.frame = grown(this.frame, capacity);
    this.frameIndex = grown(this.frameIndex, capacity);
    this.kernelSees = grown(this.kernelSees, capacity);
    this.roleCode = grown(this.roleCode, capacity);
    this.remedyRef = grown(this.remedyRef, capacity);
  }

  role(i: number): RangeRole {
    return ROLES[this.roleCode[i]];
  }

  override get(i: number): Blocker {
    if (i < 0 || i >= this.length || !Number.isInteger(i)) throw new RangeError(`blocker ${i} of ${this.length}`);
    return { task: this.task[i], func: this.func[i], frame: this.frame[i], frameIndex: this.frameIndex[i], kernelSees: this.kernelSees[i] === 1, role: this.role(i), remedy: this.remedyTable.get(this.remedyRef[i]) };
  }

  /** get(i), or undefined past the end (as an array's at()). */
  at(i: number): Blocker | undefined {
    return i >= 0 && i < this.length ? this.get(i) : undefined;
  }
}

export const TASK_STATUSES: readonly TaskStatus[] = ["clean", "done", "blocked", "undecided", "idle", "excluded"];
export const TASK_KINDS: readonly TaskKind[] = ["user", "kthread", "user-worker", "idle"];
const STATUS_CODE: Record<TaskStatus, number> = { clean: 0, done: 1, blocked: 2, undecided: 3, idle: 4, excluded: 5 };
const NO_KIND_CODE = 255;
const KIND_CODE: Record<TaskKind, number> = { user: 0, kthread: 1, "user-worker": 2, idle: 3 };

/**
 * Per-task outcomes as columns, in the order decide met the tasks (task index order, vanished
 * tasks left out). A million outcome objects cost a million allocations and a pointer chase on
 * every pass over them (counts, the kernel check, each report); the columns cost three typed
 * arrays and one array of match lists, which tasks of one stack share (read-only).
 * get(), iteration and the array-like helpers make TaskOutcome objects on demand, for the
 * places that look at a few outcomes or need readable code more than speed.
 */
const NO_MATCHES: RuleMatch[] = [];

export class Outcomes extends Rows<TaskOutcome> {
  length = 0;
  /** Task index of each outcome. */
  task: Uint32Array;
  /** Index into TASK_STATUSES. */
  statusCode: Uint8Array;
  /** Index into TASK_KINDS. */
  kindCode: Uint8Array;
  /**
   * Per outcome: every rule that matched, in order, as an index into `lists` (listRef()). Lists
   * are shared between outcomes: never mutate one. An index column, not an array of lists: at
   * 100k tasks that array was 800 KB in V8's large-object space, which counts towards the old
   * generation's first limit and brought a full mark-compact into a CLI check.
   */
  declare matchRef: Uint32Array;
  /** The distinct match lists, by matchRef (0: no matches), interned by identity. */
  declare private readonly lists: Interner<RuleMatch[]>;
  /** Tasks strictly ascending so far (push() keeps it; a writer of the columns keeps the order). */
  ordered = true;

  constructor(capacity = 16) {
    super();
    this.task = new Uint32Array(capacity);
    this.statusCode = new Uint8Array(capacity);
    this.kindCode = new Uint8Array(capacity);
    // Not enumerable: which outcomes share a list is not part of the outcomes (two deciders that
    // give every task equal matches give deep-equal Outcomes; iterating compares the matches).
    Object.defineProperties(this, {
      matchRef: { value: new Uint32Array(capacity), writable: true },
      lists: { value: new Interner<RuleMatch[]>() },
    });
    this.lists.intern(NO_MATCHES);
  }

  /** The matches of outcome i. */
  matches(i: number): RuleMatch[] {
    return this.lists.get(this.matchRef[i]);
  }

  /** The matchRef of a list (the same list, by identity, gets the same index). */
  listRef(matches: RuleMatch[]): number {
    return this.lists.intern(matches);
  }

  static from(list: Iterable<TaskOutcome>): Outcomes {
    const arr = [...list];
    const out = new Outcomes(Math.max(arr.length, 1));
    for (const o of arr) out.push(o.task, o.kind, o.status, o.matches);
    return out;
  }

  push(task: number, kind: TaskKind, status: TaskStatus, matches: RuleMatch[]): void {
    this.pushCodes(task, KIND_CODE[kind], STATUS_CODE[status], this.listRef(matches));
  }

  /** push() with the kind and status as TASK_KINDS / TASK_STATUSES indices and the matches as listRef(). */
  pushCodes(task: number, kindCode: number, statusCode: number, matchRef: number): void {
    if (this.length === this.task.length) this.grow(this.length * 2);
    const i = this.length++;
    if (i > 0 && task <= this.task[i - 1]) this.ordered = false;
    this.task[i] = task;
    this.kindCode[i] = kindCode;
    this.statusCode[i] = statusCode;
    this.matchRef[i] = matchRef;
  }

  /** Grows every column to `capacity` (decide's class loop writes the columns directly). */
  grow(capacity: number): void {
    this.task = grown(this.task, capacity);
    this.statusCode = grown(this.statusCode, capacity);
    this.kindCode = grown(this.kindCode, capacity);
    this.matchRef = grown(this.matchRef, capacity);
  }

  /** Outcomes per status code (TASK_STATUSES index). */
  countByStatus(): Float64Array {
    const out = new Float64Array(TASK_STATUSES.length);
    for (let i = 0; i < this.length; i++) out[this.statusCode[i]]++;
    return out;
  }

    status(i: number): TaskStatus {
    return TASK_STATUSES[this.statusCode[i]];
  }

  kind(i: number): TaskKind {
    return TASK_KINDS[this.kindCode[i]];
  }

  override get(i: number): TaskOutcome {
    if (i < 0 || i >= this.length) throw new RangeError(`outcome ${i} of ${this.length}`);
    return { task: this.task[i], kind: this.kind(i), status: this.status(i), matches: this.matches(i) };
  }

  /** The outcomes with status `s`, as objects (only those are made). */
  withStatus(s: TaskStatus): TaskOutcome[] {
    const code = STATUS_CODE[s];
    const out: TaskOutcome[] = [];
    for (let i = 0; i < this.length; i++) if (this.statusCode[i] === code) out.push(this.get(i));
    return out;
  }

  /**
   * Per task index (0 … taskCount−1): the kind of its (first) outcome as a TASK_KINDS index, 255
   * for a task without one. A typed array: a million-element array of strings is what a report
   * on a big capture does not need.
   */
  kindCodesByTask(taskCount: number): Uint8Array {
    const out = new Uint8Array(taskCount).fill(NO_KIND_CODE);
    for (let i = this.length - 1; i >= 0; i--) out[this.task[i]] = this.kindCode[i];
    return out;
  }

  /**
   * The kind (TASK_KINDS index) of task `task`'s first outcome, 255 for none: a binary search
   * while the outcomes are in ascending task order (decide makes them so), else a scan.
   */
  kindCodeOfTask(task: number): number {
    if (!this.ordered) {
      for (let i = 0; i < this.length; i++) if (this.task[i] === task) return this.kindCode[i];
      return NO_KIND_CODE;
    }
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.task[mid] < task) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.length && this.task[lo] === task ? this.kindCode[lo] : NO_KIND_CODE;
  }

  /** The task indices of the outcomes with status `s`, in outcome order (no object per outcome). */
  tasksWithStatus(s: TaskStatus): number[] {
    const code = STATUS_CODE[s];
    const out: number[] = [];
    for (let i = 0; i < this.length; i++) if (this.statusCode[i] === code) out.push(this.task[i]);
    return out;
  }
}

export interface Verdict {
  verdict: HostVerdict;
  reasons: Reason[];
  kernelCheck: { result: "pass" | "fail" | "unknown"; first: { task: number; func: number | null } | null };
  model: Model;
  direction: Direction;
  complete: TriState;
  completeness: Reason[];
  outcomes: Outcomes;
  blockers: Blockers;
  /** Blocking task count per function. */
  functionBlocking: number[];
  warnings: Reason[];
  counts: { tasks: number; clean: number; done: number; blocked: number; undecided: number; idle: number; excluded: number };
}
