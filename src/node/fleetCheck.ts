/**
 * One host of a fleet check: read its snapshot, check it against the patch with the snapshot's
 * own symbol table, and reduce the verdict to what the fleet summary needs. Runs inside the
 * fleet workers (src/node/fleetWorker.ts) and in-process; never throws: an unreadable or
 * unusable snapshot becomes a result with `error`.
 */
import { check } from "../check.js";
import { APPLIED_STACK_UNKNOWN, type DecideOptions, type SectionOfName } from "../decide/livepatch.js";
import { PatchsafeError } from "../errors.js";
import type { Reason } from "../model.js";
import { assertUniquePatchNames, notRevertable } from "../patch/ranges.js";
import type { PatchSpec } from "../patch/spec.js";
import type { Scanner } from "../scan/types.js";
import type { SymbolSectionCache } from "../snapshot/psnap.js";
import { redactedSectionOf } from "../snapshot/redact.js";
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
  /** SPEC §7 status of a `check` of this host: 0 safe, 1 blocked, 3 undecided, 2 error (also for a host with nothing to revert, which `check --revert` refuses). */
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
    let sectionOfName: SectionOfName | null = null;
    if (symbols !== null && !symbols.hasAddresses) {
      // A redacted table cannot be used by resolve/ranges yet (they need addresses): checking
      // by name alone is the conservative path (the verdict is then at best undecided).
      capture.warnings.push({ code: "redacted-symbols", message: "the snapshot's symbol table is redacted (no addresses): frames are matched by object and name only" });
      symbols = null;
      // Its section rows still say which functions cannot be live-patched at all.
      sectionOfName = redactedSectionOf(snap.symbols!, snap.sectionRows);
    }
    if (symbols === null && snap.symbols === null) capture.warnings.push({ code: "no-kallsyms", message: "the snapshot holds no symbol table: frames are matched by object and name only" });
    if (symbols !== null) for (const w of symbols.warnings) capture.warnings.push({ code: "symbols", message: w });
    if (options.direction === "revert") {
      const undecided = (code: string, message: string): HostResult => {
        base.verdict = "undecided";
        base.exit = 3;
        base.reasons = [{ code, message }];
        base.warnings = capture.warnings;
        base.ms = performance.now() - t0;
        return base;
      };
      // Whether the host runs the patch is known only from its recorded stack: without one (or
      // with one the capture could not read whole) the host may well run it, and its tasks may be
      // in the patch's code: not "nothing to revert" but undecided.
      const unknown = capture.completeness.filter((r) => APPLIED_STACK_UNKNOWN.has(r.code));
      if (capture.livepatches === null || unknown.length > 0) {
        const why = unknown.length > 0 ? unknown.map((r) => r.message).join("; ") : "the snapshot records no live patch stack (/sys/kernel/livepatch)";
        return undecided("no-patch-stack", `${why}: whether this host runs the patch to revert is unknown`);
      }
      assertUniquePatchNames(capture.livepatches, file);
      const why = notRevertable(patch, capture.livepatches);
      // Its revert is under way: the host runs the patch still, and nothing is left to write.
      if (why?.code === "disabling") return undecided("revert-in-progress", `${why.message}; the kernel finishes it (or \`patchsafe check\` on the host shows the tasks that hold it)`);
      // Loaded but missing from the stack: a capture that could not see it (older patchsafe
      // versions did not record kpatch.ko modules), not a host without it.
      if (why?.code === "not-applied" && patch.name !== null && capture.modules?.includes(patch.name) === true) {
        return undecided("no-patch-stack", `module ${patch.name} is loaded (/proc/modules) but the recorded patch stack does not list it: whether it is enabled is unknown`);
      }
      if (why !== null) {
        // `check --revert` refuses such a host (exit 2); the fleet lists it as nothing to do.
        base.notApplied = why.message;
        base.warnings = capture.warnings;
        base.ms = performance.now() - t0;
        return base;
      }
    }
    const r = check({ capture, symbols, patch, scanner, options, sectionOfName });
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
