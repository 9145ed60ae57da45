/**
 * The default job (SPEC §7, issue "semantics"): what cannot be patched right now. Every function
 * on a real chain with the tasks of each kind it is on; the ones that sit where they can never
 * leave (a thread's main loop) or cannot be live-patched at all (entry, noinstr, cpuidle, notrace
 * code); and, first, a livepatch transition in progress with its stalled tasks, why each is
 * stalled and the remedy (what `kpatch list` shows, with reasons).
 */
import type { CheckResult } from "../check.js";
import { frameName, NEVER_RETURNS, NOTRACE, realChain, taskKind, type TaskKind } from "../decide/kinds.js";
import { taskOrder } from "../decide/livepatch.js";
import type { Capture } from "../model.js";
import { type SymbolTable, symbolAddress } from "../symbols/table.js";
import { escapeComm, terminalSafe } from "./escape.js";

export interface InventoryEntry {
  object: string;
  name: string;
  tasks: number;
  kinds: Partial<Record<TaskKind, number>>;
  neverLeaves: boolean;
  /** Why it can never be live-patched (section or notrace), or null. */
  unpatchable: string | null;
}

export interface StalledTask {
  pid: number | null;
  tid: number | null;
  comm: string | null;
  kind: string;
  state: string | null;
  reason: { code: string; message: string };
  remedy: { code: string; message: string } | null;
}

export interface Inventory {
  tasks: number;
  unreadable: number;
  kinds: Partial<Record<TaskKind, number>>;
  /** A livepatch transition in progress: the patch, its direction, and the tasks holding it. */
  transition: { patch: string; direction: "apply" | "revert"; stalled: StalledTask[] } | null;
  functions: InventoryEntry[];
}

function unpatchableReason(table: SymbolTable | null, object: string, name: string): string | null {
  if (NOTRACE.has(name)) return "notrace";
  if (table === null || object !== "vmlinux") return null;
  const rows = table.byName.get(name);
  if (rows === undefined) return null;
  const s = table.sections;
  for (const r of rows) {
    if (table.objects[table.object[r]] !== "vmlinux") continue;
    const a = symbolAddress(table, r);
    const inside = (b: [bigint, bigint] | null) => b !== null && a >= b[0] && a < b[1];
    if (inside(s.entry)) return ".entry.text";
    if (inside(s.noinstr)) return ".noinstr.text";
    if (inside(s.cpuidle)) return ".cpuidle.text";
  }
  return null;
}

/**
 * `transitionCheck`: the result of checking the patch in transition (the caller runs the
 * pipeline: its stalled tasks are the ones not at the target state and not clean).
 */
export function buildInventory(cap: Capture, table: SymbolTable | null = null, transitionCheck: { patch: string; result: CheckResult } | null = null): Inventory {
  const map = new Map<string, InventoryEntry>();
  const kinds: Partial<Record<TaskKind, number>> = {};
  let unreadable = 0;
  for (const t of cap.tasks) {
    if (t.stackStatus === "unreadable") unreadable++;
    const chain = realChain(cap, t);
    const kind = taskKind(cap, t, chain);
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    const seen = new Set<string>();
    chain.forEach((i, pos) => {
      const name = frameName(cap, i);
      if (name === null) return;
      const object = cap.strings.get(cap.frames.object[i]);
      const key = `${object}\u0000${name}`;
      if (seen.has(key)) return;
      seen.add(key);
      let e = map.get(key);
      if (e === undefined) map.set(key, (e = { object, name, tasks: 0, kinds: {}, neverLeaves: false, unpatchable: unpatchableReason(table, object, name) }));
      e.tasks++;
      e.kinds[kind] = (e.kinds[kind] ?? 0) + 1;
      const above = pos + 1 < chain.length ? frameName(cap, chain[pos + 1]) : null;
      if (NEVER_RETURNS.has(name) || above === "kthread") e.neverLeaves = true;
    });
  }
  const functions = [...map.values()].sort((a, b) => b.tasks - a.tasks || a.name.localeCompare(b.name) || a.object.localeCompare(b.object));
  let transition: Inventory["transition"] = null;
  if (transitionCheck !== null) {
    const v = transitionCheck.result.verdict;
    const c = transitionCheck.result.capture;
    const stalled = [...v.outcomes.withStatus("blocked"), ...v.outcomes.withStatus("undecided")]
      .sort((a, b) => taskOrder(c, a.task, b.task))
      .map((o) => {
        const t = c.tasks.get(o.task);
        const b = v.blockers.find((x) => x.task === o.task);
        return {
          pid: t.pid,
          tid: t.tid,
          comm: escapeComm(t.comm),
          kind: o.kind,
          state: t.state,
          reason: { code: o.matches[0].code, message: o.matches[0].message },
          remedy: b === undefined ? null : { code: b.remedy.code, message: b.remedy.message },
        };
      });
    transition = { patch: transitionCheck.patch, direction: v.direction, stalled };
  }
  return { tasks: cap.tasks.length, unreadable, kinds, transition, functions };
}

export function inventoryText(cap: Capture, inv: Inventory, limit = 40): string {
  const out: string[] = [];
  const kinds = Object.entries(inv.kinds)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
  out.push(`patchsafe inventory of ${terminalSafe(cap.host.hostname ?? cap.source.name)} (${terminalSafe(cap.host.release ?? "unknown kernel")}, ${terminalSafe(cap.host.arch ?? "?")}): ${inv.tasks} threads (${kinds})`);
  if (inv.transition !== null) {
    const tr = inv.transition;
    out.push("");
    out.push(`A livepatch transition is in progress: ${terminalSafe(tr.patch)} (${tr.direction === "apply" ? "patching" : "unpatching"}), ${tr.stalled.length} task(s) holding it:`);
    for (const s of tr.stalled.slice(0, limit)) {
      out.push(`  ${String(s.tid ?? "-").padStart(7)} ${(s.comm ?? "-").padEnd(16)} ${s.kind.padEnd(11)} ${(s.state ?? "-").padEnd(2)} ${terminalSafe(s.reason.message)}${s.remedy === null ? "" : ` → ${s.remedy.code}`}`);
    }
    if (tr.stalled.length > limit) out.push(`  … ${tr.stalled.length - limit} more (--json lists all)`);
  }
  if (inv.unreadable > 0) {
    const who = cap.tasks
      .filter((t) => t.stackStatus === "unreadable")
      .slice(0, 5)
      .map((t) => `${escapeComm(t.comm) ?? "?"}:${t.tid}`)
      .join(", ");
    out.push(`  ${inv.unreadable} stack(s) unreadable (${who}${inv.unreadable > 5 ? ", …" : ""})`);
  }
  if (cap.excluded.length > 0) out.push(`  ${cap.excluded.length} thread(s) of patchsafe itself left out`);
  // The first thing to know before planning a live patch: whether this kernel can load one at all.
  if (cap.host.config.livepatch === false) out.push("  this kernel is built without CONFIG_LIVEPATCH: no livepatch module can load on it (kpatch.ko's ftrace patching does not need it)");
  const never = inv.functions.filter((f) => f.neverLeaves || f.unpatchable !== null);
  if (never.length > 0) {
    out.push("");
    out.push(`A live patch must not touch these (on stacks for good, or not patchable): ${never
      .slice(0, limit)
      .map((f) => `${terminalSafe(f.name)}${f.unpatchable !== null ? ` (${f.unpatchable})` : ""}`)
      .join(", ")}${never.length > limit ? ", …" : ""}`);
  }
  out.push("");
  out.push(`${"TASKS".padStart(6)}  ${"KINDS".padEnd(28)} FUNCTION`);
  for (const e of inv.functions.slice(0, limit)) {
    const k = Object.entries(e.kinds)
      .map(([kind, n]) => `${kind}:${n}`)
      .join(" ");
    const tag = e.unpatchable !== null ? `  (cannot be live-patched: ${e.unpatchable})` : e.neverLeaves ? "  (never leaves: a thread's main loop)" : "";
    out.push(`${String(e.tasks).padStart(6)}  ${k.padEnd(28)} ${terminalSafe(e.name)}${e.object === "vmlinux" ? "" : ` [${terminalSafe(e.object)}]`}${tag}`);
  }
  if (inv.functions.length > limit) out.push(`  … ${inv.functions.length - limit} more functions (--json lists all)`);
  out.push("");
  out.push("Check a patch: patchsafe check --func NAME   (exit 0 safe, 1 blocked, 3 undecided, 2 error)");
  return `${out.join("\n")}\n`;
}
