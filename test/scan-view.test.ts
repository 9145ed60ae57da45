/**
 * scanView(): the scan's hits as views the scanner lends until its next call (ScanHitsView).
 * The wasm release and debug kernels, the TypeScript port and the reference against the BigInt
 * reference on seeded random inputs; the lifetime contract (copies taken before the next call
 * stay right, owned scan() results are never touched, a view is really overwritten or detached
 * afterwards, writing into a view changes no later result); the drained path (hits that did not
 * fit in the kernel's columns); and scanCapture(), which reads shared rows through scanView(),
 * against the reference path. Needs build/scan*.wasm and build/tokenize.wasm (npm run asbuild).
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { scanCapture } from "../src/check.js";
import { generateProcDump } from "../src/generate/procDump.js";
import { encodeLatin1 } from "../src/ingest/bytes.js";
import { parseCaptures } from "../src/ingest/detect.js";
import { ProcTokenizer } from "../src/ingest/procTokenizer.js";
import type { Capture } from "../src/model.js";
import { loadScanModuleSync, loadTokenizerModuleSync } from "../src/node/wasm.js";
import type { BlockingRange, RangeTable } from "../src/patch/ranges.js";
import {
  createWasmScanner,
  referenceScanner,
  tsScanner,
  type ScanHits,
  type ScanHitsView,
  type ScanInput,
  type Scanner,
  type ViewScanner,
  type WasmScannerOptions,
} from "../src/scan/index.js";
import { resolveFrames, type ResolvedFrames } from "../src/symbols/resolve.js";
import { hostCapture, hostTable } from "./helpers.js";
import { expectSameHits, inputArb, K, M, makeInput, plain, type PlainHits, type Range } from "./scan-arbitraries.js";

const wasm = (build: "release" | "debug", options?: WasmScannerOptions): ViewScanner =>
  createWasmScanner(loadScanModuleSync(build), build === "release" ? "wasm-release" : "wasm-debug", options);

// Reused instances (buffers grow and views detach as inputs need more). The small ones drain
// their hit columns mid-scan on most inputs: their views come from the host scratch arrays.
const scanners: readonly (readonly [string, ViewScanner])[] = [
  ["release", wasm("release")],
  ["debug", wasm("debug")],
  ["release keyChunk=5 hitCapacity=3", wasm("release", { keyChunk: 5, hitCapacity: 3 })],
  ["debug keyChunk=3 hitCapacity=1", wasm("debug", { keyChunk: 3, hitCapacity: 1 })],
  ["release keyChunk=64 hitCapacity=7", wasm("release", { keyChunk: 64, hitCapacity: 7 })],
  ["typescript", tsScanner],
  ["reference", referenceScanner],
];

/** What a consumer keeps: its own copy of the view, taken before the scanner's next call. */
function copyOf(v: ScanHitsView): ScanHits {
  return { count: v.count, task: v.task.slice(), frame: v.frame.slice(), range: v.range.slice() };
}

describe("scanView: differential against the BigInt reference", () => {
  test("seeded random inputs, each view checked before the next call", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const expected = plain(referenceScanner.scan(input));
        for (const [name, s] of scanners) expectSameHits(s.scanView(input), expected, name);
      }),
      { seed: 0x5ca11ed, numRuns: 200 },
    );
  });

  test("seeded random pairs: copies taken before the next call stay right; scan() and scanView() interleave", () => {
    fc.assert(
      fc.property(inputArb, inputArb, (a, b) => {
        const ea = plain(referenceScanner.scan(a));
        const eb = plain(referenceScanner.scan(b));
        for (const [name, s] of scanners) {
          const va = s.scanView(a);
          const kept = copyOf(va);
          const ob = s.scan(b); // owned: must survive the calls below
          const vb = s.scanView(b);
          expectSameHits(vb, eb, `${name}: view of b`);
          const vbKept = copyOf(vb);
          const va2 = s.scanView(a);
          expectSameHits(va2, ea, `${name}: view of a again`);
          expectSameHits(kept, ea, `${name}: copy of a's view`);
          expectSameHits(vbKept, eb, `${name}: copy of b's view`);
          expectSameHits(ob, eb, `${name}: owned scan of b after later calls`);
        }
      }),
      { seed: 0x7e57ab1e, numRuns: 120 },
    );
  });
});

describe("scanView: the lifetime contract", () => {
  // 40 ranges, 4000 keys cycling over them (and gaps, and key 0): ~1 hit in 2 frames.
  const ranges: Range[] = Array.from({ length: 40 }, (_, i) => [K + BigInt(i) * 0x100n, K + BigInt(i) * 0x100n + 0x7fn] as Range);
  const keysOf = (n: number, salt: number): bigint[] => Array.from({ length: n }, (_, i) => (i % 17 === 0 ? 0n : K + BigInt(((i * 53 + salt) * 0x41) % 0x2800)));
  const a = makeInput(keysOf(4000, 1), [0, 1000, 1000, 4000], ranges);
  const b = makeInput(keysOf(3000, 7), [0, 3000], ranges);

  test.each(["release", "debug"] as const)("%s: a view is kernel memory, overwritten by the next call; copies and owned results are not", (build) => {
    const s = wasm(build);
    const ea = plain(referenceScanner.scan(a));
    const eb = plain(referenceScanner.scan(b));
    expect(ea.count).toBeGreaterThan(1000);
    const owned = s.scan(a);
    const va = s.scanView(a);
    expectSameHits(va, ea, "view of a");
    const kept = copyOf(va);
    // Another scanner's calls do not touch this scanner's view.
    const other = wasm(build);
    other.scanView(b);
    other.scan(b);
    expectSameHits(va, ea, "view of a after another scanner's calls");
    // The next call on the same scanner reuses the same columns: va now shows b's hits.
    const vb = s.scanView(b);
    expectSameHits(vb, eb, "view of b");
    expect(vb.frame.buffer).toBe(va.frame.buffer);
    expect(vb.frame.byteOffset).toBe(va.frame.byteOffset);
    expect([...va.frame.subarray(0, 50)]).toEqual([...vb.frame.subarray(0, 50)]);
    expect([...va.frame.subarray(0, 50)]).not.toEqual(ea.frame.slice(0, 50));
    // What the consumer copied, and what scan() returned, are unaffected.
    expectSameHits(kept, ea, "copy of a's view");
    expectSameHits(owned, ea, "owned scan of a");
  });

  test.each(["release", "debug"] as const)("%s: a call that grows wasm memory detaches earlier views (length 0), never leaves stale data", (build) => {
    const s = wasm(build);
    const ea = plain(referenceScanner.scan(a));
    const va = s.scanView(a);
    const kept = copyOf(va);
    // 100k ranges need ~7 MB more arena: memory.grow detaches the old ArrayBuffer.
    const many: Range[] = Array.from({ length: 100_000 }, (_, i) => [M + BigInt(i) * 0x40n, M + BigInt(i) * 0x40n + 0x3fn] as Range);
    const big = makeInput([M + 0x41n, K + 0x10n, M + 0x40n * 99_999n], [0, 3], many);
    expectSameHits(s.scanView(big), plain(referenceScanner.scan(big)), "view after growth");
    expect(va.frame.length).toBe(0);
    expect(va.range.length).toBe(0);
    expectSameHits(kept, ea, "copy of a's view");
    expectSameHits(s.scanView(a), ea, "view of a again");
  });

  test.each(scanners.map(([n]) => n))("%s: writing into a view changes no later result", (name) => {
    const s = scanners.find(([n]) => n === name)![1];
    const ea = plain(referenceScanner.scan(a));
    const eb = plain(referenceScanner.scan(b));
    for (let round = 0; round < 3; round++) {
      for (const [input, expected] of [[a, ea], [b, eb]] as const) {
        const v = s.scanView(input);
        expectSameHits(v, expected, `${name} round ${round}`);
        v.task.fill(0xdeadbeef);
        v.frame.fill(0xdeadbeef);
        v.range.fill(0xdeadbeef);
      }
      expectSameHits(s.scan(a), ea, `${name} owned, round ${round}`);
    }
  });

  test("views from the drained path (hits beyond the kernel's columns) and from the columns alternate", () => {
    // hitCapacity 64: a's ~2000 hits drain to the scratch arrays 30 times; a single-key input's
    // hit stays in the columns. Then a with a larger capacity (in the columns again), then a
    // larger input than any before (the scratch grows).
    const s = wasm("release", { keyChunk: 100, hitCapacity: 64 });
    const one = makeInput([K + 0x105n], [0, 1], ranges);
    const bigger = makeInput(keysOf(9000, 3), [0, 4500, 9000], ranges);
    const cases: [ScanInput, PlainHits][] = [a, one, b, one, bigger, a, bigger, one].map((i) => [i, plain(referenceScanner.scan(i))]);
    const kept: [ScanHits, PlainHits][] = [];
    for (const [i, [input, expected]] of cases.entries()) {
      const v = s.scanView(input);
      expectSameHits(v, expected, `case ${i}`);
      kept.push([copyOf(v), expected]);
    }
    for (const [i, [copy, expected]] of kept.entries()) expectSameHits(copy, expected, `copy ${i}`);
  });

  test("empty inputs give empty views", () => {
    for (const [name, s] of scanners) {
      for (const input of [makeInput([], [0], []), makeInput([K, K + 1n], [0, 2], []), makeInput([], [0, 0], [[K, K]]), makeInput([0n, M], [0, 2], [[K, K + 9n]])]) {
        expect(plain(s.scanView(input)), name).toEqual({ count: 0, task: [], frame: [], range: [] });
      }
    }
  });
});

// ---- scanCapture ----------------------------------------------------------------------------------

/** A RangeTable holding just the ranges (scanCapture reads nothing else). */
function rangeTable(ranges: readonly (readonly [bigint, bigint])[]): RangeTable {
  const rs: BlockingRange[] = ranges.map(([start, end], i) => ({ start, end, role: "original", func: i, kernelSees: true }) as BlockingRange);
  return { functions: [], ranges: rs, names: new Set(), unplaced: new Map(), warnings: [] };
}

/**
 * The reference path: every task's own frames laid out one after another (as scanInputFor does
 * for a capture without shared rows), scanned by the BigInt reference, frames mapped back to
 * the capture's rows. Ordered by task, then frame: scanCapture's order for shared rows.
 */
function referenceHits(capture: Capture, resolved: ResolvedFrames, ranges: RangeTable): PlainHits {
  const tasks = capture.tasks;
  const taskFrameStart = new Uint32Array(tasks.length + 1);
  for (let t = 0; t < tasks.length; t++) taskFrameStart[t + 1] = taskFrameStart[t]! + tasks.frameCount[t]!;
  const keys = new Uint32Array(2 * taskFrameStart[tasks.length]!);
  for (let t = 0; t < tasks.length; t++) {
    const row = tasks.frameStart[t]!;
    keys.set(resolved.keys.subarray(2 * row, 2 * (row + tasks.frameCount[t]!)), 2 * taskFrameStart[t]!);
  }
  const rangeStart = new Uint32Array(2 * ranges.ranges.length);
  const rangeLast = new Uint32Array(2 * ranges.ranges.length);
  ranges.ranges.forEach((r, i) => {
    rangeStart[2 * i] = Number(r.start & 0xffffffffn);
    rangeStart[2 * i + 1] = Number(r.start >> 32n);
    rangeLast[2 * i] = Number((r.end - 1n) & 0xffffffffn);
    rangeLast[2 * i + 1] = Number((r.end - 1n) >> 32n);
  });
  const h = plain(referenceScanner.scan({ keys, taskFrameStart, rangeStart, rangeLast }));
  return { ...h, frame: h.frame.map((f, i) => tasks.frameStart[h.task[i]!]! + (f - taskFrameStart[h.task[i]!]!)) };
}

describe("scanCapture: shared rows through scanView() equal the reference path", () => {
  const table = hostTable();
  const source = hostCapture("capture.json");
  const tokenizer = loadTokenizerModuleSync("release");
  const shared = (tasks: number, seed: number): Capture => {
    const { text } = generateProcDump(source, { tasks, seed, shape: "grep" });
    const [cap] = parseCaptures(encodeLatin1(text), "gen.txt", "proc", { procTokenizer: () => new ProcTokenizer(tokenizer) });
    expect(cap!.sharedRows).toBe(true);
    return cap!;
  };
  const captures = [shared(3000, 11), shared(400, 12)];
  const resolvedOf = captures.map((c) => resolveFrames(c, table));
  /** Every distinct non-zero key of the capture, for ranges that hit. */
  const keysOf = resolvedOf.map((r) => {
    const seen = new Set<bigint>();
    for (let i = 0; i < r.keys.length; i += 2) if ((r.keys[i]! | r.keys[i + 1]!) !== 0) seen.add((BigInt(r.keys[i + 1]!) << 32n) | BigInt(r.keys[i]!));
    return [...seen].sort((x, y) => (x < y ? -1 : 1));
  });
  // Half-open ranges around the capture's keys: containing one, ending right at one, nested,
  // duplicated, and some anywhere in kernel text.
  const rangesArb = (keys: bigint[]) =>
    fc.array(
      fc.oneof(
        fc.tuple(fc.nat(keys.length - 1), fc.bigInt({ min: 0n, max: 0x200n }), fc.bigInt({ min: 1n, max: 0x400n })).map(([i, before, after]): Range => [keys[i]! - before, keys[i]! + after]),
        fc.tuple(fc.nat(keys.length - 1), fc.bigInt({ min: 1n, max: 0x100n })).map(([i, len]): Range => [keys[i]! - len, keys[i]!]),
        fc.tuple(fc.bigInt({ min: 0n, max: 0x2000000n }), fc.bigInt({ min: 1n, max: 0x100000n })).map(([o, len]): Range => [K + o, K + o + len]),
      ),
      { minLength: 1, maxLength: 40 },
    );
  // A scanner written outside patchsafe (no scanView): scanCapture falls back to scan().
  const plainScanner: Scanner = { kind: "reference", scan: (input) => referenceScanner.scan(input) };
  const all: readonly (readonly [string, Scanner])[] = [
    ["release", wasm("release")],
    ["debug", wasm("debug")],
    ["release keyChunk=7 hitCapacity=5", wasm("release", { keyChunk: 7, hitCapacity: 5 })],
    ["typescript", tsScanner],
    ["reference", referenceScanner],
    ["scan() only", plainScanner],
  ];

  test.each([0, 1])("capture %i, seeded random ranges", (c) => {
    const capture = captures[c]!;
    const resolved = resolvedOf[c]!;
    fc.assert(
      fc.property(rangesArb(keysOf[c]!), (rs) => {
        const ranges = rangeTable(rs);
        const expected = referenceHits(capture, resolved, ranges);
        for (const [name, s] of all) {
          const hits = scanCapture(s, capture, resolved, ranges);
          expectSameHits(hits, expected, name);
          // The result is the caller's (CheckResult.hits): the scanner's next calls leave it alone.
          if (s.scanView !== undefined) s.scanView(makeInput([K + 0x10n, 0n, M], [0, 3], [[K, M]]));
          s.scan(makeInput([K + 0x20n], [0, 1], [[K, K + 0x40n]]));
          expectSameHits(hits, expected, `${name}, after later calls`);
        }
      }),
      { seed: 0x5ca7 + c, numRuns: c === 0 ? 15 : 40 },
    );
  });

  test("the hot functions of the host capture (many hits), and owned rows unchanged", () => {
    const names = ["do_epoll_wait", "worker_thread", "smpboot_thread_fn", "schedule", "__schedule", "futex_wait"];
    const rs: Range[] = [];
    for (const n of names) {
      const row = table.byName.get(n)?.[0];
      if (row === undefined) continue;
      const start = (BigInt(table.addrHi[row]!) << 32n) | BigInt(table.addrLo[row]!);
      rs.push([start, start + BigInt(table.size[row]!)]);
    }
    expect(rs.length).toBeGreaterThan(2);
    const ranges = rangeTable(rs);
    const expected = referenceHits(captures[0]!, resolvedOf[0]!, ranges);
    expect(expected.count).toBeGreaterThan(1000);
    for (const [name, s] of all) expectSameHits(scanCapture(s, captures[0]!, resolvedOf[0]!, ranges), expected, name);
    // A capture without shared rows takes scan()'s owned arrays, in frame order.
    const owned = parseCaptures(encodeLatin1(generateProcDump(source, { tasks: 500, seed: 13, shape: "grep" }).text), "gen.txt", "proc")[0]!;
    expect(owned.sharedRows).toBeFalsy();
    const ro = resolveFrames(owned, table);
    const eo = referenceHits(owned, ro, ranges);
    for (const [name, s] of all) {
      const hits = scanCapture(s, owned, ro, ranges);
      expectSameHits(hits, eo, `${name}, owned rows`);
      s.scan(makeInput([K + 0x20n], [0, 1], [[K, K + 0x40n]]));
      expectSameHits(hits, eo, `${name}, owned rows after a later call`);
    }
  });
});
