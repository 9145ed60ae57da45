/**
 * Prediction from several captures of one host (issue "prediction"): captures are samples, not a
 * trace. This is the `prediction` object of --json (schema 1 adds it for series only).
 */

export interface PredictedTask {
  pid: number | null;
  tid: number | null;
  comm: string | null;
  startTime: number | null;
  /** Status per capture, in capture order; null where the task was not present. */
  statuses: ("clean" | "done" | "blocked" | "undecided" | "idle" | "excluded" | null)[];
  /** Captures in which the task was seen / clean (or done) / blocked / undecided. */
  seen: number;
  clean: number;
  blocked: number;
  undecided: number;
  /** Never clean in any capture it appears in. */
  neverClean: boolean;
  /** Blocked in a function it can never leave (SPEC §5) in at least one capture. */
  neverLeaves: boolean;
  /** 1-based index of the first capture where it was clean (livepatch: it can switch there). */
  firstCleanAt: number | null;
}

export interface PredictedFunction {
  object: string;
  name: string | null;
  sympos: number | null;
  /** Captures in which some task was blocked in it. */
  blockedIn: number;
  /** Per capture, the tids blocked in it. */
  tids: (number | null)[][];
}

export interface Prediction {
  captures: number;
  /** Capture times (ISO 8601), as recorded; null where unknown. */
  times: (string | null)[];
  /** tids blocked or undecided in every capture they appear in. */
  neverClean: (number | null)[];
  /** 1-based index of the first capture by which every task had been clean at least once, or null. */
  allCleanAt: number | null;
  /** Share of captures in which every task was clean at once. */
  allCleanShare: number;
  /** Chance that `kpatch load`'s 5 tries 2 s apart succeed (captures as independent samples). */
  kpatchLoadChance: number;
  /** Estimated livepatch completion time in seconds from the first capture, with its uncertainty. */
  completion: { estimator: string; seconds: number | null; low: number | null; high: number | null } | null;
  /** Tasks ordered by how much they hold the patch back. */
  tasks: PredictedTask[];
  /** Functions ordered by how often they block. */
  functions: PredictedFunction[];
  assumptions: string[];
  warnings: string[];
}
