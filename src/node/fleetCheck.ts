/**
 * One host of a fleet check: read its snapshot, check it against the patch with the snapshot's
 * own symbol table, and reduce the verdict to what the fleet summary needs. Runs inside the
 * fleet workers (src/node/fleetWorker.ts) and in-process; never throws: an unreadable or
 * unusable snapshot becomes a result with `error`.
 */
import { check } from "../check.js";
import type { DecideOptions } from "../decide/livepatch.js";
import { PatchsafeError } from "../errors.js";
import type { Reason } from "../model.js";
import { notRevertable } from "../patch/ranges.js";
import type { PatchSpec } from "../patch/spec.js";
import type { Scanner } from "../scan/types.js";
import type { SymbolSectionCache } from "../snapshot/psnap.js";
import { type ReadBuffer, readSnapshotFile } from "./snapshotFile.js";

export interface HostResult {
  file: string;
  hostname: string | null;
  bootId: string | null;
  release: string | null;
  capturedAt: string | null;
  /** The host's applied patch stack as its snapshot recorded it, oldest first; null: not recorded. */
  applied: string[] | null;
  /** The patch of that stack whose transition was in progress, if any. */
  transition: string | null;
  /**
   * --revert only: why the host has nothing to revert (it does not run the patch, or only
   * disabled); the host is then not checked (verdict null, error null). Null otherwise.
   */
  notApplied: string | null;
  /** null when the snapshot could not be checked (see error). */
  verdict: "safe" | "blocked" | "undecided" | null;
  /** SPEC §7 status of a `check` of this host: 0 safe, 1 blocked, 3 undecided, 2 error; 0 also for a host with nothing to revert (notApplied). */
  exit: 0 | 1 | 2 | 3;
  counts: { tasks: number; clean: number; done: number; blocked: number; undecided: number; idle: number; excluded: number } | null;
  /** Blocking functions with the number of tasks each blocks. */
  blockers: { object: string; name: string | null; tasks: number }[];
  reasons: Reason[];
  warnings: Reason[];
  error: { code: string; message: string } | null;
  /** Time to read and check, ms. */
  ms: number;
}

/**
 * `cache`: symbol sections decoded for earlier hosts of this thread, reused when a snapshot's
 * section is byte-for-byte the same (one kernel build); its tables are shared, never modified.
 * `buffer`: this thread's reusable read buffer.
 */
export function checkSnapshotFile(
  file: string,
  patch: PatchSpec,
  options: Partial<DecideOptions>,
  scanner: Scanner,
  cache: SymbolSectionCache | null = null,
  buffer: ReadBuffer | null = null,
): HostResult {
  const t0 = performance.now();
  const base: HostResult = { file, hostname: null, bootId: null, release: null, capturedAt: null, applied: null, transition: null, notApplied: null, verdict: null, exit: 2, counts: null, blockers: [], reasons: [], warnings: [], error: null, ms: 0 };
  try {
    const snap = readSnapshotFile(file, { cache, buffer });
    const { capture } = snap;
    base.hostname = capture.host.hostname;
    base.bootId = capture.host.bootId;
    base.release = capture.host.release;
    base.capturedAt = capture.host.capturedAt;
    // The host's own patch stack is the applied stack, as for `patchsafe check HOST.psnap`.
    base.applied = capture.livepatches === null ? null : capture.livepatches.map((p) => p.name);
    base.transition = capture.livepatches?.find((p) => p.transition)?.name ?? null;
    let symbols = snap.symbols;
    if (symbols !== null && !symbols.hasAddresses) {
      // A redacted table cannot be used by resolve/ranges yet (they need addresses): checking
      // by name alone is the conservative path (the verdict is then at best undecided).
      capture.warnings.push({ code: "redacted-symbols", message: "the snapshot's symbol table is redacted (no addresses): frames are matched by object and name only" });
      symbols = null;
    }
    if (symbols === null && snap.symbols === null) capture.warnings.push({ code: "no-kallsyms", message: "the snapshot holds no symbol table: frames are matched by object and name only" });
    if (options.direction === "revert") {
      // Whether the host runs the patch is known only from its recorded stack: without one the
      // host may well run it, and its tasks may be in the patch's code, so it is not "nothing to
      // do" but undecided.
      if (capture.livepatches === null) {
        base.verdict = "undecided";
        base.exit = 3;
        base.reasons = [{ code: "no-patch-stack", message: "the snapshot records no live patch stack (/sys/kernel/livepatch): whether this host runs the patch to revert is unknown" }];
        base.warnings = capture.warnings;
        base.ms = performance.now() - t0;
        return base;
      }
      const why = notRevertable(patch, capture.livepatches);
      if (why !== null) {
        base.notApplied = why;
        base.exit = 0;
        base.ms = performance.now() - t0;
        return base;
      }
    }
    const r = check({ capture, symbols, patch, scanner, options });
    const v = r.verdict;
    base.verdict = v.verdict;
    base.exit = v.verdict === "safe" ? 0 : v.verdict === "blocked" ? 1 : 3;
    base.counts = v.counts;
    base.reasons = v.reasons;
    base.warnings = v.warnings;
    const byFunc = new Map<number, number>();
    const bl = v.blockers;
    for (let i = 0; i < bl.length; i++) byFunc.set(bl.func[i], (byFunc.get(bl.func[i]) ?? 0) + 1);
    base.blockers = [...byFunc].map(([fi, tasks]) => ({ object: r.ranges.functions[fi].object, name: r.ranges.functions[fi].name, tasks }));
  } catch (e) {
    base.error = e instanceof PatchsafeError ? { code: String(e.code), message: e.describe() } : { code: "E_INTERNAL", message: `${file}: internal error: ${e instanceof Error ? e.message : String(e)}` };
    base.exit = 2;
  }
  base.ms = performance.now() - t0;
  return base;
}
