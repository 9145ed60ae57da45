/**
 * The pipeline without I/O: capture + symbol table + patch → resolve → ranges → scan → decide.
 * The CLI and the library API both call this; nothing here touches files or the process.
 */
import { decideLivepatch, type DecideOptions } from "./decide/livepatch.js";
import type { Verdict } from "./decide/verdict.js";
import { PatchsafeError } from "./errors.js";
import type { Capture } from "./model.js";
import { buildRanges, type RangeTable } from "./patch/ranges.js";
import type { PatchSpec } from "./patch/spec.js";
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
}

export interface CheckResult {
  capture: Capture;
  symbols: SymbolTable | null;
  resolved: ResolvedFrames;
  ranges: RangeTable;
  hits: ScanHits;
  verdict: Verdict;
}

export const DEFAULT_OPTIONS: DecideOptions = { model: "livepatch", direction: "apply", partialOk: false, strict: false };

/** Lays the capture's frames and the blocking ranges out as the scan kernel's buffers. */
export function scanInputFor(capture: Capture, resolved: ResolvedFrames, ranges: RangeTable): ScanInput {
  const taskFrameStart = new Uint32Array(capture.tasks.length + 1);
  capture.tasks.forEach((t, i) => {
    taskFrameStart[i] = t.frameStart;
  });
  taskFrameStart[capture.tasks.length] = capture.frames.length;
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
  return { keys: resolved.keys.subarray(0, capture.frames.length * 2), taskFrameStart, rangeStart, rangeLast };
}

export function check(req: CheckRequest): CheckResult {
  const options: DecideOptions = { ...DEFAULT_OPTIONS, ...req.options };
  if (options.model !== "livepatch") {
    throw new PatchsafeError("E_UNSUPPORTED", `--model ${options.model} is not supported yet (only livepatch)`);
  }
  if (options.direction !== "apply") throw new PatchsafeError("E_UNSUPPORTED", "--revert is not supported yet");
  if (req.patch.replace) {
    // With nothing applied, a replace patch has no nops: the plain apply rules are exact.
  }
  const resolved = resolveFrames(req.capture, req.symbols);
  const ranges = buildRanges(req.patch, req.symbols, resolved);
  const hits = req.scanner.scan(scanInputFor(req.capture, resolved, ranges));
  const verdict = decideLivepatch({ capture: req.capture, table: req.symbols, resolved, ranges, hits }, options);
  return { capture: req.capture, symbols: req.symbols, resolved, ranges, hits, verdict };
}
