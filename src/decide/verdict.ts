/** The decision's output: per-task outcomes and the host verdict (SPEC §3, §7). */
import type { Reason, TriState } from "../model.js";
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

export const TASK_STATUSES: readonly TaskStatus[] = ["clean", "done", "blocked", "undecided", "idle", "excluded"];
export const TASK_KINDS: readonly TaskKind[] = ["user", "kthread", "user-worker", "idle"];
const STATUS_CODE: Record<TaskStatus, number> = { clean: 0, done: 1, blocked: 2, undecided: 3, idle: 4, excluded: 5 };
const KIND_CODE: Record<TaskKind, number> = { user: 0, kthread: 1, "user-worker": 2, idle: 3 };

/**
 * Per-task outcomes as columns, in the order decide met the tasks (task index order, vanished
 * tasks left out). A million outcome objects cost a million allocations and a pointer chase on
 * every pass over them (counts, the kernel check, each report); the columns cost three typed
 * arrays and one array of match lists, which tasks of one stack share (read-only).
 * get(), iteration and the array-like helpers make TaskOutcome objects on demand, for the
 * places that look at a few outcomes or need readable code more than speed.
 */
export class Outcomes implements Iterable<TaskOutcome> {
  length = 0;
  /** Task index of each outcome. */
  task: Uint32Array;
  /** Index into TASK_STATUSES. */
  statusCode: Uint8Array;
  /** Index into TASK_KINDS. */
  kindCode: Uint8Array;
  /** Every rule that matched, in order; lists may be shared between outcomes: never mutate one. */
  matchList: RuleMatch[][];

  constructor(capacity = 16) {
    this.task = new Uint32Array(capacity);
    this.statusCode = new Uint8Array(capacity);
    this.kindCode = new Uint8Array(capacity);
    this.matchList = new Array(capacity);
  }

  static from(list: Iterable<TaskOutcome>): Outcomes {
    const arr = [...list];
    const out = new Outcomes(Math.max(arr.length, 1));
    for (const o of arr) out.push(o.task, o.kind, o.status, o.matches);
    return out;
  }

  push(task: number, kind: TaskKind, status: TaskStatus, matches: RuleMatch[]): void {
    this.pushCodes(task, KIND_CODE[kind], STATUS_CODE[status], matches);
  }

  /** push() with the kind and status as TASK_KINDS / TASK_STATUSES indices. */
  pushCodes(task: number, kindCode: number, statusCode: number, matches: RuleMatch[]): void {
    if (this.length === this.task.length) this.grow(this.length * 2);
    const i = this.length++;
    this.task[i] = task;
    this.kindCode[i] = kindCode;
    this.statusCode[i] = statusCode;
    this.matchList[i] = matches;
  }

  private grow(capacity: number): void {
    const t = new Uint32Array(capacity);
    t.set(this.task);
    this.task = t;
    const s = new Uint8Array(capacity);
    s.set(this.statusCode);
    this.statusCode = s;
    const k = new Uint8Array(capacity);
    k.set(this.kindCode);
    this.kindCode = k;
    this.matchList.length = capacity;
  }

  status(i: number): TaskStatus {
    return TASK_STATUSES[this.statusCode[i]];
  }

  kind(i: number): TaskKind {
    return TASK_KINDS[this.kindCode[i]];
  }

  get(i: number): TaskOutcome {
    if (i < 0 || i >= this.length) throw new RangeError(`outcome ${i} of ${this.length}`);
    return { task: this.task[i], kind: this.kind(i), status: this.status(i), matches: this.matchList[i] };
  }

  *[Symbol.iterator](): Iterator<TaskOutcome> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  toArray(): TaskOutcome[] {
    return [...this];
  }

  /** The outcomes with status `s`, as objects (only those are made). */
  withStatus(s: TaskStatus): TaskOutcome[] {
    const code = STATUS_CODE[s];
    const out: TaskOutcome[] = [];
    for (let i = 0; i < this.length; i++) if (this.statusCode[i] === code) out.push(this.get(i));
    return out;
  }

  /** Per task index (0 … taskCount−1): the kind of its outcome, undefined for a task without one. */
  kindsByTask(taskCount: number): (TaskKind | undefined)[] {
    const out: (TaskKind | undefined)[] = new Array(taskCount).fill(undefined);
    for (let i = 0; i < this.length; i++) if (out[this.task[i]] === undefined) out[this.task[i]] = TASK_KINDS[this.kindCode[i]];
    return out;
  }

  filter(pred: (o: TaskOutcome) => boolean): TaskOutcome[] {
    return this.toArray().filter(pred);
  }

  find(pred: (o: TaskOutcome) => boolean): TaskOutcome | undefined {
    for (const o of this) if (pred(o)) return o;
    return undefined;
  }

  some(pred: (o: TaskOutcome) => boolean): boolean {
    return this.find(pred) !== undefined;
  }

  map<T>(fn: (o: TaskOutcome, i: number) => T): T[] {
    return this.toArray().map(fn);
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
  blockers: Blocker[];
  /** Blocking task count per function. */
  functionBlocking: number[];
  warnings: Reason[];
  counts: { tasks: number; clean: number; done: number; blocked: number; undecided: number; idle: number; excluded: number };
}
