/**
 * Shared types of the range scan: scan keys (one u64 per kernel stack frame) against u64
 * address ranges. Every implementation (wasm release, wasm debug, reference) takes the same
 * input and returns the same hits, so they can be tested against each other.
 *
 * u64 values are passed as little-endian u32 pairs: element 2*i = low 32 bits, 2*i+1 = high
 * 32 bits. That is the in-memory layout of a u64 on every supported (little-endian) host, so
 * the arrays are copied into wasm memory as they are.
 */
import type { TaskKernel } from "../decide/taskKernel.js";

export interface ScanInput {
  /** 2 per frame; key (0,0) = no key, never matches. */
  keys: Uint32Array;
  /** Length tasks+1, non-decreasing, last = frame count; frames of task t are [start[t], start[t+1]). */
  taskFrameStart: Uint32Array;
  /** 2 per range. */
  rangeStart: Uint32Array;
  /** 2 per range, INCLUSIVE last address (a half-open [lo,hi) becomes last = hi-1); last >= start. */
  rangeLast: Uint32Array;
}

/**
 * Every (frame, range) pair whose key lies in the range, sorted by frame ascending, then range
 * ascending. The arrays have exactly `count` elements and belong to the caller.
 */
export interface ScanHits {
  count: number;
  /** Task index of the frame (taskFrameStart[task] <= frame < taskFrameStart[task+1]). */
  task: Uint32Array;
  /** Global frame index (index into keys / 2). */
  frame: Uint32Array;
  /** Index into the caller's rangeStart / rangeLast (/ 2). */
  range: Uint32Array;
}

/**
 * The same hits as ScanHits (same order, `count` elements per array), BORROWED from the scanner
 * that returned them: the arrays may be views on the scanner's own memory (the wasm kernel's
 * output columns) or on scratch it reuses. They are valid until the next call of any method of
 * that scanner (scan, scanView, or a benchmark baseline), which may overwrite them, or detach
 * them (length 0) when wasm memory grows. Read them right away, or copy what must outlive the
 * next call (`view.frame.slice()`); never keep a view itself. Writing into them does not affect
 * the scanner's later results, only what this view reads.
 */
export interface ScanHitsView {
  readonly count: number;
  /**
   * May be computed when first read (from the input's taskFrameStart, which the view keeps
   * until then: do not change it in between); a caller that scanned one task need not read it.
   */
  readonly task: Uint32Array;
  readonly frame: Uint32Array;
  readonly range: Uint32Array;
}

export interface Scanner {
  readonly kind: "wasm-release" | "wasm-debug" | "reference" | "typescript";
  /** Validates `input` (PatchsafeError E_SCAN_INPUT) and returns every hit. Does not keep `input`. */
  scan(input: ScanInput): ScanHits;
  /**
   * scan() without copying the hits out: the same validation and hits, as a ScanHitsView that
   * the next call on this scanner may overwrite. For callers that consume the hits at once (the
   * pipeline's scan of shared frame rows). Optional for scanners written outside patchsafe;
   * patchsafe's own (wasm release and debug, the TypeScript port, the reference) all have it.
   */
  scanView?(input: ScanInput): ScanHitsView;
  /** Optional: a task kernel (src/decide/taskKernel.ts) for the decision's per-task loops, made on first use. */
  taskKernel?(): TaskKernel | null;
}

/** A Scanner whose scanView() is present (every scanner patchsafe creates). */
export interface ViewScanner extends Scanner {
  scanView(input: ScanInput): ScanHitsView;
}
