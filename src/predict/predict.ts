/**
 * Beyond one instant: from several captures of one host, predict whether a transition will
 * complete (livepatch: each task switches at some capture where its stack is clean) and how
 * likely an all-at-once check passes (kpatch: every task clean at the same instant).
 *
 * Captures are samples, not a trace. Tasks are matched by (tid, start time): tids are reused.
 */
import type { CheckResult } from "../check.js";
import { PatchsafeError } from "../errors.js";
import type { Capture } from "../model.js";
import { taskOrder } from "../decide/livepatch.js";
import { isKpatchAddedTask } from "../decide/models.js";
import { TASK_STATUSES } from "../decide/verdict.js";
import { escapeComm } from "../report/escape.js";
import type { PredictedFunction, PredictedTask, Prediction } from "./types.js";

/** `kpatch load` tries this many times, 2 s apart (dynup/kpatch kpatch/kpatch `load_module`). */
export const KPATCH_LOAD_TRIES = 5;

export const COMPLETION_ESTIMATOR =
  "first passage: the time of the first capture by which every task had been seen clean (or had exited), bounded below by the capture before it";

const ASSUMPTIONS = [
  "captures are samples, not a trace: a task may have been clean (or blocked) between them",
  "a task that exits during the series counts as switched",
  "tasks are matched across captures by tid and start time",
  "capture times are the real times recorded with each capture (a walk of a large host takes seconds)",
  `kpatch: each capture is taken as an independent sample of one instant; kpatch load tries ${KPATCH_LOAD_TRIES} times, 2 s apart`,
];

type Status = PredictedTask["statuses"][number];

/**
 * `series`: one CheckResult per capture, in order, all for the same patch and model.
 * `kpatchSeries`: the same captures checked with the kpatch model (for the load chance); when
 * omitted, `series` is used.
 */
/**
 * A series is read in the order given (the verdict is the last capture's): capture times that
 * say otherwise would make the verdict an older capture's and the prediction run backwards.
 */
export function assertSeriesOrder(series: Capture[]): void {
  for (let i = 1; i < series.length; i++) {
    const a = Date.parse(series[i - 1].host.capturedAt ?? "");
    const b = Date.parse(series[i].host.capturedAt ?? "");
    if (Number.isFinite(a) && Number.isFinite(b) && b < a) {
      throw new PatchsafeError(
        "E_USAGE",
        `the inputs are not in capture order: ${series[i].source.name} was captured at ${series[i].host.capturedAt}, before ${series[i - 1].source.name} (${series[i - 1].host.capturedAt}); give a series oldest first`,
      );
    }
  }
}

/**
 * A series' verdict is its last capture's. When that capture is partial, a task an earlier capture
 * showed blocked or undecided and the last one does not show may still be there (a hung task is
 * reported ten times at most; an excerpt leaves tasks out): the verdict is then at best
 * undecided, --partial-ok or not. Changes the last result in place.
 */
export function boundSeriesVerdict(series: CheckResult[]): void {
  const last = series[series.length - 1];
  if (series.length < 2 || last.capture.complete === true) return;
  const present = new Set<number>();
  const lastTasks = last.capture.tasks;
  for (let i = 0; i < lastTasks.length; i++) {
    const tid = lastTasks.tidOf(i);
    if (tid !== null) present.add(tid);
  }
  const missing = new Set<number>();
  // Blocked or undecided tasks of earlier captures that name no tid (a bare `cat /proc/PID/stack`
  // paste, an oops trace): nothing can show the last capture holds them, so each counts as
  // missing (skipping them let a series read safe while an earlier capture was blocked).
  let anonymous = 0;
  for (const r of series.slice(0, -1)) {
    const out = r.verdict.outcomes;
    for (let i = 0; i < out.length; i++) {
      const status = TASK_STATUSES[out.statusCode[i]];
      if (status !== "blocked" && status !== "undecided") continue;
      if (isKpatchAddedTask(r.notes.get(out.task[i]))) continue;
      const tid = r.capture.tasks.tidOf(out.task[i]);
      if (tid === null) anonymous++;
      else if (!present.has(tid)) missing.add(tid);
    }
  }
  if (missing.size === 0 && anonymous === 0) return;
  const v = last.verdict;
  const tids = [...missing].sort((a, b) => a - b);
  const which = [tids.length > 0 ? `tid ${tids.slice(0, 5).join(", ")}${tids.length > 5 ? ", …" : ""}` : "", anonymous > 0 ? `${anonymous} without a tid, which no later capture can be matched against` : ""].filter((x) => x !== "").join("; ");
  v.reasons.push({ code: "incomplete-capture", message: `${tids.length + anonymous} task(s) (${which}) were blocked or undecided in an earlier capture of the series, and the last capture, which is partial, does not show them: they may still be there` });
  if (v.verdict === "safe") v.verdict = "undecided";
}

export function predict(series: CheckResult[], times: (string | null)[], kpatchSeries?: CheckResult[]): Prediction {
  const n = series.length;
  const warnings: string[] = [];
  const tasks = new Map<string, PredictedTask>();
  const key = (tid: number | null, start: number | null, pid: number | null, i: number): string => (tid === null ? `anon:${pid}:${i}` : `${tid}:${start ?? "?"}`);
  const lastSeen = new Map<string, number>();

  series.forEach((r, c) => {
    const cap = r.capture;
    const outcomes = r.verdict.outcomes.toArray().sort((a, b) => taskOrder(cap, a.task, b.task));
    for (const o of outcomes) {
      const t = cap.tasks.get(o.task);
      if (isKpatchAddedTask(r.notes.get(o.task))) continue; // kpatch's stopper and loader: not host tasks
      const k = key(t.tid, t.startTime, t.pid, o.task);
      let p = tasks.get(k);
      if (p === undefined) {
        p = {
          pid: t.pid,
          tid: t.tid,
          comm: escapeComm(t.comm),
          startTime: t.startTime,
          statuses: new Array<Status>(n).fill(null),
          seen: 0,
          clean: 0,
          blocked: 0,
          undecided: 0,
          neverClean: false,
          neverLeaves: false,
          firstCleanAt: null,
        };
        tasks.set(k, p);
      }
      p.statuses[c] = o.status;
      if (o.status === "excluded") continue;
      p.seen++;
      lastSeen.set(k, c);
      if (o.status === "clean" || o.status === "done" || o.status === "idle") {
        p.clean++;
        if (p.firstCleanAt === null) p.firstCleanAt = c + 1;
      } else if (o.status === "blocked") p.blocked++;
      else p.undecided++;
      if (r.verdict.blockers.some((b) => b.task === o.task && b.remedy.code === "never-leaves")) p.neverLeaves = true;
    }
  });

  // When did each task switch? At its first clean capture, or when it exited (first absence).
  let allCleanAt: number | null = 0;
  for (const [k, p] of tasks) {
    p.neverClean = p.seen > 0 && p.clean === 0;
    if (p.seen === 0) continue;
    let switchedAt = p.firstCleanAt;
    const last = lastSeen.get(k)!;
    // Gone by the next capture, when that capture holds every task: absence from a partial one
    // (a hung-task report, an excerpt) says nothing.
    if (switchedAt === null && last < n - 1 && series[last + 1].capture.complete === true) switchedAt = last + 2;
    if (switchedAt === null) allCleanAt = null;
    else if (allCleanAt !== null) allCleanAt = Math.max(allCleanAt, switchedAt);
  }
  if (allCleanAt === 0) allCleanAt = n > 0 ? 1 : null;

  const everyCleanAtOnce = (r: CheckResult): boolean => r.verdict.counts.blocked === 0 && r.verdict.counts.undecided === 0;
  const allCleanShare = n === 0 ? 0 : series.filter(everyCleanAtOnce).length / n;
  const kSeries = kpatchSeries ?? series;
  const kShare = kSeries.length === 0 ? 0 : kSeries.filter(everyCleanAtOnce).length / kSeries.length;
  const kpatchLoadChance = 1 - (1 - kShare) ** KPATCH_LOAD_TRIES;

  // Completion estimate from the capture times.
  const ms = times.map((t) => (t === null ? Number.NaN : Date.parse(t)));
  const known = ms.every((x) => Number.isFinite(x));
  let completion: Prediction["completion"] = null;
  if (known && n > 0) {
    const at = (i: number) => (ms[i] - ms[0]) / 1000;
    if (allCleanAt !== null) {
      completion = { estimator: COMPLETION_ESTIMATOR, seconds: at(allCleanAt - 1), low: allCleanAt >= 2 ? at(allCleanAt - 2) : 0, high: at(allCleanAt - 1) };
    } else {
      const stuck = [...tasks.values()].filter((p) => p.firstCleanAt === null && p.seen > 0 && lastSeen.size > 0);
      const never = stuck.some((p) => p.neverLeaves);
      completion = {
        estimator: `${COMPLETION_ESTIMATOR}; not reached in the window: ${never ? "a task sits where it can never leave, so it never completes" : "at least the window's length, no upper bound from these samples"}`,
        seconds: null,
        low: never ? null : at(n - 1),
        high: null,
      };
    }
  } else if (n > 1) warnings.push("some captures have no recorded time: no completion time is estimated");

  // Functions: in how many captures each blocked, and who was in it each time.
  const functions: PredictedFunction[] = [];
  const fkey = new Map<string, PredictedFunction>();
  series.forEach((r, c) => {
    for (const b of r.verdict.blockers) {
      const f = r.ranges.functions[b.func];
      const k = `${f.object}\u0000${f.name}\u0000${f.sympos}`;
      let e = fkey.get(k);
      if (e === undefined) {
        e = { object: f.object, name: f.name, sympos: f.sympos, blockedIn: 0, tids: Array.from({ length: n }, () => []) };
        fkey.set(k, e);
        functions.push(e);
      }
      const tid = r.capture.tasks.get(b.task).tid;
      if (!e.tids[c].includes(tid)) e.tids[c].push(tid);
    }
  });
  for (const e of functions) e.blockedIn = e.tids.filter((x) => x.length > 0).length;
  functions.sort((a, b) => b.blockedIn - a.blockedIn || String(a.name).localeCompare(String(b.name)));

  const ordered = [...tasks.values()].sort(
    (a, b) => b.blocked - a.blocked || b.undecided - a.undecided || (a.pid ?? Number.MAX_SAFE_INTEGER) - (b.pid ?? Number.MAX_SAFE_INTEGER) || (a.tid ?? 0) - (b.tid ?? 0),
  );
  return {
    captures: n,
    times,
    neverClean: ordered.filter((p) => p.neverClean).map((p) => p.tid),
    allCleanAt,
    allCleanShare,
    kpatchLoadChance,
    completion,
    tasks: ordered,
    functions,
    assumptions: ASSUMPTIONS,
    warnings,
  };
}
