/**
 * `--json`: schema 1 of SPEC §7. Field names and codes are a public contract (schema bump to
 * change them); schema/verdict.schema.json describes it and a test validates real outputs.
 * Order is deterministic: tasks by pid, tid; functions by object, name, sympos.
 */
import type { CheckResult } from "../check.js";
import { taskOrder } from "../decide/livepatch.js";
import { frameText } from "../ingest/nativeJson.js";
import { framesInTasks, hex64, type Reason } from "../model.js";
import type { Prediction } from "../predict/types.js";
import { escapeComm } from "./escape.js";
import { VERSION } from "../version.js";

export const JSON_SCHEMA_VERSION = 1;

export interface JsonReport {
  schema: 1;
  tool: { name: "patchsafe"; version: string };
  verdict: "safe" | "blocked" | "undecided";
  reasons: Reason[];
  kernelCheck: { result: "pass" | "fail" | "unknown"; first: { pid: number | null; tid: number | null; comm: string | null; function: string | null } | null };
  model: string;
  direction: string;
  complete: true | false | "unknown";
  completeness: Reason[];
  counts: { tasks: number; clean: number; done: number; blocked: number; undecided: number; idle: number; excluded: number };
  blockers: {
    pid: number | null;
    tid: number | null;
    comm: string | null;
    kind: string;
    state: string | null;
    function: string | null;
    object: string;
    sympos: number | null;
    frame: { index: number; text: string; address: string | null };
    kernelSees: boolean;
    remedy: { code: string; message: string; callees?: string[] };
  }[];
  undecided: { pid: number | null; tid: number | null; comm: string | null; reason: Reason }[];
  switchable: (number | null)[];
  functions: { object: string; name: string | null; sympos: number | null; ranges: { start: string; end: string; role: string }[]; blocking: number }[];
  warnings: Reason[];
  prediction: Prediction | null;
  quiesce?: { effects: Record<string, number>; cleared: (number | null)[]; notCleared: (number | null)[]; freezeFails: (number | null)[] } | null;
  input: { source: string; format: string; tasks: number; frames: number; keySpace: string; symbols: string | null };
}

export function toJsonReport(r: CheckResult, prediction: Prediction | null = null): JsonReport {
  const { capture: cap, verdict: v, ranges } = r;
  const order = (a: number, b: number): number => taskOrder(cap, a, b);
  const task = (i: number) => cap.tasks[i];
  const keyOf = (i: number): bigint => (BigInt(r.resolved.keys[2 * i + 1]) << 32n) | BigInt(r.resolved.keys[2 * i]);
  // task index -> its outcome's kind (a find() per blocker is quadratic on a 1M-task capture)
  const kindOf = new Map<number, string>();
  for (const o of v.outcomes) if (!kindOf.has(o.task)) kindOf.set(o.task, o.kind);
  const blockers = [...v.blockers]
    .sort((a, b) => order(a.task, b.task) || a.frameIndex - b.frameIndex)
    .map((b) => {
      const t = task(b.task);
      const f = ranges.functions[b.func];
      const addr = cap.frames.address(b.frame) ?? (r.resolved.keySpace === "addresses" ? keyOf(b.frame) : null);
      return {
        pid: t.pid,
        tid: t.tid,
        comm: escapeComm(t.comm),
        kind: kindOf.get(b.task)!,
        state: t.state,
        function: f.name,
        object: f.object,
        sympos: f.sympos,
        frame: { index: b.frameIndex, text: frameText(cap, b.frame), address: addr === null ? null : hex64(addr) },
        kernelSees: b.kernelSees,
        remedy: b.remedy.callees === undefined ? { code: b.remedy.code, message: b.remedy.message } : { ...b.remedy },
      };
    });
  const undecided = v.outcomes
    .filter((o) => o.status === "undecided")
    .sort((a, b) => order(a.task, b.task))
    .map((o) => {
      const t = task(o.task);
      return { pid: t.pid, tid: t.tid, comm: escapeComm(t.comm), reason: { code: o.matches[0].code, message: o.matches[0].message } };
    });
  // Per-task switching exists only in livepatch; kpatch and quiesce are all-or-nothing.
  const switchable = v.outcomes
    .filter((o) => o.status === "clean" && v.model === "livepatch")
    .sort((a, b) => order(a.task, b.task))
    .map((o) => task(o.task).tid);
  const functions = ranges.functions
    .map((f, i) => ({
      object: f.object,
      name: f.name,
      sympos: f.sympos,
      ranges: f.ranges.map((x) => ({ start: hex64(x.start), end: hex64(x.end), role: x.role })),
      blocking: v.functionBlocking[i],
    }))
    .sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : 0) || String(a.name).localeCompare(String(b.name)) || (a.sympos ?? 0) - (b.sympos ?? 0));
  const first = v.kernelCheck.first;
  const q = quiesceSummary(r);
  return {
    schema: 1,
    tool: { name: "patchsafe", version: VERSION },
    verdict: v.verdict,
    reasons: v.reasons,
    kernelCheck: {
      result: v.kernelCheck.result,
      first:
        first === null
          ? null
          : { pid: task(first.task).pid, tid: task(first.task).tid, comm: escapeComm(task(first.task).comm), function: first.func === null ? null : ranges.functions[first.func].name },
    },
    model: v.model,
    direction: v.direction,
    complete: v.complete,
    completeness: v.completeness,
    counts: v.counts,
    blockers,
    undecided,
    switchable,
    functions,
    warnings: v.warnings,
    prediction,
    ...(q === null ? {} : { quiesce: { effects: q.effects, cleared: q.cleared.map((i) => task(i).tid), notCleared: q.notCleared.map((i) => task(i).tid), freezeFails: q.freezeFails.map((i) => task(i).tid) } }),
    input: {
      source: cap.source.name,
      format: cap.source.format,
      tasks: cap.tasks.length,
      // Frames as the input holds them (shared rows count once per task that shows them).
      frames: framesInTasks(cap),
      keySpace: r.resolved.keySpace,
      symbols: r.symbols === null ? null : r.symbols.source,
    },
  };
}

/** quiesce: effect counts, and which tasks not clean as captured become clean once quiesced. */
export function quiesceSummary(r: CheckResult): { effects: Record<string, number>; cleared: number[]; notCleared: number[]; freezeFails: number[] } | null {
  if (r.verdict.model !== "quiesce" || r.baseline === undefined) return null;
  const effects: Record<string, number> = {};
  const freezeFails: number[] = [];
  for (const [task, e] of r.notes) {
    if (!["frozen-in-place", "unwound", "parked", "unchanged", "freeze-fails", "running"].includes(e)) continue;
    effects[e] = (effects[e] ?? 0) + 1;
    if (e === "freeze-fails") freezeFails.push(task);
  }
  const before = new Map(r.baseline.outcomes.map((o) => [o.task, o.status]));
  const cleared: number[] = [];
  const notCleared: number[] = [];
  for (const o of r.verdict.outcomes) {
    const was = before.get(o.task);
    if (was === undefined || was === "clean" || was === "idle" || was === "done") continue;
    (o.status === "clean" ? cleared : notCleared).push(o.task);
  }
  const order = (a: number, b: number) => taskOrder(r.capture, a, b);
  return { effects, cleared: cleared.sort(order), notCleared: notCleared.sort(order), freezeFails: freezeFails.sort(order) };
}
