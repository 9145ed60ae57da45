/**
 * `--tid`, `--comm`, `--state`: narrow what the report lists, like crash's `foreach PID|name|state`.
 * The verdict, counts and kernel check still cover every task; the output says it was filtered.
 */
import type { CheckResult } from "../check.js";
import { Blockers, Outcomes } from "../decide/verdict.js";
import { escapeComm } from "./escape.js";

export function filterReport(r: CheckResult, tids?: string[], comms?: string[], states?: string): CheckResult {
  if (tids === undefined && comms === undefined && states === undefined) return r;
  const wantTid = new Set((tids ?? []).map(Number));
  const keep = (task: number): boolean => {
    const t = r.capture.tasks.get(task);
    if (tids !== undefined && (t.tid === null || !wantTid.has(t.tid))) return false;
    if (comms !== undefined && !comms.some((c) => (escapeComm(t.comm) ?? "").includes(c))) return false;
    if (states !== undefined && (t.state === null || !states.includes(t.state))) return false;
    return true;
  };
  const outcomes = Outcomes.from(r.verdict.outcomes.filter((o) => keep(o.task)));
  const blockers = Blockers.from(r.verdict.blockers.filter((b) => keep(b.task)));
  const what = [tids && `--tid ${tids.join(",")}`, comms && `--comm ${comms.join(",")}`, states && `--state ${states}`].filter(Boolean).join(" ");
  return {
    ...r,
    verdict: {
      ...r.verdict,
      outcomes,
      blockers,
      warnings: [...r.verdict.warnings, { code: "filtered", message: `the report lists ${outcomes.length} task(s) selected by ${what}; the verdict and counts cover every task` }],
    },
  };
}
