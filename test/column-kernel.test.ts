/**
 * The snapshot column kernels in wasm (assembly/columns.ts through src/snapshot/columnKernel.ts)
 * against the TypeScript kernels they stand in for: integer columns (deltas and runs, into every
 * output type, with every range), symbol sizes, format 1.2 name blobs and the name scan. Each
 * either gives exactly the TypeScript result or declines, and a declined input gets the
 * TypeScript result or error: so on seeded random and damaged inputs the outputs and the error
 * messages are equal with and without the kernel, and the kernel is shown to have answered for
 * the well-formed ones. Release and debug builds; the kernels run from the first value here
 * (minValues 0). Whole snapshots: the same model and the same errors either way.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { generateProcDump } from "../src/generate/procDump.js";
import { parseProcText } from "../src/ingest/procText.js";
import { ProcTokenizer } from "../src/ingest/procTokenizer.js";
import { loadColumnKernelModuleSync, loadTokenizerModuleSync } from "../src/node/wasm.js";
import { type ColumnKernel, createColumnKernel } from "../src/snapshot/columnKernel.js";
import { decodeIdsInto, decodeIndexesInto, decodeInts, decodeIntsInto, decodeIntsWithin, encodeInts, type IntColumn, withColumnKernel } from "../src/snapshot/columns.js";
import { storedNameBlob } from "../src/snapshot/names.js";
import { decodeSnapshot, encodeSnapshot } from "../src/snapshot/psnap.js";
import { symbolSizes } from "../src/snapshot/sizes.js";
import { crc32 } from "../src/snapshot/crc32.js";
import { type NameBlob, NameIndex } from "../src/symbols/table.js";
import { hostCapture, hostTable } from "./helpers.js";
import { nameBlobFromStored, storedNamesArb } from "./name-blob-reference.js";

const BUILDS = ["release", "debug"] as const;

/** A kernel that counts the columns it answered for (and the ones it declined). */
function countingKernel(build: (typeof BUILDS)[number]): { kernel: ColumnKernel; answered: () => number; declined: () => number } {
  const kernel = createColumnKernel(loadColumnKernelModuleSync(build), { minValues: 0 });
  let yes = 0;
  let no = 0;
  const decode = kernel.decode.bind(kernel);
  kernel.decode = (...a) => {
    const r = decode(...a);
    if (r >= 0) yes++;
    else no++;
    return r;
  };
  return { kernel, answered: () => yes, declined: () => no };
}

/** What a decode gives: the values, or the error's message. */
function outcome(fn: () => ArrayLike<number> | null): { values: number[] | null } | { error: string } {
  try {
    const r = fn();
    return { values: r === null ? null : Array.from(r) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const SAFE = Number.MAX_SAFE_INTEGER;

/** Safe integers shaped like real columns: small steps, runs, halves of addresses, extremes. */
const valuesArb = fc.oneof(
  fc.array(fc.integer({ min: -200, max: 200 }), { maxLength: 300 }),
  fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 200 }),
  fc.array(fc.constantFrom(0, 1, 2, 7, 0xffffffff), { maxLength: 300 }),
  fc.array(fc.oneof(fc.integer({ min: -(2 ** 52), max: 2 ** 52 }), fc.integer({ min: -3, max: 3 })), { maxLength: 120 }),
  fc.array(fc.nat(40), { maxLength: 40 }).map((steps) => {
    let v = 0;
    return steps.map((s) => (v += s));
  }),
);

/** Encoded columns, then maybe damaged: bytes flipped, cut, extended, or the count changed. */
const columnArb = fc.record({
  values: valuesArb,
  mode: fc.constantFrom<"d" | "r">("d", "r"),
  damage: fc.oneof(
    fc.constant(null),
    fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ cut: fc.nat() }),
    fc.record({ extra: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
    fc.record({ count: fc.integer({ min: -2, max: 2 }) }),
    fc.record({ long: fc.integer({ min: 7, max: 9 }) }),
  ),
});

function columnOf(c: { values: number[]; mode: "d" | "r"; damage: unknown }): IntColumn {
  const col = encodeInts(c.values, c.mode);
  const d = c.damage as { at?: number; byte?: number; cut?: number; extra?: Uint8Array; count?: number; long?: number } | null;
  if (d === null) return col;
  const b = Uint8Array.from(col.b);
  if (d.at !== undefined && b.length > 0) b[d.at % b.length] = d.byte!;
  if (d.cut !== undefined) return { ...col, b: b.subarray(0, b.length === 0 ? 0 : d.cut % b.length) };
  if (d.extra !== undefined) return { ...col, b: Uint8Array.from([...b, ...d.extra]) };
  if (d.count !== undefined) return { ...col, n: Math.max(0, col.n + d.count) };
  // A varint of d.long bytes up front (8: the TypeScript decoder's longest; 9: too long).
  if (d.long !== undefined) return { ...col, b: Uint8Array.from([...new Array(d.long - 1).fill(0x81), 0x01, ...b]) };
  return { ...col, b };
}

describe.each(BUILDS)("column kernel (%s) = the TypeScript column kernels", (build) => {
  const { kernel, answered, declined } = countingKernel(build);

  test("integer columns: deltas and runs into f64, ids, u32, u8 and i32, every range; damaged columns get the same error", () => {
    const before = answered();
    fc.assert(
      fc.property(columnArb, fc.integer({ min: 0, max: 6 }), (c, shape) => {
        const col = columnOf(c);
        const n = c.values.length;
        const run = (k: ColumnKernel | null): unknown =>
          withColumnKernel(k, () => {
            switch (shape) {
              case 0:
                return outcome(() => decodeInts(col, n, "c"));
              case 1: {
                const out = new Float64Array(n);
                const r = outcome(() => (decodeIdsInto(col, out, n, "ids"), out));
                return "error" in r ? r : { values: Array.from(out, (x) => (Number.isNaN(x) ? "null" : x)) };
              }
              case 2:
                return outcome(() => {
                  const out = new Uint32Array(n);
                  decodeIntsInto(col, out, 0, 0xffffffff, "u32");
                  return out;
                });
              case 3:
                return outcome(() => {
                  const out = new Uint8Array(n);
                  decodeIntsInto(col, out, 0x21, 0x7e, "type");
                  return out;
                });
              case 4:
                return outcome(() => {
                  const out = new Int32Array(n);
                  decodeIndexesInto(col, out, 250, "stack");
                  return out;
                });
              case 5:
                return outcome(() => decodeIntsWithin(col, n, "w", undefined, -5, 100));
              default:
                return outcome(() => decodeInts(col, n, "c", new Float64Array(n + 3)));
            }
          });
        const wasm = run(kernel);
        const ts = run(null);
        // decodeIntsWithin has no TypeScript twin: null there, and with the kernel the values
        // exactly when every one is in range (else null: the caller decodes and checks).
        if (shape === 5) {
          const plain = withColumnKernel(null, () => outcome(() => decodeInts(col, n, "w")));
          if ("values" in plain && plain.values!.every((x) => x >= -5 && x <= 100)) expect(wasm).toEqual(plain);
          else if ("values" in plain) expect(wasm).toEqual({ values: null });
          expect(ts).toEqual({ values: null });
          return;
        }
        expect(wasm).toEqual(ts);
      }),
      { numRuns: 3000, seed: 61 },
    );
    // The kernel answered for a good share of them (the rest it declined, to the TypeScript kernel).
    expect(answered() - before).toBeGreaterThan(600);
    expect(declined()).toBeGreaterThan(100);
  });

  test("a column of 100k values: every varint length from 1 to 7 bytes, both signs, the word boundaries", () => {
    const values: number[] = [];
    let v = 0;
    for (let i = 0; i < 100_000; i++) {
      const bits = (i * 7) % 49; // deltas of 1..7-byte zigzag varints, in a pattern that crosses words
      v += (i & 1 ? -1 : 1) * Math.floor(2 ** bits * ((i % 13) / 13 + 0.01));
      values.push(v);
    }
    for (const mode of ["d", "r"] as const) {
      const col = encodeInts(values, mode);
      const before = answered();
      const wasm = withColumnKernel(kernel, () => decodeInts(col, values.length, "big"));
      expect(answered()).toBe(before + 1);
      expect(Array.from(wasm)).toEqual(values);
    }
  });

  test("symbol sizes from columns the kernel decoded: = symbolSizes in TypeScript, unsorted objects included", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ object: fc.nat(3), addr: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), near: fc.nat(5000) }), { minLength: 1, maxLength: 400 }),
        fc.boolean(),
        (rows, sorted) => {
          // Addresses near a few bases (real tables: long ascending runs, equal addresses), or anywhere.
          const base = [0xffffffff81000000n, 0xffffffffc0000000n, 0n, 2n ** 64n - 100000n];
          let addrs = rows.map((r, i) => (i % 5 === 4 ? r.addr : (base[r.object] + BigInt(r.near)) & (2n ** 64n - 1n)));
          if (sorted) addrs = [...addrs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          const lo = Uint32Array.from(addrs, (a) => Number(a & 0xffffffffn));
          const hi = Uint32Array.from(addrs, (a) => Number(a >> 32n));
          const object = Uint32Array.from(rows, (r) => r.object);
          const cols = [encodeInts(lo), encodeInts(hi), encodeInts(object)];
          const n = rows.length;
          const viaKernel = withColumnKernel(kernel, () => {
            const l = new Uint32Array(n);
            const h = new Uint32Array(n);
            const o = new Uint32Array(n);
            decodeIntsInto(cols[0], l, 0, 0xffffffff, "lo");
            decodeIntsInto(cols[1], h, 0, 0xffffffff, "hi");
            decodeIntsInto(cols[2], o, 0, 3, "object");
            return symbolSizes(l, h, o, 4);
          });
          expect(Array.from(viaKernel)).toEqual(Array.from(symbolSizes(lo, hi, object, 4)));
        },
      ),
      { numRuns: 500, seed: 62 },
    );
  });

  test("task placement on random arrays: = placeOwnLines' loop written out (stops, copies, rows, state)", () => {
    /** psnap.ts placeOwnLines' TypeScript loop, with the frame table as a counter. */
    function reference(stack: Int32Array, stackLen: Float64Array, line: Float64Array, mask: number, block: Int32Array, frames0: number, T: number) {
      const out = { frameStart: new Uint32Array(T), frameCount: new Uint32Array(T), taskLine: new Uint32Array(T), copies: [] as number[][] };
      let frames = frames0;
      let total = 0;
      let end = 0;
      let t = 0;
      for (; t < T; t++) {
        const s = stack[t];
        const n = stackLen[s];
        const ln = end + line[t & mask];
        if (!(ln >= 0 && ln + n <= 0x100000000 && ln <= 0xffffffff && (n === 0 || ln > 0))) break;
        let start: number;
        if (n === 0) start = frames;
        else {
          start = block[s];
          if (start < 0) {
            out.copies.push([s, ln]);
            start = block[s] = frames;
            frames += n;
          }
        }
        total += n;
        end = ln + n;
        out.frameStart[t] = start;
        out.frameCount[t] = n;
        out.taskLine[t] = ln;
      }
      return { t, total, end, ...out, block: Array.from(block) };
    }
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.nat(5), { minLength: 0, maxLength: 300 }),
        fc.array(fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(2 ** 32), fc.constant(2 ** 32 - 1), fc.constant(2 ** 53 - 1)), { minLength: 6, maxLength: 6 }),
        fc.oneof(
          fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: -5, max: 5 }), fc.constant(2 ** 32 - 3), fc.constant(-(2 ** 52) - 1), fc.constant(2 ** 53 - 1), fc.constantFrom(Number.NaN, Infinity, -Infinity)), { minLength: 300, maxLength: 300 }),
          fc.constantFrom([1], [0], [2 ** 31], [-1], [Number.NaN]),
        ),
        fc.array(fc.integer({ min: -1, max: 40 }), { minLength: 6, maxLength: 6 }),
        fc.nat(1000),
        (S, ids, lens, steps, blocks, frames0) => {
          const stack = Int32Array.from(ids, (x) => x % S);
          const stackLen = Float64Array.from(lens.slice(0, S));
          const mask = steps.length === 1 ? 0 : -1;
          const line = Float64Array.from(steps);
          const T = stack.length;
          const ref = reference(stack, stackLen, line, mask, Int32Array.from(blocks.slice(0, S)), frames0, T);
          const got = { frameStart: new Uint32Array(T), frameCount: new Uint32Array(T), taskLine: new Uint32Array(T), copies: [] as number[][] };
          const block = Int32Array.from(blocks.slice(0, S));
          let frames = frames0;
          const r = withColumnKernel(kernel, () =>
            kernel.ownLines({
              stack,
              stackLen,
              line,
              mask,
              block,
              framesLength: () => frames,
              copyBlock: (s, ln) => {
                got.copies.push([s, ln]);
                const at = frames;
                frames += stackLen[s];
                return at;
              },
              frameStart: got.frameStart,
              frameCount: got.frameCount,
              taskLine: got.taskLine,
            }),
          );
          expect(r).not.toBeNull();
          expect({ t: r!.t, total: r!.total, end: r!.end, ...got, block: Array.from(block) }).toEqual(ref);
        },
      ),
      { numRuns: 3000, seed: 65 },
    );
  });

  test("name blobs (format 1.2): = storedNameBlob in TypeScript for good and bad blobs; the kernel answers the good ones", () => {
    let answeredBlobs = 0;
    fc.assert(
      fc.property(storedNamesArb(), ({ n, pad, len, chars }) => {
        for (const rowsN of [n, n + 9]) {
          const ts = withColumnKernel(null, () => storedNameBlob(rowsN, pad, len, chars));
          const wasm = withColumnKernel(kernel, () => storedNameBlob(rowsN, pad, len, chars));
          expect(wasm).toEqual(ts);
          expect(wasm).toEqual(nameBlobFromStored(rowsN, pad, len, chars));
          if (!("error" in wasm) && (wasm as NameBlob).scanRows !== undefined) answeredBlobs++;
        }
      }),
      { numRuns: 2000, seed: 63 },
    );
    expect(answeredBlobs).toBeGreaterThan(60);
  });
});

describe.each(BUILDS)("whole snapshots (%s): the same model and the same errors with the column kernel", (build) => {
  const { kernel, answered } = countingKernel(build);
  const source = hostCapture("capture.json");
  const symbols = hostTable();

  function snapshotOf(tasks: number, seed: number): Uint8Array {
    return encodeSnapshot(parseProcText(generateProcDump(source, { tasks, seed, shape: "grep" }).text, "dump"), symbols);
  }

  test("decoded models are equal, and the kernel's name scan finds what the TypeScript scan finds", () => {
    for (const [tasks, seed] of [
      [1200, 1],
      [3000, 2],
    ]) {
      const bytes = snapshotOf(tasks, seed);
      const before = answered();
      const withK = decodeSnapshot(bytes, "s.psnap", { columnKernel: kernel });
      expect(answered()).toBeGreaterThan(before);
      const without = decodeSnapshot(bytes, "s.psnap");
      expect(withK.capture).toEqual(without.capture);
      expect(Array.from(withK.taskStack)).toEqual(Array.from(without.taskStack));
      const a = withK.symbols!;
      const b = without.symbols!;
      for (const k of ["object", "type", "addrLo", "addrHi", "size"] as const) expect(Array.from(a[k] as ArrayLike<number>)).toEqual(Array.from(b[k] as ArrayLike<number>));
      // Lookups by name, through the first scan (the kernel's) and through the index after it.
      const names = [...new Set(b.names.filter((_, i) => i % 97 === 0))];
      const queries = [...names, ...names.slice(0, 20).map((x) => `__pfx_${x}`), "no_such_function", "", "__pfx_", "_text", "__sched_text_start"];
      expect(a.byName).toBeInstanceOf(NameIndex);
      const rowsA = (a.byName as NameIndex).lookupMany(queries);
      const rowsB = (b.byName as NameIndex).lookupMany(queries);
      expect(rowsA).toEqual(rowsB);
      expect(rowsA.filter((r: number[] | undefined) => r !== undefined && r.length > 0).length).toBeGreaterThan(names.length - 1);
      for (const q of queries.slice(0, 50)) expect(a.byName.get(q)).toEqual(b.byName.get(q));
    }
  });

  test("task placement: own-line dumps of every shape, fixtures, and a dump whose lines break the shape midway", async () => {
    const { parseCaptures } = await import("../src/ingest/detect.js");
    const { encodeLatin1 } = await import("../src/ingest/bytes.js");
    const { readFileSync, readdirSync } = await import("node:fs");
    const own = kernel.ownLines.bind(kernel);
    const stops: [number, number][] = [];
    kernel.ownLines = (a) => {
      const r = own(a);
      if (r !== null) stops.push([r.t, a.stack.length]);
      return r;
    };
    const texts: [string, string][] = [];
    for (const shape of ["grep", "tail", "header", "sysrq"] as const) texts.push([shape, generateProcDump(source, { tasks: 700, seed: 9, shape }).text]);
    const dir = new URL("./fixtures/formats/", import.meta.url);
    for (const f of readdirSync(dir).filter((x) => x.endsWith(".txt")).slice(0, 12)) texts.push([f, readFileSync(new URL(f, dir), "latin1")]);
    const outcomeOf = (bytes: Uint8Array, name: string, k: ColumnKernel | null): unknown => {
      try {
        return decodeSnapshot(bytes, name, { columnKernel: k }).capture;
      } catch (e) {
        return `${(e as { code?: string }).code}: ${(e as Error).message}`;
      }
    };
    for (const [name, text] of texts) {
      for (const cap of [...parseCaptures([encodeLatin1(text)], name, "auto"), ...parseCaptures([encodeLatin1(text)], name, "auto", { procTokenizer: () => new ProcTokenizer(loadTokenizerModuleSync("release")) })]) {
        const bytes = encodeSnapshot(cap, symbols);
        expect(outcomeOf(bytes, name, kernel), name).toEqual(outcomeOf(bytes, name, null));
      }
    }
    // Tasks whose lines leave the shape midway (a line near 2^32 with frames after it, or the
    // end): the placement stops there and placeAny goes on (here, to its error or its rows).
    for (const line of [0xfffffff0, 0xffffffff, 0x7fffffff]) {
      // Read by the tokenizer, as the CLI reads it: shared rows, every task's frames on its own lines.
      const cap = parseCaptures([encodeLatin1(generateProcDump(source, { tasks: 900, seed: 10, shape: "grep" }).text)], "mid", "proc", { procTokenizer: () => new ProcTokenizer(loadTokenizerModuleSync("release")) })[0];
      const mid = Math.floor(cap.tasks.length / 2);
      for (let t = mid; t < cap.tasks.length; t++) cap.tasks.line[t] = line - mid + t - cap.tasks.length;
      let bytes: Uint8Array;
      try {
        bytes = encodeSnapshot(cap, symbols);
      } catch {
        continue; // lines the writer refuses
      }
      expect(outcomeOf(bytes, "mid", kernel)).toEqual(outcomeOf(bytes, "mid", null));
    }
    // The kernel placed whole captures (stops midway are the random-array test's, above).
    expect(stops.some(([t, T]) => t === T && T > 0)).toBe(true);
  });

  test("the name scan after another decode has begun: the TypeScript scan answers (no stale rows)", () => {
    const one = snapshotOf(800, 3);
    const other = snapshotOf(900, 4);
    const first = decodeSnapshot(one, "one.psnap", { columnKernel: kernel });
    decodeSnapshot(other, "other.psnap", { columnKernel: kernel });
    const plain = decodeSnapshot(one, "one.psnap");
    const q = ["worker_thread", "do_epoll_wait", "schedule", "_text"];
    expect((first.symbols!.byName as NameIndex).lookupMany(q)).toEqual((plain.symbols!.byName as NameIndex).lookupMany(q));
  });

  test("damaged snapshots (checksums made to match): the same error code and message with and without the kernel", () => {
    const good = snapshotOf(1000, 5);
    const dv = new DataView(good.buffer, good.byteOffset, 32);
    const hLen = dv.getUint32(12, true);
    const bodyAt = 32 + hLen;
    /** The prefix's, header's and body's CRC-32 recomputed: only the damage itself is left to find. */
    const reseal = (b: Uint8Array): Uint8Array => {
      const d = new DataView(b.buffer, b.byteOffset, 32);
      d.setUint32(20, crc32(b.subarray(32, bodyAt)), true);
      d.setUint32(24, crc32(b.subarray(bodyAt)), true);
      d.setUint32(28, crc32(b.subarray(0, 28)), true);
      return b;
    };
    const errOf = (bytes: Uint8Array, k: ColumnKernel | null): string => {
      try {
        const s = decodeSnapshot(bytes, "bad.psnap", { columnKernel: k });
        return `decoded ${s.capture.tasks.length} tasks, ${s.symbols?.count ?? 0} symbols`;
      } catch (e) {
        return `${(e as { code?: string }).code}: ${(e as Error).message}`;
      }
    };
    expect(errOf(reseal(Uint8Array.from(good)), kernel)).toMatch(/^decoded 1000 tasks/);
    const damage = fc.sample(fc.tuple(fc.nat(good.length - bodyAt - 1), fc.integer({ min: 0, max: 255 })), { numRuns: 300, seed: 64 });
    const seen = new Set<string>();
    for (const [at, byte] of damage) {
      const bad = Uint8Array.from(good);
      bad[bodyAt + at] = byte;
      reseal(bad);
      const withK = errOf(bad, kernel);
      expect(withK).toEqual(errOf(bad, null));
      seen.add(withK.split(":")[0]);
    }
    // Both errors and decodes happened (a flipped byte in a name or an offset still decodes).
    expect(seen.has("E_SNAPSHOT_CORRUPT")).toBe(true);
    expect([...seen].some((x) => x.startsWith("decoded"))).toBe(true);
  });
});
