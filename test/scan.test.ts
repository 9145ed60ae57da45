/**
 * The range scan: wasm release and debug kernels against the BigInt reference on seeded random
 * inputs, the wasm import/export surface, input validation, and a hand-computed kernel-like case.
 * Needs build/scan.wasm and build/scan.debug.wasm (npm run asbuild).
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { loadScanModuleSync, loadWasmScannerSync } from "../src/node/wasm.js";
import {
  loadWasmScannerFromUrl,
  createWasmScanner,
  referenceScanner,
  SCAN_EXPORTED_FUNCTIONS,
  tsScanner,
  scanWasmUrl,
  type ScanInput,
  type Scanner,
} from "../src/scan/index.js";
import { K, M, U64_MAX, expectSameHits, inputArb, makeInput, pairs, plain, type Range } from "./scan-arbitraries.js";


// One instance per configuration, reused across all runs: buffers grow (and views detach) as
// later inputs need more ranges. The tiny ones force chunk boundaries and hit-buffer resumes on
// almost every input (the hit limit is max(hitCapacity, range count)).
const release = loadWasmScannerSync("release");
const debug = loadWasmScannerSync("debug");
const wasmScanners: readonly (readonly [string, Scanner])[] = [
  ["release", release],
  ["debug", debug],
  ["release keyChunk=5 hitCapacity=3", loadWasmScannerSync("release", { keyChunk: 5, hitCapacity: 3 })],
  ["debug keyChunk=3 hitCapacity=1", loadWasmScannerSync("debug", { keyChunk: 3, hitCapacity: 1 })],
  ["release keyChunk=1 hitCapacity=1", loadWasmScannerSync("release", { keyChunk: 1, hitCapacity: 1 })],
];

// ---- (a) differential (inputs: scan-arbitraries.ts) -----------------------------------------------

describe("differential: wasm release / debug vs BigInt reference", () => {
  test("seeded random inputs", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const expected = plain(referenceScanner.scan(input));
        for (const [name, scanner] of wasmScanners) {
          expectSameHits(scanner.scan(input), expected, name);
        }
        expectSameHits(tsScanner.scan(input), expected, "typescript");
      }),
      { seed: 0x5ca11ed, numRuns: 200 },
    );
  });

  test("more hits than the default hit buffer, many ranges nested around one key", () => {
    // 300 ranges all containing [K+0x1000, K+0x1fff], 400 keys inside -> 120,000 hits (> 65,536),
    // and 300 hits per key (the kernel's heapsort path for > 32 hits per key).
    const ranges: Range[] = [];
    for (let i = 0; i < 300; i++) ranges.push([K + 0x1000n - BigInt((i * 7919) % 0x800), K + 0x1fffn + BigInt((i * 104729) % 0x900)]);
    const keys: bigint[] = [];
    for (let i = 0; i < 400; i++) keys.push(i % 50 === 0 ? 0n : K + 0x1000n + BigInt((i * 37) % 0x1000));
    const input = makeInput(keys, [0, 100, 100, 399, 400], ranges);
    const expected = plain(referenceScanner.scan(input));
    expect(expected.count).toBe(392 * 300);
    for (const [name, scanner] of [...wasmScanners.slice(0, 3), ["typescript", tsScanner] as const]) {
      expectSameHits(scanner.scan(input), expected, name);
    }
  });

  test("deeply nested ranges and one range spanning everything (the kernel's tree path)", () => {
    // ranges i: [K+i, K+4000-i] nest 1000 deep; range 1000 spans all of them. Every key sees
    // long walks, so hits come from the tree query; keys outside and at every boundary too.
    const ranges: Range[] = [];
    for (let i = 0; i < 1000; i++) ranges.push([K + BigInt(i), K + 4000n - BigInt(i)]);
    ranges.push([K - 0x100000n, K + 0x100000n]);
    ranges.push([K + 0x10n, K + 0x10n]); // a single byte inside the nest
    const keys: bigint[] = [];
    for (let i = 0; i < 700; i++) keys.push(K - 2n + BigInt((i * 6151) % 4010));
    keys.push(K - 0x100000n, K - 0x100001n, K + 0x100000n, K + 0x100001n, K + 2000n, K + 2001n, K + 0x10n);
    const input = makeInput(keys, [0, 350, keys.length], ranges.reverse());
    const expected = plain(referenceScanner.scan(input));
    for (const [name, scanner] of wasmScanners) expectSameHits(scanner.scan(input), expected, name);
    expectSameHits(tsScanner.scan(input), expected, "typescript");
  });

  test("300k shuffled disjoint ranges and 150k keys (buffer growth, several key chunks)", () => {
    // range r = [K + 32r, K + 32r + 15], given in a shuffled order; key f = K + 16f, so even f
    // hits range perm^-1(f/2) and odd f falls into a gap.
    const R = 300_000;
    const F = 150_000;
    const order = Uint32Array.from({ length: R }, (_, i) => i);
    let seed = 12345;
    for (let i = R - 1; i > 0; i--) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const j = seed % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const whereIs = new Uint32Array(R); // sorted position -> caller index
    const rangeStart = new Uint32Array(2 * R);
    const rangeLast = new Uint32Array(2 * R);
    const kLo = Number(K & 0xffffffffn);
    for (let caller = 0; caller < R; caller++) {
      const pos = order[caller]!;
      whereIs[pos] = caller;
      rangeStart[2 * caller] = kLo + 32 * pos;
      rangeStart[2 * caller + 1] = 0xffffffff;
      rangeLast[2 * caller] = kLo + 32 * pos + 15;
      rangeLast[2 * caller + 1] = 0xffffffff;
    }
    const keys = new Uint32Array(2 * F);
    for (let f = 0; f < F; f++) {
      keys[2 * f] = kLo + 16 * f;
      keys[2 * f + 1] = 0xffffffff;
    }
    const input: ScanInput = { keys, taskFrameStart: Uint32Array.from([0, 1000, 70_000, F]), rangeStart, rangeLast };
    const expFrame: number[] = [];
    const expRange: number[] = [];
    const expTask: number[] = [];
    for (let f = 0; f < F; f += 2) {
      expFrame.push(f);
      expRange.push(whereIs[f / 2]!);
      expTask.push(f < 1000 ? 0 : f < 70_000 ? 1 : 2);
    }
    const expected = { count: expFrame.length, task: expTask, frame: expFrame, range: expRange };
    for (const [name, scanner] of [["release", release], ["debug", debug], ["typescript", tsScanner]] as const) {
      expectSameHits(scanner.scan(input), expected, name);
    }
  });

  test("empty inputs", () => {
    const cases: ScanInput[] = [
      makeInput([], [0], []), // no tasks
      makeInput([], [0, 0, 0], [[K, K + 10n]]), // tasks without frames
      makeInput([K, K + 1n], [0, 2], []), // no ranges
      makeInput([0n, 0n], [0, 1, 2], [[1n, U64_MAX]]), // only no-key frames
    ];
    for (const input of cases) {
      for (const scanner of [referenceScanner, tsScanner, ...wasmScanners.map((s) => s[1])]) {
        expect(plain(scanner.scan(input))).toEqual({ count: 0, task: [], frame: [], range: [] });
      }
    }
  });
});

// ---- (b, c) import / export surface --------------------------------------------------------------

/** Minimal wasm binary reader: the (params, results) value types of every exported function. */
function exportedSignatures(bytes: Uint8Array): Map<string, { params: number[]; results: number[] }> {
  let p = 8; // magic + version
  const u32 = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[p++]!;
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  };
  const name = (): string => {
    const n = u32();
    const s = new TextDecoder().decode(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const types: { params: number[]; results: number[] }[] = [];
  const funcTypes: number[] = []; // imported functions first, then defined ones
  const exports: [string, number][] = [];
  while (p < bytes.length) {
    const id = bytes[p++]!;
    const size = u32();
    const end = p + size;
    if (id === 1) {
      for (let n = u32(); n > 0; n--) {
        expect(bytes[p++]).toBe(0x60);
        const params = Array.from({ length: u32() }, () => bytes[p++]!);
        const results = Array.from({ length: u32() }, () => bytes[p++]!);
        types.push({ params, results });
      }
    } else if (id === 2) {
      for (let n = u32(); n > 0; n--) {
        name();
        name();
        const kind = bytes[p++]!;
        expect(kind, "only function imports").toBe(0);
        funcTypes.push(u32());
      }
    } else if (id === 3) {
      for (let n = u32(); n > 0; n--) funcTypes.push(u32());
    } else if (id === 7) {
      for (let n = u32(); n > 0; n--) {
        const nm = name();
        const kind = bytes[p++]!;
        const index = u32();
        if (kind === 0) exports.push([nm, index]);
      }
    }
    p = end;
  }
  return new Map(exports.map(([nm, index]) => [nm, types[funcTypes[index]!]!]));
}

describe.each(["release", "debug"] as const)("wasm surface (%s)", (build) => {
  const module = loadScanModuleSync(build);

  test("imports exactly env.abort", () => {
    expect(WebAssembly.Module.imports(module)).toEqual([{ module: "env", name: "abort", kind: "function" }]);
  });

  test("exports memory plus the numeric-ABI functions, nothing else", () => {
    const exps = WebAssembly.Module.exports(module);
    expect(exps.filter((e) => e.kind === "memory").map((e) => e.name)).toEqual(["memory"]);
    expect(exps.filter((e) => e.kind === "function").map((e) => e.name).sort()).toEqual([...SCAN_EXPORTED_FUNCTIONS].sort());
    expect(exps.length).toBe(SCAN_EXPORTED_FUNCTIONS.length + 1);

    const I32 = 0x7f;
    const sigs = exportedSignatures(new Uint8Array(readFileSync(scanWasmUrl(build))));
    for (const fn of SCAN_EXPORTED_FUNCTIONS) {
      const sig = sigs.get(fn)!;
      expect(sig.params.every((t) => t === I32), `${fn} params`).toBe(true);
      expect(sig.results.every((t) => t === I32) && sig.results.length <= 1, `${fn} results`).toBe(true);
    }
    expect(sigs.get("scan")).toEqual({ params: [I32, I32, I32, I32], results: [I32] });
    expect(sigs.get("reserve")).toEqual({ params: [I32, I32, I32], results: [I32] });
    expect(sigs.get("setRanges")).toEqual({ params: [I32], results: [I32] });
    expect(sigs.get("sumKeys")).toEqual({ params: [I32, I32], results: [I32] });
  });

  test("benchmark baselines: memoryFloor sums every key (xor-folded u64 sum per chunk), interopOnly moves them", () => {
    const scanner = createWasmScanner(module, build === "release" ? "wasm-release" : "wasm-debug", { keyChunk: 3 });
    const keys = pairs([K + 1n, 0n, M + 5n, 7n, U64_MAX]);
    // chunks of 3 keys: the result xors each chunk's folded sum
    const fold = (vals: bigint[]): number => {
      const s = vals.reduce((a, b) => (a + b) & U64_MAX, 0n);
      return Number((s ^ (s >> 32n)) & 0xffffffffn);
    };
    expect(scanner.memoryFloor(keys)).toBe((fold([K + 1n, 0n, M + 5n]) ^ fold([7n, U64_MAX])) >>> 0);
    expect(scanner.interopOnly(new Uint32Array(0))).toBe(0);
    expect(scanner.interopOnly(keys)).toBe((3 ^ 2) >>> 0);
    // still a working scanner afterwards
    expect(plain(scanner.scan(makeInput([K + 5n], [0, 1], [[K, K + 9n]])))).toEqual({ count: 1, task: [0], frame: [0], range: [0] });
  });
});

test("the kernel's memo of repeated keys: new ranges on a reused instance, hits resumed mid-key, colliding slots", () => {
  // The same few keys over and over (as in real stacks), scanned against one range set, then
  // another on the same instances: a memo surviving setRanges would answer from old ranges.
  const keys: bigint[] = [];
  for (let i = 0; i < 3000; i++) keys.push(K + BigInt((i % 7) * 0x100 + 0x10), K + BigInt(0x5000 + (i % 4099) * 0x1000));
  const a = makeInput(keys, [0, 1000, keys.length], [[K, K + 0x2ffn], [K + 0x100n, K + 0x1ffn], [K + 0x5000n, K + 0x5fffn]]);
  const b = makeInput(keys, [0, keys.length], [[K + 0x200n, K + 0x6ffn], [K + 0x6000n, K + 0x9000n]]);
  for (const input of [a, b, a]) {
    const expected = plain(referenceScanner.scan(input));
    for (const [name, scanner] of wasmScanners) expectSameHits(scanner.scan(input), expected, name);
    expectSameHits(tsScanner.scan(input), expected, "typescript");
  }
});

test("the same ranges again stay installed: new keys, grown buffers and baselines in between", () => {
  const ranges: Range[] = [[K, K + 0xffn], [K + 0x80n, K + 0x17fn], [M, M + 0x10n]].map(([a, b]) => [a, b] as Range);
  const scanner = createWasmScanner(loadScanModuleSync("release"), "wasm-release", { keyChunk: 4, hitCapacity: 2 });
  const inputs: ScanInput[] = [];
  for (let round = 0; round < 6; round++) {
    const keys: bigint[] = [];
    for (let i = 0; i < 20 + round * 300; i++) keys.push([K + BigInt((i * 37 + round) % 0x200), M + BigInt(i % 0x20), 0n][i % 3]!);
    inputs.push(makeInput(keys, [0, keys.length], ranges));
  }
  // more ranges in between grows the range buffers (a reallocation drops the installed ones)
  const many: Range[] = Array.from({ length: 5000 }, (_, i) => [K + BigInt(i) * 0x1000n, K + BigInt(i) * 0x1000n + 0x10n] as Range);
  for (const [i, input] of inputs.entries()) {
    expectSameHits(scanner.scan(input), plain(referenceScanner.scan(input)), `round ${i}`);
    if (i === 2) scanner.scan(makeInput([K + 5n], [0, 1], many));
    if (i === 4) scanner.memoryFloor(pairs(Array.from({ length: 50 }, (_, k) => K + BigInt(k))));
  }
});

test("ranges changed in place, or invalid after valid ones, are never answered from the installed ones", () => {
  const scanner = createWasmScanner(loadScanModuleSync("release"), "wasm-release", { keyChunk: 8, hitCapacity: 4 });
  const keys: bigint[] = [];
  for (let i = 0; i < 200; i++) keys.push(K + BigInt((i * 97) % 0x300), 0n, M + BigInt(i % 0x40));
  const input = makeInput(keys, [0, 50, keys.length], [[K, K + 0xffn], [K + 0x80n, K + 0x17fn], [M, M + 0x10n]]);
  for (let round = 0; round < 4; round++) {
    const expected = plain(referenceScanner.scan(input));
    expectSameHits(scanner.scan(input), expected, `release round ${round}`);
    expectSameHits(debug.scan(input), expected, `debug round ${round}`);
    expectSameHits(tsScanner.scan(input), expected, `typescript round ${round}`);
    // the same arrays, edited in place: one low word of a last, then a start, then a high word
    if (round === 0) input.rangeLast[2] = (input.rangeLast[2]! + 0x40) >>> 0;
    if (round === 1) input.rangeStart[4] = (input.rangeStart[4]! + 0x8) >>> 0;
    if (round === 2) input.rangeStart[5] = 0xfffffffe;
  }
  // last < start in the (unchanged) count of ranges: rejected, and nothing stays installed
  const bad = { ...input, rangeLast: input.rangeLast.slice() };
  bad.rangeLast[0] = (input.rangeStart[0]! - 1) >>> 0;
  for (const s of [scanner, debug, tsScanner]) {
    expect(() => s.scan(bad)).toThrow(/range 0: last 0xffffffff80ffffff is below start 0xffffffff81000000/);
    expectSameHits(s.scan(input), plain(referenceScanner.scan(input)), `${s.kind} after a rejected input`);
  }
});

describe("hit column layout: the fixed stride (hit limits up to 2^20) and the general one", () => {
  const STRIDE_HITS = 1 << 20;
  // Raw exports: the layout is not visible through the Scanner.
  const instance = (build: "release" | "debug") =>
    new WebAssembly.Instance(loadScanModuleSync(build), { env: { abort: () => { throw new Error("abort"); } } }).exports as unknown as {
      reserve(r: number, k: number, h: number): number;
      hitFramePtr(): number;
      hitRangePtr(): number;
    };

  test.each(["release", "debug"] as const)("%s: HIT_RANGE sits 4 MiB after HIT_FRAME until a limit above 2^20 needs columns of its own", (build) => {
    const ex = instance(build);
    for (const [ranges, hits] of [[1, 1], [10, 65536], [300_000, 5], [1, STRIDE_HITS]]) {
      ex.reserve(ranges, 1024, hits);
      expect(ex.hitRangePtr() - ex.hitFramePtr(), `${ranges} ranges, ${hits} hits`).toBe(4 * STRIDE_HITS);
    }
    expect(ex.reserve(1, 1024, STRIDE_HITS + 1)).toBe(STRIDE_HITS + 1);
    expect(ex.hitRangePtr() - ex.hitFramePtr()).toBeGreaterThanOrEqual(4 * (STRIDE_HITS + 1));
    expect(ex.hitRangePtr() - ex.hitFramePtr()).not.toBe(4 * STRIDE_HITS);
  });

  test.each(["release", "debug"] as const)("%s: scans before, across and after the switch to the general layout", (build) => {
    // 10k ranges [K + 32r, K + 32r + 15] in reverse order; key f = K + 16 (f mod 20000), so a
    // frame with even f mod 20000 hits range (f mod 20000) / 2 (caller index 9999 - that).
    // 20k distinct keys cycle through the 4096-slot memo: most keys are memo misses too.
    const R = 10_000;
    const kLo = Number(K & 0xffffffffn);
    const rangeStart = new Uint32Array(2 * R);
    const rangeLast = new Uint32Array(2 * R);
    for (let r = 0; r < R; r++) {
      const c = R - 1 - r;
      rangeStart[2 * c] = kLo + 32 * r;
      rangeStart[2 * c + 1] = 0xffffffff;
      rangeLast[2 * c] = kLo + 32 * r + 15;
      rangeLast[2 * c + 1] = 0xffffffff;
    }
    const inputOf = (frames: number, tasks: number[]): { input: ScanInput; expected: { count: number; task: number[]; frame: number[]; range: number[] } } => {
      const keys = new Uint32Array(2 * frames);
      const exp = { count: 0, task: [] as number[], frame: [] as number[], range: [] as number[] };
      const taskFrameStart = [0, ...tasks, frames];
      let t = 0;
      for (let f = 0; f < frames; f++) {
        const m = f % 20_000;
        keys[2 * f] = kLo + 16 * m;
        keys[2 * f + 1] = 0xffffffff;
        while (taskFrameStart[t + 1]! <= f) t++;
        if (m % 2 === 0) {
          exp.task.push(t);
          exp.frame.push(f);
          exp.range.push(R - 1 - m / 2);
        }
      }
      exp.count = exp.frame.length;
      return { input: { keys, taskFrameStart: Uint32Array.from(taskFrameStart), rangeStart, rangeLast }, expected: exp };
    };
    const small = inputOf(30_000, [7, 20_001]);
    const big = inputOf(STRIDE_HITS + 50_000, [1, STRIDE_HITS]); // the hit limit asked for: the frame count
    const s = createWasmScanner(loadScanModuleSync(build), build === "release" ? "wasm-release" : "wasm-debug", { hitCapacity: STRIDE_HITS + 4096 });
    expectSameHits(s.scanView(small.input), small.expected, "small, fixed layout");
    expectSameHits(s.scanView(big.input), big.expected, "big, general layout (view)");
    expectSameHits(s.scan(small.input), small.expected, "small, general layout kept");
    expectSameHits(s.scan(big.input), big.expected, "big, general layout (owned)");
  });
});

test("hit columns: hits of several chunks accumulate; a key with several hits that does not fit is redone after the drain", () => {
  // 6 ranges nest around K+0x100..K+0x1ff, so keys there have up to 6 hits; with hitCapacity 6
  // (the range count) the columns fill mid-key whenever earlier keys left hits in them.
  const ranges: Range[] = [];
  for (let i = 0; i < 6; i++) ranges.push([K + 0x100n - BigInt(i) * 0x10n, K + 0x1ffn + BigInt(i) * 0x10n]);
  const keys: bigint[] = [];
  let seed = 7;
  for (let i = 0; i < 5000; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    keys.push(seed % 5 === 0 ? 0n : K + 0xa0n + BigInt(seed % 0x1c0));
  }
  const input = makeInput(keys, [0, 1, 2500, keys.length], ranges);
  const expected = plain(referenceScanner.scan(input));
  for (const [chunk, cap] of [[1, 1], [3, 6], [7, 9], [64, 13], [5000, 6], [4096, 100]] as const) {
    for (const build of ["release", "debug"] as const) {
      const s = createWasmScanner(loadScanModuleSync(build), build === "release" ? "wasm-release" : "wasm-debug", { keyChunk: chunk, hitCapacity: cap });
      expectSameHits(s.scan(input), expected, `${build} keyChunk=${chunk} hitCapacity=${cap}`);
      expectSameHits(s.scan(input), expected, `${build} keyChunk=${chunk} hitCapacity=${cap}, ranges kept`);
    }
  }
});

test("memo slot collisions: key 0 and keys sharing its slot, and thousands of keys with several hits", () => {
  // A kernel-like key in the memo slot of key 0 (the empty slot), for the kernel's hash and the
  // TS port's, alternating with key 0 so each evicts the other.
  const MASK = (1n << 64n) - 1n;
  const wasmSlot = (k: bigint): number => Number(((k * 0x9e3779b97f4a7c15n) & MASK) >> 52n);
  const tsSlot = (k: bigint): number => {
    const lo = Number(k & 0xffffffffn);
    const hi = Number(k >> 32n);
    return (Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> 0) >>> 20;
  };
  const find = (slot: (k: bigint) => number, from: bigint): bigint => {
    let k = from;
    while (slot(k) !== slot(0n)) k++;
    return k;
  };
  // per hash, one such key with exactly one hit and one with none: both replace key 0's entry
  const kw1 = find(wasmSlot, K + 0x100000n);
  const kw0 = find(wasmSlot, K + 0x200000n);
  const kt1 = find(tsSlot, K + 0x300000n);
  const kt0 = find(tsSlot, K + 0x400000n);
  // Ranges of two high halves (the TS port's wide path, where key 0 reaches the memo), one of
  // them starting at 0 (key 0 must still never match), and nested ranges so that keys in
  // K+0x5000..0x5fff have 1-3 hits: 3000 such distinct keys overflow the walk memo.
  const ranges: Range[] = [[kw1 - 5n, kw1 + 5n], [kt1, kt1], [K + 0x4000n, K + 0x6fffn], [K + 0x5000n, K + 0x5fffn], [K + 0x5800n, K + 0x5bffn], [0n, 0x10n]];
  const keys: bigint[] = [];
  for (let i = 0; i < 400; i++) keys.push(0n, kw1, 0n, kt1, 0n, kw0, 0n, kt0, kw1, 0n);
  for (let i = 0; i < 3000; i++) keys.push(K + 0x5000n + BigInt((i * 7) % 0x1000));
  for (let i = 0; i < 3000; i++) keys.push(K + 0x5000n + BigInt((i * 7) % 0x1000), 0n, kw1, kt0);
  const input = makeInput(keys, [0, 4000, keys.length], ranges);
  const expected = plain(referenceScanner.scan(input));
  for (const [name, scanner] of wasmScanners) expectSameHits(scanner.scan(input), expected, name);
  expectSameHits(tsScanner.scan(input), expected, "typescript");
  expectSameHits(tsScanner.scan(input), expected, "typescript, prepared ranges kept");
});

test("keys with several hits: their hit lists are remembered, and the list arena starts over when full", () => {
  // 300 nested ranges: a key d bytes from the middle lies in min(300, (0x10000 - d) / 0x80 + 1)
  // of them, so keys have different hit lists of 66-300 ranges; 700 distinct keys fill the
  // 65536-entry arena 2.7 times over, and every key comes back after others reused the arena.
  const ranges: Range[] = [];
  for (let r = 0; r < 300; r++) ranges.push([K + BigInt(r) * 0x80n, K + 0x20000n - BigInt(r) * 0x80n]);
  const distinct: bigint[] = [];
  for (let i = 0; i < 700; i++) distinct.push(K + 0x10000n + BigInt((i % 2 === 0 ? 1 : -1) * ((i * 0x95) % 0xe000)));
  const keys: bigint[] = [];
  for (let round = 0; round < 3; round++) for (let i = 0; i < distinct.length; i++) keys.push(distinct[(i * 7 + round * 101) % distinct.length]!);
  const input = makeInput(keys, [0, keys.length], ranges);
  const expected = plain(referenceScanner.scan(input));
  expect(expected.count).toBeGreaterThan(3 * 65536);
  for (const build of ["release", "debug"] as const) {
    const s = createWasmScanner(loadScanModuleSync(build), build === "release" ? "wasm-release" : "wasm-debug", { hitCapacity: 1 << 20 });
    expectSameHits(s.scan(input), expected, build);
    expectSameHits(s.scan(input), expected, `${build}, ranges kept`);
  }
  expectSameHits(tsScanner.scan(input), expected, "typescript");
  expectSameHits(tsScanner.scan(input), expected, "typescript, prepared ranges kept");
});

test("typescript scanner: kernel-like ranges sharing one high half take the narrow path; key 0 and other windows never hit", () => {
  const ranges: Range[] = [];
  for (let i = 0; i < 5000; i++) ranges.push([K + BigInt(i) * 0x100n, K + BigInt(i) * 0x100n + 0x7fn + (i % 97 === 0 ? 0x4000n : 0n)]);
  const keys: bigint[] = [0n, 1n, 0xfffffffe00000000n + 0x81000010n, K - 1n];
  for (let i = 0; i < 3000; i++) keys.push(K + BigInt((i * 2654435761) % 0x500000));
  const input = makeInput(keys, [0, 1000, keys.length], ranges.reverse());
  expectSameHits(tsScanner.scan(input), plain(referenceScanner.scan(input)), "typescript");
  expect(tsScanner.kind).toBe("typescript");
});

test.each(["application/wasm", "application/octet-stream"])("loadWasmScannerFromUrl (data: URL served as %s)", async (mime) => {
  // compileStreaming for application/wasm; the arrayBuffer fallback for anything else
  const b64 = Buffer.from(readFileSync(scanWasmUrl("release"))).toString("base64");
  const scanner = await loadWasmScannerFromUrl(`data:${mime};base64,${b64}`);
  expect(scanner.kind).toBe("wasm-release");
  const input = makeInput([K + 5n, 0n, K + 0x20n], [0, 3], [[K, K + 0xfn], [K + 0x10n, K + 0x20n]]);
  expect(plain(scanner.scan(input))).toEqual({ count: 2, task: [0, 0], frame: [0, 2], range: [0, 1] });
});

// ---- (d) validation --------------------------------------------------------------------------------

describe("input validation", () => {
  const ok = makeInput([K, K + 1n], [0, 2], [[K, K + 0xfn]]);
  const bad: [string, ScanInput, RegExp][] = [
    ["odd keys", { ...ok, keys: new Uint32Array(3) }, /keys has odd length 3/],
    ["odd rangeStart", { ...ok, rangeStart: new Uint32Array(3), rangeLast: new Uint32Array(3) }, /rangeStart has odd length 3/],
    ["odd rangeLast", { ...ok, rangeLast: new Uint32Array(1) }, /rangeLast has odd length 1/],
    ["range lengths differ", { ...ok, rangeLast: new Uint32Array(4) }, /rangeLast has length 4, rangeStart has 2/],
    ["empty taskFrameStart", { ...ok, taskFrameStart: new Uint32Array(0) }, /taskFrameStart is empty/],
    ["taskFrameStart[0] != 0", { ...ok, taskFrameStart: Uint32Array.from([1, 2]) }, /taskFrameStart\[0\] = 1/],
    ["decreasing taskFrameStart", { ...ok, taskFrameStart: Uint32Array.from([0, 2, 1, 2]) }, /taskFrameStart\[2\] = 1 is less than taskFrameStart\[1\] = 2/],
    ["short taskFrameStart", { ...ok, taskFrameStart: Uint32Array.from([0, 1]) }, /taskFrameStart\[1\] = 1 does not equal the frame count 2/],
    ["long taskFrameStart", { ...ok, taskFrameStart: Uint32Array.from([0, 3]) }, /= 3 does not equal the frame count 2/],
    ["last < start (low word)", makeInput([K], [0, 1], [[K, K], [K + 5n, K + 4n]]), /range 1: last 0xffffffff81000004 is below start 0xffffffff81000005/],
    ["last < start (high word)", makeInput([K], [0, 1], [[0x100000000n, 0xffffffffn]]), /range 0: last 0xffffffff is below start 0x100000000/],
    ["keys not a Uint32Array", { ...ok, keys: [1, 2] as unknown as Uint32Array }, /keys must be a Uint32Array, got Array/],
    ["BigUint64Array ranges", { ...ok, rangeStart: new BigUint64Array(1) as unknown as Uint32Array }, /rangeStart must be a Uint32Array, got BigUint64Array/],
  ];

  test.each(bad)("%s", (_, input, message) => {
    for (const scanner of [referenceScanner, release, debug]) {
      let thrown: unknown;
      try {
        scanner.scan(input);
      } catch (e) {
        thrown = e;
      }
      expect(thrown, scanner.kind).toBeInstanceOf(PatchsafeError);
      expect((thrown as PatchsafeError).code).toBe("E_SCAN_INPUT");
      expect((thrown as PatchsafeError).message).toMatch(message);
    }
  });

  test("the wasm scanner stays usable after rejecting input", () => {
    expect(() => release.scan(bad[0]![1])).toThrow(PatchsafeError);
    expect(release.scan(ok).count).toBe(2);
  });
});

// ---- (e) realistic kernel-like case ------------------------------------------------------------

test("kernel-like addresses, hand-computed hits", () => {
  // Blocking ranges (inclusive last), given unsorted:
  const ranges: Range[] = [
    [0xffffffff81e4a2b0n, 0xffffffff81e4a46fn], // 0 schedule (0x1c0 bytes)
    [0xffffffff8134f000n, 0xffffffff8134f7ffn], // 1 do_sys_poll
    [0xffffffffc0a01040n, 0xffffffffc0a0113fn], // 2 a module function
    [0xffffffff81e4a400n, 0xffffffff81e4a4ffn], // 3 overlaps the tail of schedule
    [0xffffffff8134f800n, 0xffffffff8134f8ffn], // 4 touches do_sys_poll
  ];
  const keys = [
    // task 0 (pid 101): poll sleeper
    0xffffffff81e4a3c2n, // schedule+0x112                  -> range 0
    0xffffffff81e4b021n, // schedule_hrtimeout_range+0x91   -> none
    0xffffffff8134f7ffn, // last byte of do_sys_poll        -> range 1
    0xffffffff8100009an, // entry                           -> none
    // task 1 (pid 102): no frames
    // task 2 (pid 103)
    0xffffffff81e4a410n, // schedule+0x160, also in range 3 -> ranges 0, 3
    0n, //                   unresolved frame                  -> none
    0xffffffffc0a01040n, // module function start           -> range 2
    0xffffffff8134f800n, // first byte after do_sys_poll    -> range 4
    0xffffffff81e4a470n, // one past schedule's last        -> range 3
    0xffffffffc0a01140n, // one past the module function    -> none
  ];
  const input = makeInput(keys, [0, 4, 4, 10], ranges);
  const expected = {
    count: 7,
    task: [0, 0, 2, 2, 2, 2, 2],
    frame: [0, 2, 4, 4, 6, 7, 8],
    range: [0, 1, 0, 3, 2, 4, 3],
  };
  for (const scanner of [referenceScanner, release, debug]) {
    expect(plain(scanner.scan(input)), scanner.kind).toEqual(expected);
  }
});
