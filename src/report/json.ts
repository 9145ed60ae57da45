/**
 * `--json`: schema 1 of SPEC §7. Field names and codes are a public contract (schema bump to
 * change them); schema/verdict.schema.json describes it and a test validates real outputs.
 * Order is deterministic: tasks by pid, tid; functions by object, name, sympos.
 */
import type { CheckResult } from "../check.js";
import { taskOrder } from "../decide/livepatch.js";
import { type Blocker, type Remedy, TASK_KINDS, TASK_STATUSES } from "../decide/verdict.js";
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

/** A large array of the report, produced item by item (a 1M-task report lists ~1M entries). */
interface LazyArray<T> {
  count: number;
  item(i: number): T;
  /**
   * Optional: item i as the exact text JSON.stringify(report, null, 2) gives it inside its array
   * (4 spaces deep), written directly: a 1M-task report lists ~200k blockers, and building an
   * object per item for a pretty-printing stringify was most of --json's time.
   */
  text?(i: number): string;
}

type Lazy<R> = { [K in keyof R]: R[K] extends (infer T)[] ? (K extends "blockers" | "undecided" | "switchable" ? LazyArray<T> : R[K]) : R[K] };

/** The report with its three per-task arrays left lazy (toJsonReport materialises them, writeJsonReport streams them). */
/**
 * LazyArray.text for the blockers: the text JSON.stringify gives blocker() of each, put together
 * from pieces made once per function, remedy, frame row and state (strings through
 * JSON.stringify, so escaping is the same; numbers as String(), which JSON.stringify gives for
 * every finite number). test/json-text.test.ts and test/tokenizer.test.ts compare it with the
 * stringified report.
 */
function blockerText(r: CheckResult, sorted: Blocker[], kindOf: Uint8Array): (i: number) => string {
  const { capture: cap, ranges } = r;
  const q = JSON.stringify;
  const funcPart = new Map<number, string>();
  const remedyPart = new Map<Remedy, string>();
  const rowPart = new Map<number, string>();
  const keyOf = (i: number): bigint => (BigInt(r.resolved.keys[2 * i + 1]) << 32n) | BigInt(r.resolved.keys[2 * i]);
  return (i) => {
    const b = sorted[i];
    const t = cap.tasks;
    let fn = funcPart.get(b.func);
    if (fn === undefined) {
      const f = ranges.functions[b.func];
      funcPart.set(b.func, (fn = `      "function": ${q(f.name)},\n      "object": ${q(f.object)},\n      "sympos": ${q(f.sympos)},\n`));
    }
    let row = rowPart.get(b.frame);
    if (row === undefined) {
      const addr = cap.frames.address(b.frame) ?? (r.resolved.keySpace === "addresses" ? keyOf(b.frame) : null);
      rowPart.set(b.frame, (row = `,\n        "text": ${q(frameText(cap, b.frame))},\n        "address": ${addr === null ? "null" : q(hex64(addr))}\n      },\n`));
    }
    let rem = remedyPart.get(b.remedy);
    if (rem === undefined) {
      const value = b.remedy.callees === undefined ? { code: b.remedy.code, message: b.remedy.message } : { ...b.remedy };
      remedyPart.set(b.remedy, (rem = JSON.stringify(value, null, 2).replace(/\n/g, "\n      ")));
    }
    const pid = t.pidOf(b.task);
    const tid = t.tidOf(b.task);
    const state = t.stateOf(b.task);
    return (
      `    {\n      "pid": ${pid === null ? "null" : String(pid)},\n      "tid": ${tid === null ? "null" : String(tid)},\n      "comm": ${q(escapeComm(t.commOf(b.task)))},\n` +
      `      "kind": ${q(TASK_KINDS[kindOf[b.task]])},\n      "state": ${q(state)},\n${fn}      "frame": {\n        "index": ${String(b.frameIndex)}${row}` +
      `      "kernelSees": ${b.kernelSees ? "true" : "false"},\n      "remedy": ${rem}\n    }`
    );
  };
}

function lazyJsonReport(r: CheckResult, prediction: Prediction | null): Lazy<JsonReport> {
  const { capture: cap, verdict: v, ranges } = r;
  const order = (a: number, b: number): number => taskOrder(cap, a, b);
  const task = (i: number) => cap.tasks.get(i);
  const keyOf = (i: number): bigint => (BigInt(r.resolved.keys[2 * i + 1]) << 32n) | BigInt(r.resolved.keys[2 * i]);
  // task index -> its outcome's kind (a find() per blocker is quadratic on a 1M-task capture)
  const kindOf = v.outcomes.kindCodesByTask(cap.tasks.length);
  const sortedBlockers = [...v.blockers].sort((a, b) => order(a.task, b.task) || a.frameIndex - b.frameIndex);
  const blocker = (b: (typeof sortedBlockers)[number]): JsonReport["blockers"][number] => {
    const t = task(b.task);
    const f = ranges.functions[b.func];
    const addr = cap.frames.address(b.frame) ?? (r.resolved.keySpace === "addresses" ? keyOf(b.frame) : null);
    return {
      pid: t.pid,
      tid: t.tid,
      comm: escapeComm(t.comm),
      kind: TASK_KINDS[kindOf[b.task]], // every blocker is a decided task
      state: t.state,
      function: f.name,
      object: f.object,
      sympos: f.sympos,
      frame: { index: b.frameIndex, text: frameText(cap, b.frame), address: addr === null ? null : hex64(addr) },
      kernelSees: b.kernelSees,
      remedy: b.remedy.callees === undefined ? { code: b.remedy.code, message: b.remedy.message } : { ...b.remedy },
    };
  };
  const undecided = v.outcomes.withStatus("undecided").sort((a, b) => order(a.task, b.task));
  // Per-task switching exists only in livepatch; kpatch and quiesce are all-or-nothing.
  // Task indices, not outcome objects: most of a million tasks are clean.
  const switchable = v.model === "livepatch" ? v.outcomes.tasksWithStatus("clean").sort(order) : [];
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
    blockers: { count: sortedBlockers.length, item: (i) => blocker(sortedBlockers[i]), text: blockerText(r, sortedBlockers, kindOf) },
    undecided: {
      count: undecided.length,
      item: (i) => {
        const o = undecided[i];
        const t = task(o.task);
        return { pid: t.pid, tid: t.tid, comm: escapeComm(t.comm), reason: { code: o.matches[0].code, message: o.matches[0].message } };
      },
    },
    switchable: { count: switchable.length, item: (i) => cap.tasks.tidOf(switchable[i]), text: (i) => `    ${String(cap.tasks.tidOf(switchable[i]))}` },
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

const LAZY_KEYS = new Set(["blockers", "undecided", "switchable"]);

function isLazy(key: string, value: unknown): value is LazyArray<unknown> {
  return LAZY_KEYS.has(key) && typeof value === "object" && value !== null && "item" in value;
}

export function toJsonReport(r: CheckResult, prediction: Prediction | null = null): JsonReport {
  const lazy = lazyJsonReport(r, prediction) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(lazy)) {
    if (isLazy(k, v)) out[k] = Array.from({ length: v.count }, (_, i) => v.item(i));
    else out[k] = v;
  }
  return out as unknown as JsonReport;
}

/**
 * toJsonReport with the per-task arrays cut to their first `max` items (what a page draws),
 * and each array's full length: the HTML report's sections, without a 1M-task object graph.
 */
export function toJsonReportHead(r: CheckResult, prediction: Prediction | null, max: number): { report: JsonReport; totals: Record<"blockers" | "undecided" | "switchable", number> } {
  const lazy = lazyJsonReport(r, prediction) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const totals = { blockers: 0, undecided: 0, switchable: 0 };
  for (const [k, v] of Object.entries(lazy)) {
    if (isLazy(k, v)) {
      out[k] = Array.from({ length: Math.min(v.count, max) }, (_, i) => v.item(i));
      totals[k as keyof typeof totals] = v.count;
    } else out[k] = v;
  }
  return { report: out as unknown as JsonReport, totals };
}

/**
 * The same text as `JSON.stringify(toJsonReport(r, prediction), null, 2) + "\n"`, handed to
 * `emit` in pieces: the per-task arrays are stringified a block of items at a time, so a 1M-task
 * report never exists as one object graph or one string.
 */
export function writeJsonReport(r: CheckResult, prediction: Prediction | null, emit: (chunk: string) => void): void {
  const lazy = lazyJsonReport(r, prediction) as unknown as Record<string, unknown>;
  const entries = Object.entries(lazy).filter(([, v]) => v !== undefined);
  const nested = (v: unknown, indent: string): string => JSON.stringify(v, null, 2).replace(/\n/g, `\n${indent}`);
  emit("{\n");
  entries.forEach(([k, v], n) => {
    const comma = n < entries.length - 1 ? "," : "";
    if (!isLazy(k, v)) {
      emit(`  ${JSON.stringify(k)}: ${nested(v, "  ")}${comma}\n`);
      return;
    }
    if (v.count === 0) {
      emit(`  ${JSON.stringify(k)}: []${comma}\n`);
      return;
    }
    emit(`  ${JSON.stringify(k)}: [\n`);
    const BLOCK = 4096;
    const text = v.text;
    if (text !== undefined) {
      for (let i = 0; i < v.count; i += BLOCK) {
        const end = Math.min(v.count, i + BLOCK);
        const parts: string[] = [];
        for (let j = i; j < end; j++) parts.push(text(j));
        emit(parts.join(",\n") + (end < v.count ? ",\n" : "\n"));
      }
      emit(`  ]${comma}\n`);
      return;
    }
    for (let i = 0; i < v.count; i += BLOCK) {
      const block: unknown[] = [];
      for (let j = i; j < Math.min(v.count, i + BLOCK); j++) block.push(v.item(j));
      // One native stringify per block at the right depth: `{"x": [items]}` pretty-printed holds
      // the items indented exactly as in the whole report; cut its first two and last two lines.
      const text = JSON.stringify({ x: block }, null, 2);
      emit(text.slice(text.indexOf("[\n") + 2, text.lastIndexOf("\n  ]")) + (i + BLOCK < v.count ? ",\n" : "\n"));
    }
    emit(`  ]${comma}\n`);
  });
  emit("}\n");
}

/** quiesce: effect counts, and which tasks not clean as captured become clean once quiesced. */
const QUIESCE_EFFECTS = new Set(["frozen-in-place", "unwound", "frozen-or-unwound", "parked", "unchanged", "freeze-fails", "state-unknown", "running"]);

export function quiesceSummary(r: CheckResult): { effects: Record<string, number>; cleared: number[]; notCleared: number[]; freezeFails: number[] } | null {
  if (r.verdict.model !== "quiesce" || r.baseline === undefined) return null;
  const effects: Record<string, number> = {};
  const freezeFails: number[] = [];
  for (const [task, e] of r.notes) {
    if (!QUIESCE_EFFECTS.has(e)) continue;
    effects[e] = (effects[e] ?? 0) + 1;
    if (e === "freeze-fails") freezeFails.push(task);
  }
  // Columns, not outcome objects: a 1M-task quiesce check made two million of them here.
  const base = r.baseline.outcomes;
  const NONE = 255;
  const before = new Uint8Array(Math.max(r.capture.tasks.length, 1)).fill(NONE);
  for (let i = 0; i < base.length; i++) if (base.task[i] < before.length) before[base.task[i]] = base.statusCode[i];
  const [CLEAN, DONE, IDLE] = (["clean", "done", "idle"] as const).map((s) => TASK_STATUSES.indexOf(s));
  const cleared: number[] = [];
  const notCleared: number[] = [];
  const out = r.verdict.outcomes;
  for (let i = 0; i < out.length; i++) {
    const task = out.task[i];
    const was = task < before.length ? before[task] : NONE;
    if (was === NONE || was === CLEAN || was === IDLE || was === DONE) continue;
    (out.statusCode[i] === CLEAN ? cleared : notCleared).push(task);
  }
  const order = (a: number, b: number) => taskOrder(r.capture, a, b);
  return { effects, cleared: cleared.sort(order), notCleared: notCleared.sort(order), freezeFails: freezeFails.sort(order) };
}
