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

export interface Verdict {
  verdict: HostVerdict;
  reasons: Reason[];
  kernelCheck: { result: "pass" | "fail" | "unknown"; first: { task: number; func: number | null } | null };
  model: Model;
  direction: Direction;
  complete: TriState;
  completeness: Reason[];
  outcomes: TaskOutcome[];
  blockers: Blocker[];
  /** Blocking task count per function. */
  functionBlocking: number[];
  warnings: Reason[];
  counts: { tasks: number; clean: number; done: number; blocked: number; undecided: number; idle: number; excluded: number };
}
