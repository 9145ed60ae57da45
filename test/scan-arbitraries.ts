/**
 * Shared by the scan tests (scan.test.ts, scan-view.test.ts): u64 helpers, hit comparison, and
 * the fast-check arbitraries of scan inputs (ranges that touch, nest, duplicate and straddle;
 * keys at and next to their boundaries).
 */
import fc from "fast-check";
import { expect } from "vitest";
import type { ScanHitsView, ScanInput } from "../src/scan/index.js";

export const U64_MAX = (1n << 64n) - 1n;
export const K = 0xffffffff81000000n; // x86-64 kernel text base
export const M = 0xffffffffc0000000n; // module area

export function pairs(values: readonly bigint[]): Uint32Array {
  const out = new Uint32Array(values.length * 2);
  values.forEach((v, i) => {
    out[2 * i] = Number(v & 0xffffffffn);
    out[2 * i + 1] = Number(v >> 32n);
  });
  return out;
}

export function makeInput(keys: readonly bigint[], taskFrameStart: readonly number[], ranges: readonly (readonly [bigint, bigint])[]): ScanInput {
  return {
    keys: pairs(keys),
    taskFrameStart: Uint32Array.from(taskFrameStart),
    rangeStart: pairs(ranges.map((r) => r[0])),
    rangeLast: pairs(ranges.map((r) => r[1])),
  };
}

export type PlainHits = { count: number; task: number[]; frame: number[]; range: number[] };

/**
 * Compares hits without handing vitest huge arrays to diff (that takes minutes and can exhaust
 * the heap): locates the first differing hit and diffs a few hits around it.
 */
export function expectSameHits(actual: ScanHitsView, expected: PlainHits, label?: string): void {
  const a = plain(actual);
  const n = Math.min(a.count, expected.count);
  let i = 0;
  while (i < n && a.task[i] === expected.task[i] && a.frame[i] === expected.frame[i] && a.range[i] === expected.range[i]) i++;
  if (i === n && a.count === expected.count) return;
  const window = (h: PlainHits) => ({
    count: h.count,
    firstDifferenceAt: i,
    task: h.task.slice(Math.max(0, i - 2), i + 3),
    frame: h.frame.slice(Math.max(0, i - 2), i + 3),
    range: h.range.slice(Math.max(0, i - 2), i + 3),
  });
  expect(window(a), label).toEqual(window(expected));
}

/** Plain arrays so a mismatch prints a readable diff. */
export function plain(h: ScanHitsView): PlainHits {
  expect(h.task.length).toBe(h.count);
  expect(h.frame.length).toBe(h.count);
  expect(h.range.length).toBe(h.count);
  return { count: h.count, task: [...h.task], frame: [...h.frame], range: [...h.range] };
}

/** Addresses near the interesting places: 1, kernel text, modules, the top of u64, anywhere. */
export const addrArb = fc.oneof(
  fc.bigInt({ min: 1n, max: 64n }),
  fc.bigInt({ min: 0n, max: 0x3fffn }).map((o) => K + o),
  fc.bigInt({ min: 0n, max: 0x3fffn }).map((o) => M + o),
  fc.bigInt({ min: 0n, max: 64n }).map((o) => U64_MAX - o),
  fc.bigInt({ min: 1n, max: U64_MAX }),
);
export const lenArb = fc.oneof(
  fc.constant(0n),
  fc.bigInt({ min: 0n, max: 16n }),
  fc.bigInt({ min: 0n, max: 0x1000n }),
  fc.bigInt({ min: 0n, max: U64_MAX }),
);
export const clampLast = (start: bigint, len: bigint): bigint => (start + len > U64_MAX ? U64_MAX : start + len);

export type Range = readonly [bigint, bigint];
export const baseRangeArb = fc.tuple(addrArb, lenArb).map(([s, l]): Range => [s, clampLast(s, l)]);

/** Ranges derived from earlier ones: touching after/before, duplicates, nested, overlapping. */
export const deriveOpArb = fc.tuple(fc.nat(), fc.constantFrom("after", "before", "dup", "inner", "straddle"), lenArb);
export function derive(ranges: Range[], [pick, op, len]: [number, string, bigint]): void {
  if (ranges.length === 0) return;
  const [s, l] = ranges[pick % ranges.length]!;
  switch (op) {
    case "after":
      if (l < U64_MAX) ranges.push([l + 1n, clampLast(l + 1n, len)]);
      break;
    case "before":
      if (s > 1n) ranges.push([s - 1n - (len % (s - 1n)), s - 1n]);
      break;
    case "dup":
      ranges.push([s, l]);
      break;
    case "inner": {
      const a = s + (len % (l - s + 1n));
      ranges.push([a, a + ((l - a) >> 1n)]);
      break;
    }
    case "straddle": {
      const a = s + ((l - s) >> 1n);
      ranges.push([a, clampLast(l, len + 1n)]);
      break;
    }
  }
}

export const rangesArb = fc
  .tuple(fc.array(baseRangeArb, { maxLength: 24 }), fc.array(deriveOpArb, { maxLength: 24 }), fc.boolean())
  .map(([base, ops, bigInput]) => {
    const ranges = [...base];
    for (const op of ops) derive(ranges, op);
    if (bigInput) {
      // occasionally many ranges, so the wasm buffers must grow on reused instances
      for (let i = 0; i < 400; i++) ranges.push([K + BigInt(i) * 0x40n, K + BigInt(i) * 0x40n + 0x3fn + BigInt(i % 3) * 0x40n]);
    }
    return ranges;
  });

/** Keys: no-key, the extremes, anywhere, and exactly at / next to range boundaries. */
export function keyArb(ranges: readonly Range[]): fc.Arbitrary<bigint> {
  const plainKeys = fc.oneof(fc.constant(0n), fc.constant(U64_MAX), fc.constant(1n), addrArb);
  if (ranges.length === 0) return plainKeys;
  const boundary = fc.tuple(fc.nat(ranges.length - 1), fc.constantFrom("start", "last", "after", "before")).map(([i, where]) => {
    const [s, l] = ranges[i]!;
    switch (where) {
      case "start":
        return s;
      case "last":
        return l;
      case "after":
        return l === U64_MAX ? U64_MAX : l + 1n;
      default:
        return s - 1n; // s >= 1, so this may be 0 (no key), which must not match
    }
  });
  return fc.oneof({ arbitrary: plainKeys, weight: 1 }, { arbitrary: boundary, weight: 2 });
}

export const inputArb: fc.Arbitrary<ScanInput> = rangesArb.chain((ranges) =>
  fc
    .tuple(fc.array(keyArb(ranges), { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean())
    .map(([keys, cuts, noTasks]) => {
      // random task split: sorted cut points in [0, frames], possibly repeated (empty tasks)
      let taskFrameStart: number[];
      if (keys.length === 0 && noTasks) taskFrameStart = [0]; // zero tasks
      else {
        const inner = cuts.map((c) => c % (keys.length + 1)).sort((a, b) => a - b);
        taskFrameStart = [0, ...inner, keys.length];
      }
      return makeInput(keys, taskFrameStart, ranges);
    }),
);
