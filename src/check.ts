/**
 * The pipeline without I/O: capture + symbol table + patch → resolve → ranges → scan → decide.
 * The CLI and the library API both call this; nothing here touches files or the process.
 */
import { decideLivepatch, type DecideOptions, type Rule, type SectionOfName } from "./decide/livepatch.js";
import type { RuleMatch } from "./decide/verdict.js";
import type { Verdict } from "./decide/verdict.js";
import { predictQuiesce, TaskNotes, withKpatchTasks } from "./decide/models.js";
import type { AppliedPatch, Capture, NameSet } from "./model.js";
import { assertUniquePatchNames, buildRanges, type RangeTable } from "./patch/ranges.js";
import type { PatchSpec } from "./patch/spec.js";
import { SpanScanHits } from "./scan/spanHits.js";
import type { ScanHits, ScanInput, Scanner } from "./scan/types.js";
import { type ResolvedFrames, resolveFrames } from "./symbols/resolve.js";
import type { SymbolTable } from "./symbols/table.js";

export interface CheckRequest {
  capture: Capture;
  /** null: no symbol table (frames are matched by object and name). */
  symbols: SymbolTable | null;
  patch: PatchSpec;
  scanner: Scanner;
  options?: Partial<DecideOptions>;
  /** Patches already enabled, oldest first (default: what the capture recorded, else none). */
  applied?: AppliedPatch[];
  /** available_filter_functions of the host, when readable: a patched name not in it cannot be hooked. */
  traceable?: NameSet | null;
  /**
   * With no usable table (a redacted snapshot's has no addresses): the unpatchable code section a
   * patched function lies in, as the snapshot recorded it (src/snapshot/redact.ts redactedSectionOf).
   */
  sectionOfName?: SectionOfName | null;
  /** The rule table (default LIVEPATCH_RULES); tests drop one rule at a time to prove they matter. */
  rules?: Rule[];
}

export interface CheckResult {
  capture: Capture;
  symbols: SymbolTable | null;
  resolved: ResolvedFrames;
  ranges: RangeTable;
  hits: ScanHits;
  verdict: Verdict;
  /** Per task of `capture`: what the model's transformation did (quiesce effects, kpatch's added tasks). */
  /** The model's note per task (quiesce's effect on each task, kpatch's added tasks). */
  notes: ReadonlyMap<number, string>;
  /** quiesce only: the kpatch-model verdict over the stacks as captured (same task indices). */
  baseline?: Verdict;
}

/** Outcomes that doubt the captured stack itself (not the running state or the capture as a whole). */
const STACK_DOUBTS = new Set(["unreliable", "truncated", "unreadable", "unparsed-line", "possibly-live", "cold", "unresolved", "ambiguous", "hidden"]);

export const DEFAULT_OPTIONS: DecideOptions = { model: "livepatch", direction: "apply", partialOk: false, strict: false };

/** Lays the capture's frames and the blocking ranges out as the scan kernel's buffers. */
export function scanInputFor(capture: Capture, resolved: ResolvedFrames, ranges: RangeTable): ScanInput {
  const taskFrameStart = new Uint32Array(capture.tasks.length + 1);
  taskFrameStart.set(capture.tasks.frameStart.subarray(0, capture.tasks.length));
  taskFrameStart[capture.tasks.length] = capture.frames.length;
  return { keys: resolved.keys.subarray(0, capture.frames.length * 2), taskFrameStart, ...rangeColumns(ranges) };
}

/** The blocking ranges as the scan's u32 pairs (inclusive last address). */
function rangeColumns(ranges: RangeTable): { rangeStart: Uint32Array; rangeLast: Uint32Array } {
  const n = ranges.ranges.length;
  const rangeStart = new Uint32Array(n * 2);
  const rangeLast = new Uint32Array(n * 2);
  ranges.ranges.forEach((r, i) => {
    const last = r.end - 1n;
    rangeStart[2 * i] = Number(r.start & 0xffffffffn);
    rangeStart[2 * i + 1] = Number(r.start >> 32n);
    rangeLast[2 * i] = Number(last & 0xffffffffn);
    rangeLast[2 * i + 1] = Number(last >> 32n);
  });
  return { rangeStart, rangeLast };
}

/**
 * Scans the capture's frames against the ranges and returns hits per task. With shared rows
 * (Capture.sharedRows) each row is scanned once and the hits are handed to every task that
 * points at it: ordered by task, then frame (not by frame as a scan of owned rows is).
 * The result belongs to the caller (CheckResult.hits): owned rows take scan()'s own arrays;
 * shared rows read the row hits as a borrowed view (scanView(): no copy out of the kernel),
 * copy them before anything else calls the scanner, and lay them out per task when first read
 * (SpanScanHits).
 */
export function scanCapture(scanner: Scanner, capture: Capture, resolved: ResolvedFrames, ranges: RangeTable): ScanHits {
  if (!capture.sharedRows) return scanner.scan(scanInputFor(capture, resolved, ranges));
  const rows = capture.frames.length;
  const rowInput: ScanInput = { keys: resolved.keys.subarray(0, rows * 2), taskFrameStart: Uint32Array.of(0, rows), ...rangeColumns(ranges) };
  // A view is valid until the scanner's next call: the row hits (a few per distinct stack) are
  // copied out; the per-task layout is made only if someone reads it (SpanScanHits).
  const rowHits = scanner.scanView !== undefined ? scanner.scanView(rowInput) : scanner.scan(rowInput);
  const n = capture.tasks.length;
  return new SpanScanHits(rowHits.frame.slice(0, rowHits.count), rowHits.range.slice(0, rowHits.count), capture.tasks.frameStart.subarray(0, n), capture.tasks.frameCount.subarray(0, n));
}

/**
 * Linux before 5.1 (kernel/livepatch/core.c __klp_disable_patch: "enforce stacking: only the last
 * enabled patch can be disabled") refuses with -EBUSY to disable a patch registered before
 * another enabled one. Distribution kernels backported the change (RHEL 8's 4.18), and the
 * registration order is not in sysfs, so this is a warning (which --strict honours), not a
 * refusal. Null where it does not apply.
 */
function stackingBefore51(release: string | null, options: DecideOptions, name: string | null, applied: AppliedPatch[]): string | null {
  if (options.direction !== "revert" || options.model !== "livepatch" || release === null) return null;
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (m === null || Number(m[1]) * 1000 + Number(m[2]) >= 5001) return null;
  const others = applied.filter((p) => p.enabled && p.name !== name).map((p) => p.name);
  if (others.length === 0) return null;
  return `kernel ${release} is older than 5.1, which disables only the most recently registered enabled patch (-EBUSY otherwise; unless the change was backported, as in RHEL 8): other enabled patches (${others.join(", ")}) may keep ${name} from being disabled`;
}

export function check(req: CheckRequest): CheckResult {
  const options: DecideOptions = { ...DEFAULT_OPTIONS, ...req.options };
  const applied = req.applied ?? req.capture.livepatches ?? [];
  assertUniquePatchNames(applied, req.applied !== undefined ? "--applied" : req.capture.source.name);
  let capture = req.capture;
  let notes: ReadonlyMap<number, string> | undefined;
  // quiesce predicts stacks from the captured ones: a doubt about a captured stack (unresolved,
  // unreliable, …) carries over to the prediction instead of being unwound away.
  let baseline: Verdict | undefined;
  let doubts: Map<number, RuleMatch> | undefined;
  if (options.model === "quiesce") {
    baseline = check({ ...req, options: { ...options, model: "kpatch" } }).verdict;
    doubts = new Map(baseline.outcomes.withStatus("undecided").filter((o) => STACK_DOUBTS.has(o.matches[0].code)).map((o) => [o.task, o.matches[0]]));
  }
  // kpatch and quiesce check one global instant: what their check sees is a different task list.
  if (options.model === "quiesce") {
    const q = predictQuiesce(capture, req.symbols);
    const k = withKpatchTasks(q.capture, req.symbols, options.direction, applied);
    capture = k.capture;
    notes = TaskNotes.merged(q.notes, k.notes);
  } else if (options.model === "kpatch") {
    ({ capture, notes } = withKpatchTasks(capture, req.symbols, options.direction, applied));
  }
  const resolved = resolveFrames(capture, req.symbols);
  // A stack the user gave (--applied) is in the order given; a captured one may be by name only.
  const orderKnown = req.applied !== undefined || !req.capture.warnings.some((w) => w.code === "livepatch-order-unknown" || w.code === "kpatch-order-unknown");
  const ranges = buildRanges(req.patch, req.symbols, resolved, { model: options.model, direction: options.direction, applied, orderKnown });
  const stacking = stackingBefore51(req.capture.host.release, options, req.patch.name, applied);
  if (stacking !== null) ranges.warnings.push(stacking);
  const hits = scanCapture(req.scanner, capture, resolved, ranges);
  // A patch without a name cannot be told apart from the one in transition: taken as another.
  const ownTransition = req.patch.name !== null && applied.some((p) => p.name === req.patch.name && p.transition);
  const inTransition = options.direction === "apply" && ownTransition;
  const alreadyEnabled = options.direction === "apply" && req.patch.name !== null && applied.some((p) => p.name === req.patch.name && p.enabled && !p.transition);
  const otherTransition = applied.find((p) => p.transition && (req.patch.name === null || p.name !== req.patch.name))?.name ?? null;
  const verdict = decideLivepatch({ capture, table: req.symbols, resolved, ranges, hits, notes, inTransition, ownTransition, otherTransition, alreadyEnabled, traceable: req.traceable ?? req.capture.traceable ?? null, sectionOfName: req.sectionOfName ?? null, doubts, appliedGiven: req.applied !== undefined, taskKernel: req.scanner.taskKernel?.() ?? null }, options, req.rules);
  // For quiesce, `baseline` is what quiescing buys: the same global check over the stacks as captured.
  return { capture, symbols: req.symbols, resolved, ranges, hits, verdict, notes: notes ?? new TaskNotes(), baseline };
}
