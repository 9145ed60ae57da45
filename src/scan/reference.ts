/**
 * The obviously-correct range scan: for each frame, for each range, test start <= key <= last
 * with BigInt. O(frames x ranges); the differential oracle for the wasm kernel, not for
 * production use. Also home of the input validation every scanner runs first.
 */
import { PatchsafeError } from "../errors.js";
import type { ScanHits, ScanHitsView, ScanInput, ViewScanner } from "./types.js";

function u64At(pairs: Uint32Array, i: number): bigint {
  return (BigInt(pairs[2 * i + 1]!) << 32n) | BigInt(pairs[2 * i]!);
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function fail(message: string): never {
  throw new PatchsafeError("E_SCAN_INPUT", message);
}

/**
 * Throws PatchsafeError("E_SCAN_INPUT") naming the offending value when `input` is malformed:
 * a field that is not a Uint32Array, an odd u32-pair array, range arrays of different lengths,
 * taskFrameStart empty / not starting at 0 / decreasing / not ending at the frame count, or a
 * range whose last is below its start.
 */
export function validateScanInput(input: ScanInput): void {
  validateScanShape(input);
  validateScanRanges(input.rangeStart, input.rangeLast);
}

/**
 * validateScanInput() without the per-range check (last >= start): for a caller that knows the
 * ranges are valid (the wasm scanner, when they equal ranges it validated and installed before).
 */
export function validateScanShape(input: ScanInput): void {
  if (input === null || typeof input !== "object") fail(`scan input must be an object, got ${String(input)}`);
  for (const name of ["keys", "taskFrameStart", "rangeStart", "rangeLast"] as const) {
    const v: unknown = input[name];
    if (!(v instanceof Uint32Array)) {
      fail(`scan input ${name} must be a Uint32Array, got ${v === null ? "null" : typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v}`);
    }
  }
  const { keys, taskFrameStart, rangeStart, rangeLast } = input;
  if (keys.length % 2 !== 0) fail(`scan input keys has odd length ${keys.length} (expected 2 u32 per frame)`);
  if (rangeStart.length % 2 !== 0) fail(`scan input rangeStart has odd length ${rangeStart.length} (expected 2 u32 per range)`);
  if (rangeLast.length % 2 !== 0) fail(`scan input rangeLast has odd length ${rangeLast.length} (expected 2 u32 per range)`);
  if (rangeLast.length !== rangeStart.length) {
    fail(`scan input rangeLast has length ${rangeLast.length}, rangeStart has ${rangeStart.length} (must be equal)`);
  }
  const frames = keys.length / 2;
  if (taskFrameStart.length === 0) fail("scan input taskFrameStart is empty (expected tasks+1 entries, at least [0])");
  if (taskFrameStart[0] !== 0) fail(`scan input taskFrameStart[0] = ${taskFrameStart[0]} (must be 0)`);
  for (let t = 1; t < taskFrameStart.length; t++) {
    if (taskFrameStart[t]! < taskFrameStart[t - 1]!) {
      fail(`scan input taskFrameStart[${t}] = ${taskFrameStart[t]} is less than taskFrameStart[${t - 1}] = ${taskFrameStart[t - 1]} (must be non-decreasing)`);
    }
  }
  const lastStart = taskFrameStart[taskFrameStart.length - 1]!;
  if (lastStart !== frames) {
    fail(`scan input taskFrameStart[${taskFrameStart.length - 1}] = ${lastStart} does not equal the frame count ${frames}`);
  }
}

/** The per-range part of validateScanInput(): every range's last is at or above its start. */
export function validateScanRanges(rangeStart: Uint32Array, rangeLast: Uint32Array): void {
  const ranges = rangeStart.length / 2;
  for (let r = 0; r < ranges; r++) {
    const sh = rangeStart[2 * r + 1]!;
    const lh = rangeLast[2 * r + 1]!;
    // compare (hi, lo) as u64 without BigInt; only format with BigInt on failure
    if (lh < sh || (lh === sh && rangeLast[2 * r]! < rangeStart[2 * r]!)) {
      fail(`scan input range ${r}: last ${hex(u64At(rangeLast, r))} is below start ${hex(u64At(rangeStart, r))}`);
    }
  }
}

export const referenceScanner: ViewScanner = {
  kind: "reference",
  /** scan() itself: its arrays are new per call (it has no memory to lend). */
  scanView(input: ScanInput): ScanHitsView {
    return referenceScanner.scan(input);
  },
  scan(input: ScanInput): ScanHits {
    validateScanInput(input);
    const ranges = input.rangeStart.length / 2;
    const start: bigint[] = [];
    const last: bigint[] = [];
    for (let r = 0; r < ranges; r++) {
      start.push(u64At(input.rangeStart, r));
      last.push(u64At(input.rangeLast, r));
    }
    const hitTask: number[] = [];
    const hitFrame: number[] = [];
    const hitRange: number[] = [];
    const tasks = input.taskFrameStart.length - 1;
    for (let t = 0; t < tasks; t++) {
      for (let f = input.taskFrameStart[t]!; f < input.taskFrameStart[t + 1]!; f++) {
        const key = u64At(input.keys, f);
        if (key === 0n) continue;
        for (let r = 0; r < ranges; r++) {
          if (start[r]! <= key && key <= last[r]!) {
            hitTask.push(t);
            hitFrame.push(f);
            hitRange.push(r);
          }
        }
      }
    }
    return {
      count: hitFrame.length,
      task: Uint32Array.from(hitTask),
      frame: Uint32Array.from(hitFrame),
      range: Uint32Array.from(hitRange),
    };
  },
};
