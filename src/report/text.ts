/**
 * The human report: the verdict first with its reasons, then blockers grouped by function, then
 * undecided tasks grouped by reason. comm bytes are escaped (SPEC §7); everything that came from
 * an input goes through terminalSafe.
 */
import type { CheckResult } from "../check.js";
import { realChain, stateLabels } from "../decide/kinds.js";
import { taskOrder } from "../decide/livepatch.js";
import { type Blockers, TASK_KINDS } from "../decide/verdict.js";
import { frameText } from "../ingest/nativeJson.js";
import { quiesceSummary } from "./json.js";
import { escapeComm, terminalSafe } from "./escape.js";

export interface TextOptions {
  /** 0: summary (10 tasks per group); 1: every task; 2: also each undecided task's stack. */
  verbosity: number;
}

const GLYPH = { safe: "✓", blocked: "✗", undecided: "?" } as const;

export function toTextReport(r: CheckResult, opts: TextOptions = { verbosity: 0 }): string {
  const { capture: cap, verdict: v, ranges } = r;
  const out: string[] = [];
  const limit = opts.verbosity >= 1 ? Number.POSITIVE_INFINITY : 10;
  const complete = v.complete === true ? "complete" : v.complete === false ? "partial" : "completeness unknown";
  out.push(
    `${GLYPH[v.verdict]} ${v.verdict.toUpperCase()}: ${v.model} ${v.direction} over ${v.counts.tasks} task(s) from ${terminalSafe(cap.source.name)} (${cap.source.format}, ${complete})`,
  );
  for (const reason of v.reasons) out.push(`  - ${terminalSafe(reason.message)} [${reason.code}]`);
  const c = v.counts;
  out.push(`  tasks: ${c.clean} clean, ${c.blocked} blocked, ${c.undecided} undecided, ${c.done} done, ${c.idle} idle, ${c.excluded} excluded`);
  const kc = v.kernelCheck;
  if (kc.result === "fail" && kc.first !== null) {
    const t = cap.tasks.get(kc.first.task);
    out.push(`  kernel's own check: would fail, first on ${escapeComm(t.comm) ?? "?"}:${t.tid ?? t.pid ?? "?"} (${kc.first.func === null ? "its stack fills kpatch's 64-entry walk, or it cannot be frozen" : `sleeping in ${terminalSafe(ranges.functions[kc.first.func].name ?? "a range")}`})`);
  } else if (kc.result === "fail") {
    out.push("  kernel's own check: would not start (see the reasons above)");
  } else if (kc.result === "pass" && v.verdict !== "safe") {
    out.push("  kernel's own check: would pass, but patchsafe cannot call it safe (see the reasons above)");
  } else out.push(`  kernel's own check: ${kc.result}`);

  const q = quiesceSummary(r);
  if (q !== null) {
    const eff = Object.entries(q.effects).map(([k, n]) => `${n} ${k}`).join(", ");
    out.push(`  quiesce: ${eff}; clears ${q.cleared.length} of the ${q.cleared.length + q.notCleared.length} task(s) that block or are undecided as captured`);
    const who = (list: number[]) => list.slice(0, limit).map((i) => `${escapeComm(cap.tasks.get(i).comm) ?? "?"}:${cap.tasks.get(i).tid ?? "?"}`).join(", ");
    if (q.cleared.length > 0) out.push(`  cleared by quiescing: ${who(q.cleared)}${q.cleared.length > limit ? ", …" : ""}`);
    if (q.notCleared.length > 0) out.push(`  not cleared: ${who(q.notCleared)}${q.notCleared.length > limit ? ", …" : ""}`);
    if (q.freezeFails.length > 0) out.push(`  the freeze would fail on: ${who(q.freezeFails)}`);
  }
  if (v.model !== "livepatch") {
    out.push("  the global check also covers two tasks no capture shows: kpatch's stopper thread and the task loading (or disabling) the patch");
  }
  const bl = v.blockers;
  for (const { func: fi, count, first } of blockersByFunction(cap, bl, ranges.functions.length, limit)) {
    const f = ranges.functions[fi];
    out.push("");
    // A function's name and object can come from the capture's patch stack (a nop's): escaped.
    out.push(`Blocked in ${terminalSafe(`${f.name ?? "range"} [${f.object}${f.sympos ? `,${f.sympos}` : ""}]`)}: ${count} task(s)`);
    const remedies = new Map<string, string>();
    for (const bi of first) {
      const b = bl.get(bi);
      const t = cap.tasks.get(b.task);
      const kind = TASK_KINDS[v.outcomes.kindCodeOfTask(b.task)]; // every blocker is a decided task
      const labels = stateLabels(cap, t, realChain(cap, t), kind);
      out.push(
        `  ${String(t.tid ?? "-").padStart(7)} ${(escapeComm(t.comm) ?? "-").padEnd(16)} ${kind.padEnd(11)} ${(t.state ?? "-").padEnd(2)} #${b.frameIndex} ${terminalSafe(frameText(cap, b.frame))}${b.kernelSees ? "" : "  (kernel does not see this frame)"}${labels.length > 0 ? `  [${labels.join(", ")}]` : ""}`,
      );
      remedies.set(b.remedy.code, b.remedy.message + (b.remedy.callees?.length ? ` (callees: ${b.remedy.callees.map(terminalSafe).join(", ")})` : ""));
    }
    if (count > limit) out.push(`  … ${count - limit} more (-v lists all)`);
    for (const [code, msg] of remedies) out.push(`  remedy ${code}: ${terminalSafe(msg)}`);
  }

  const undecided = v.counts.undecided > 0 ? v.outcomes.withStatus("undecided") : [];
  const byReason = new Map<string, typeof undecided>();
  for (const o of undecided) {
    const code = o.matches[0].code;
    let l = byReason.get(code);
    if (l === undefined) byReason.set(code, (l = []));
    l.push(o);
  }
  for (const [code, list] of byReason) {
    out.push("");
    out.push(`Undecided (${code}): ${list.length} task(s)`);
    for (const o of firstInOrder(list, limit, (a, b) => taskOrder(cap, a.task, b.task))) {
      const t = cap.tasks.get(o.task);
      out.push(`  ${String(t.tid ?? "-").padStart(7)} ${(escapeComm(t.comm) ?? "-").padEnd(16)} ${o.kind.padEnd(11)} ${(t.state ?? "-").padEnd(2)} ${terminalSafe(o.matches[0].message)}`);
      if (opts.verbosity >= 2) {
        for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) out.push(`            ${terminalSafe(frameText(cap, i))}`);
      }
    }
    if (list.length > limit) out.push(`  … ${list.length - limit} more (-v lists all)`);
  }
  if (v.warnings.length > 0) {
    out.push("");
    for (const w of v.warnings) out.push(`warning: ${terminalSafe(w.message)}`);
  }
  return `${out.join("\n")}\n`;
}

/**
 * Blockers by function, the biggest group first: each group's count and its first `limit`
 * blockers (indices into the columns) in taskOrder, ties in blocker order. One pass over the
 * columns: a blocker enters a full group's list only if it comes before the list's last, which
 * one pid compare settles for most of them (a 1M-task host has ~200k blockers; sorting or even
 * grouping them into arrays was most of the report's time).
 */
export function blockersByFunction(cap: CheckResult["capture"], bl: Blockers, funcs: number, limit: number): { func: number; count: number; first: number[] }[] {
  const pid = cap.tasks.pid;
  const tid = cap.tasks.tid;
  const task = bl.task;
  const count = new Float64Array(funcs);
  const seen = new Float64Array(funcs).fill(-1);
  const first: number[][] = Array.from({ length: funcs }, () => []);
  const all = !Number.isFinite(limit);
  for (let i = 0; i < bl.length; i++) {
    const f = bl.func[i];
    if (count[f]++ === 0) seen[f] = i;
    const best = first[f];
    if (all) {
      best.push(i);
      continue;
    }
    // best stays sorted: a full list takes i only if it comes before the last.
    if (best.length === limit && !blockerBefore(pid, tid, task, i, best[limit - 1])) continue;
    let k = best.length;
    while (k > 0 && blockerBefore(pid, tid, task, i, best[k - 1])) k--;
    best.splice(k, 0, i);
    if (best.length > limit) best.pop();
  }
  const out: { func: number; count: number; first: number[] }[] = [];
  for (let f = 0; f < funcs; f++) {
    if (count[f] === 0) continue;
    out.push({ func: f, count: count[f], first: first[f].sort((x, y) => (blockerBefore(pid, tid, task, x, y) ? -1 : 1)) });
  }
  // Biggest first; equal counts in the order their first blockers came.
  return out.sort((a, b) => b.count - a.count || seen[a.func] - seen[b.func]);
}

/** Blocker x comes before blocker y: task pid, then tid (nulls last), then task index, then blocker order. */
function blockerBefore(pid: Float64Array, tid: Float64Array, task: Uint32Array, x: number, y: number): boolean {
  const tx = task[x];
  const ty = task[y];
  if (tx !== ty) {
    const px = pid[tx] === pid[tx] ? pid[tx] : Number.MAX_SAFE_INTEGER;
    const py = pid[ty] === pid[ty] ? pid[ty] : Number.MAX_SAFE_INTEGER;
    if (px !== py) return px < py;
    const qx = tid[tx] === tid[tx] ? tid[tx] : Number.MAX_SAFE_INTEGER;
    const qy = tid[ty] === tid[ty] ? tid[ty] : Number.MAX_SAFE_INTEGER;
    if (qx !== qy) return qx < qy;
    return tx < ty;
  }
  return x < y;
}

/**
 * The first `limit` items of `list` in `order` (all of them, sorted, for an infinite limit):
 * a summary of 10 out of a million blockers needs no sort of the million.
 */
export function firstInOrder<T>(list: T[], limit: number, order: (a: T, b: T) => number): T[] {
  if (!Number.isFinite(limit) || list.length <= limit * 8) return [...list].sort(order).slice(0, limit);
  const best: T[] = [];
  for (const x of list) {
    if (best.length === limit && order(x, best[limit - 1]) >= 0) continue;
    let i = best.length;
    while (i > 0 && order(x, best[i - 1]) < 0) i--;
    best.splice(i, 0, x);
    if (best.length > limit) best.pop();
  }
  return best;
}
