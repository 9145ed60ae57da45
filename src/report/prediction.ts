/** The prediction section of the text report (a series of captures of one host). */
import { COMPLETION_ESTIMATOR } from "../predict/predict.js";
import type { Prediction } from "../predict/types.js";
import { terminalSafe } from "./escape.js";

const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

export function predictionText(p: Prediction, limit = 10): string {
  const out: string[] = ["", `Prediction over ${p.captures} capture(s) of this host:`];
  if (p.completion !== null) {
    const c = p.completion;
    if (c.seconds !== null) out.push(`  livepatch: every task had been clean by capture ${p.allCleanAt}: the transition would complete in about ${c.seconds.toFixed(1)} s (between ${c.low?.toFixed(1)} and ${c.high?.toFixed(1)} s after the first capture)`);
    else out.push(`  livepatch: not every task was ever clean in the window${c.low !== null ? ` (at least ${c.low.toFixed(1)} s)` : ""}`);
  } else out.push(`  livepatch: ${p.allCleanAt === null ? "not every task was ever clean" : `every task had been clean by capture ${p.allCleanAt}`}`);
  out.push(`  kpatch: every task clean at once in ${pct(p.allCleanShare)} of the captures; chance that kpatch load's 5 tries succeed: ${pct(p.kpatchLoadChance)}`);
  if (p.neverClean.length > 0) {
    const never = p.tasks.filter((t) => t.neverClean);
    out.push(`  never clean (${never.length}): ${never.slice(0, limit).map((t) => `${t.comm ?? "?"}:${t.tid ?? "?"}${t.neverLeaves ? " (never leaves)" : ""}`).join(", ")}${never.length > limit ? ", …" : ""}`);
  }
  const holding = p.tasks.filter((t) => t.blocked + t.undecided > 0).slice(0, limit);
  if (holding.length > 0) {
    out.push("  holding the patch back most (tid comm: per capture, B blocked · clean ? undecided - absent):");
    for (const t of holding) {
      const row = t.statuses.map((s) => (s === null ? "-" : s === "blocked" ? "B" : s === "undecided" ? "?" : "·")).join("");
      out.push(`    ${String(t.tid ?? "-").padStart(7)} ${(t.comm ?? "-").padEnd(16)} ${row}`);
    }
  }
  for (const f of p.functions.slice(0, limit)) out.push(`  ${terminalSafe(f.name ?? "range")} blocked in ${f.blockedIn} of ${p.captures} capture(s)`);
  out.push(`  estimator: ${p.completion?.estimator ?? `${COMPLETION_ESTIMATOR} (no capture times recorded: no time estimate)`}`);
  out.push(`  assumptions: ${p.assumptions.join("; ")}`);
  for (const w of p.warnings) out.push(`  warning: ${w}`);
  return `${out.join("\n")}\n`;
}
