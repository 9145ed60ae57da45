/**
 * `patchsafe` with no arguments: what is on the live host's stacks now (SPEC §7, first version):
 * every function on a real chain with the number of tasks of each kind it is on, and the ones
 * that sit where they can never leave (a thread's main loop).
 */
import { frameName, NEVER_RETURNS, realChain, taskKind, type TaskKind } from "../decide/kinds.js";
import type { Capture } from "../model.js";
import { escapeComm, terminalSafe } from "./escape.js";

export interface InventoryEntry {
  object: string;
  name: string;
  tasks: number;
  kinds: Partial<Record<TaskKind, number>>;
  neverLeaves: boolean;
}

export interface Inventory {
  tasks: number;
  unreadable: number;
  kinds: Partial<Record<TaskKind, number>>;
  functions: InventoryEntry[];
}

export function buildInventory(cap: Capture): Inventory {
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
      if (e === undefined) map.set(key, (e = { object, name, tasks: 0, kinds: {}, neverLeaves: false }));
      e.tasks++;
      e.kinds[kind] = (e.kinds[kind] ?? 0) + 1;
      const above = pos + 1 < chain.length ? frameName(cap, chain[pos + 1]) : null;
      if (NEVER_RETURNS.has(name) || above === "kthread") e.neverLeaves = true;
    });
  }
  const functions = [...map.values()].sort((a, b) => b.tasks - a.tasks || a.name.localeCompare(b.name) || a.object.localeCompare(b.object));
  return { tasks: cap.tasks.length, unreadable, kinds, functions };
}

export function inventoryText(cap: Capture, inv: Inventory, limit = 40): string {
  const out: string[] = [];
  const kinds = Object.entries(inv.kinds)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
  out.push(`patchsafe inventory of ${terminalSafe(cap.host.hostname ?? "this host")} (${terminalSafe(cap.host.release ?? "unknown kernel")}, ${cap.host.arch ?? "?"}): ${inv.tasks} threads (${kinds})`);
  if (inv.unreadable > 0) {
    const who = cap.tasks
      .filter((t) => t.stackStatus === "unreadable")
      .slice(0, 5)
      .map((t) => `${escapeComm(t.comm) ?? "?"}:${t.tid}`)
      .join(", ");
    out.push(`  ${inv.unreadable} stack(s) unreadable (${who}${inv.unreadable > 5 ? ", …" : ""})`);
  }
  if (cap.excluded.length > 0) out.push(`  ${cap.excluded.length} thread(s) of patchsafe itself left out`);
  out.push("");
  out.push(`${"TASKS".padStart(6)}  ${"KINDS".padEnd(28)} FUNCTION`);
  for (const e of inv.functions.slice(0, limit)) {
    const k = Object.entries(e.kinds)
      .map(([kind, n]) => `${kind}:${n}`)
      .join(" ");
    out.push(`${String(e.tasks).padStart(6)}  ${k.padEnd(28)} ${terminalSafe(e.name)}${e.object === "vmlinux" ? "" : ` [${terminalSafe(e.object)}]`}${e.neverLeaves ? "  (never leaves: a thread's main loop)" : ""}`);
  }
  if (inv.functions.length > limit) out.push(`  … ${inv.functions.length - limit} more functions`);
  out.push("");
  out.push("Check a patch: patchsafe check --func NAME   (exit 0 safe, 1 blocked, 3 undecided, 2 error)");
  return `${out.join("\n")}\n`;
}
