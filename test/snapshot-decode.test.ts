/**
 * The decoder's bulk paths: tasks written column by column into the task table (appendBlank),
 * frame blocks appended in one call (appendRows), pids and tids decoded straight into their
 * columns, byte strings written as msgpack bin and read as views into the file's bytes (copied
 * only where the decoded model keeps them and the caller may change the bytes). Every path is
 * checked against the model it was written from, and every new check against a hostile file.
 */
import fc from "fast-check";
import { Packr } from "msgpackr";
import { beforeAll, describe, expect, test } from "vitest";
import { type Capture, FrameColumns, FrameFlag, newTask, TaskTable } from "../src/model.js";
import { decodeIdsInto, decodeInts, encodeInts, encodeNullable } from "../src/snapshot/columns.js";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { sha256 } from "../src/sha256.js";
import { crc32 } from "../src/snapshot/crc32.js";
import { decodeSnapshot, encodeSnapshot, SNAPSHOT_MAGIC, SymbolSectionCache } from "../src/snapshot/psnap.js";
import { storedNameBlob } from "../src/snapshot/names.js";
import { symbolSizes } from "../src/snapshot/sizes.js";
import { parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";
import { nameBlobFromStored, storedNamesArb } from "./name-blob-reference.js";
import { codeOf, hostCapture, hostTable, taskLines } from "./helpers.js";

const OPTS = { moreTypes: true, useRecords: false, mapsAsObjects: true, useToJSON: false, copyBuffers: true } as const;

/** A file's header and body as values (byte strings as plain Uint8Arrays). */
function parts(b: Uint8Array): { header: Record<string, any>; body: Record<string, any> } {
  const p = new Packr(OPTS);
  const hl = new DataView(b.buffer, b.byteOffset).getUint32(12, true);
  return { header: p.unpack(b.subarray(32, 32 + hl)), body: p.unpack(b.subarray(32 + hl)) };
}

/** Every plain Uint8Array of a value as a Buffer: msgpackr then writes msgpack bin, not its typed-array extension. */
function asBin(x: unknown): unknown {
  if (x === null || typeof x !== "object") return x;
  if (x instanceof Uint8Array) return x.constructor === Uint8Array ? Buffer.from(x.buffer, x.byteOffset, x.byteLength) : x;
  if (ArrayBuffer.isView(x)) return x;
  if (Array.isArray(x)) return x.map(asBin);
  return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, asBin(v)]));
}

/** Every Buffer of a value as a plain Uint8Array copy: msgpackr then writes its typed-array extension. */
function asExt(x: unknown): unknown {
  if (x === null || typeof x !== "object") return x;
  if (x instanceof Uint8Array) return x.constructor === Uint8Array ? x : Uint8Array.from(x);
  if (ArrayBuffer.isView(x)) return x;
  if (Array.isArray(x)) return x.map(asExt);
  return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, asExt(v)]));
}

/** A file from header and body bytes, with valid checksums. */
function frame(h: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(32 + h.length + b.length);
  out.set(SNAPSHOT_MAGIC);
  const dv = new DataView(out.buffer);
  dv.setUint16(8, 1, true);
  dv.setUint16(10, 2, true);
  dv.setUint32(12, h.length, true);
  dv.setUint32(16, b.length, true);
  dv.setUint32(20, crc32(h), true);
  dv.setUint32(24, crc32(b), true);
  dv.setUint32(28, crc32(out, 0, 28), true);
  out.set(h, 32);
  out.set(b, 32 + h.length);
  return out;
}

/**
 * Rebuilds a file the way the encoder lays it out (body map with the symbol section last, the
 * header's symbolsAt pointing at it), byte strings as bin (`bin`) or as the typed-array
 * extension: the decoder then reads the section on its own, as views into the bytes.
 */
function rebuildSectioned(header: Record<string, unknown>, body: Record<string, unknown>, bin = true): Uint8Array {
  const p = new Packr(OPTS);
  const conv = bin ? asBin : asExt;
  const { symbols, ...rest } = body;
  const head = p.pack(conv({ ...rest, symbols: null })).slice();
  expect(head[head.length - 1]).toBe(0xc0);
  const sec = p.pack(conv(symbols)).slice();
  const b = new Uint8Array(head.length - 1 + sec.length);
  b.set(head.subarray(0, head.length - 1));
  b.set(sec, head.length - 1);
  // As the writer does: the section's digest (format 1.3) is that of the bytes written.
  const h = p.pack({ ...header, symbolsAt: [head.length - 1, sec.length], ...(header.symbolsSha256 === undefined ? {} : { symbolsSha256: sha256(sec) }) }).slice();
  return frame(h, b);
}

/** Rebuilds a file as one body map without symbolsAt (the decoder reads the whole body, as a 1.0 reader would). */
function rebuildWhole(header: Record<string, unknown>, body: Record<string, unknown>): Uint8Array {
  const p = new Packr(OPTS);
  const { symbolsAt: _, ...h } = header;
  return frame(p.pack(h).slice(), p.pack(body).slice());
}

/** msgpack type byte of the value stored under `key` in a packed map (first occurrence). */
function typeByteAfterKey(bytes: Uint8Array, key: string): number {
  const k = new TextEncoder().encode(key);
  outer: for (let i = 0; i + k.length + 1 < bytes.length; i++) {
    if (bytes[i] !== 0xa0 + k.length) continue;
    for (let j = 0; j < k.length; j++) if (bytes[i + 1 + j] !== k[j]) continue outer;
    return bytes[i + 1 + k.length];
  }
  throw new Error(`no key ${key}`);
}

let table: SymbolTable;
let cap: Capture;
beforeAll(() => {
  table = hostTable();
  cap = hostCapture("capture.json");
});

describe("byte strings as bin, read as views", () => {
  test("the encoder writes byte strings as msgpack bin; the old extension form decodes to the same model", () => {
    const bytes = encodeSnapshot(cap, table);
    const hl = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
    const body = bytes.subarray(32 + hl);
    // bin8/16/32 (0xc4-0xc6), not ext8/16/32 (0xc7-0xc9) with type 0x74.
    for (const key of ["names", "nameLen", "pad"]) expect([0xc4, 0xc5, 0xc6], key).toContain(typeByteAfterKey(body, key));
    const { header, body: values } = parts(bytes);
    expect(values.tasks.tid.b).toBeInstanceOf(Uint8Array);
    // Frame rows keep their typed arrays (the extension: their element type matters).
    expect(values.frames.symbol).toBeInstanceOf(Int32Array);
    const want = decodeSnapshot(bytes, "new");
    for (const [what, file] of [
      ["extension, sectioned", rebuildSectioned(header, values, false)],
      ["bin, sectioned", rebuildSectioned(header, values, true)],
      ["extension, whole body", rebuildWhole(header, asExt(values) as Record<string, unknown>)],
      ["bin, whole body", rebuildWhole(header, asBin(values) as Record<string, unknown>)],
    ] as const) {
      for (const keepBytes of [false, true]) {
        const d = decodeSnapshot(file, what, { keepBytes });
        expect(captureModel(d.capture), what).toEqual(captureModel(want.capture));
        expect(symbolsModel(d.symbols!), what).toEqual(symbolsModel(table));
        expect(taskLines(d.capture), what).toEqual(taskLines(cap));
      }
    }
  });

  test("names stay a view into bytes the caller keeps; otherwise nothing decoded points into them", () => {
    const bytes = encodeSnapshot(cap, table);
    const want = symbolsModel(table);
    const chars = (t: SymbolTable): Uint8Array | Uint16Array => (t.byName as unknown as { src: { blob: { chars: Uint8Array } } }).src.blob.chars;
    const kept = decodeSnapshot(bytes, "kept", { keepBytes: true });
    expect(chars(kept.symbols!).buffer).toBe(bytes.buffer);
    // Not kept: decode, then overwrite every byte (a reused read buffer): the model is unchanged.
    for (const opts of [{}, { keepBytes: false }, { cache: new SymbolSectionCache(2) }]) {
      const b = bytes.slice();
      const d = decodeSnapshot(b, "reused", opts);
      expect(chars(d.symbols!).buffer).not.toBe(b.buffer);
      const model = captureModel(d.capture);
      b.fill(0x41);
      expect(symbolsModel(d.symbols!)).toEqual(want);
      expect(captureModel(d.capture)).toEqual(model);
      expect(captureModel(d.capture)).toEqual(captureModel(cap));
    }
  });

  test("format 1.2 corruption classes are rejected through the sectioned reader too", () => {
    const { header, body } = parts(encodeSnapshot(cap, table));
    const sy = body.symbols as Record<string, any>;
    const fr = body.frames as Record<string, any>;
    const n: number = sy.n;
    const lens = sy.nameLen as Uint8Array;
    const cache = new SymbolSectionCache(4);
    // Well-formed: read through the section (a cache miss, then a hit).
    for (let k = 0; k < 2; k++) expect(decodeSnapshot(rebuildSectioned(header, body), "ok", { cache }).capture.tasks.length).toBe(cap.tasks.length);
    expect([cache.misses, cache.hits]).toEqual([1, 1]);
    const withSymbols = (o: Record<string, unknown>) => ({ ...body, symbols: { ...sy, ...o } });
    const withFrames = (o: Record<string, unknown>) => ({ ...body, frames: { ...fr, ...o } });
    const flipPad = (i: number) => {
      const p = (sy.pad as Uint8Array).slice();
      p[i >> 3] ^= 1 << (i & 7);
      return p;
    };
    const cases: [string, Record<string, unknown>][] = [
      ["names one byte short", withSymbols({ names: (sy.names as Uint8Array).subarray(1) })],
      ["names one byte long", withSymbols({ names: Uint8Array.from([...sy.names, 0x41]) })],
      ["a zero length", withSymbols({ nameLen: Uint8Array.from(lens, (l, i) => (i === 5 ? 0 : l)) })],
      ["a huge length", withSymbols({ nameLen: Uint32Array.from(lens, (l, i) => (i === 5 ? 0xffffffff : l)) })],
      ["one length short", withSymbols({ nameLen: lens.subarray(1) })],
      ["padding bitset short", withSymbols({ pad: (sy.pad as Uint8Array).subarray(1) })],
      ["last row marked", withSymbols({ pad: flipPad(n - 1) })],
      ["a mark moved", withSymbols({ pad: flipPad(1) })],
      ["addresses short", withSymbols({ addrLo: encodeInts(new Array(n - 1).fill(0)) })],
      ["an object id out of range", withSymbols({ object: encodeInts(new Array(n).fill(sy.objects.length)) })],
      ["a type out of range", withSymbols({ type: encodeInts(new Array(n).fill(0x7f)) })],
      ["symRow out of range", withFrames({ symRow: (fr.symRow as Int32Array).map((r) => (r >= 0 ? n + 5 : r)) })],
    ];
    for (const [what, b] of cases) {
      for (const bin of [true, false]) {
        const file = rebuildSectioned(header, b, bin);
        expect(codeOf(() => decodeSnapshot(file, what, { cache: new SymbolSectionCache(2) })), `${what} (${bin ? "bin" : "ext"})`).toBe("E_SNAPSHOT_CORRUPT");
        expect(codeOf(() => decodeSnapshot(file, what, { keepBytes: true })), `${what} (${bin ? "bin" : "ext"}, kept)`).toBe("E_SNAPSHOT_CORRUPT");
      }
    }
  });
});

describe("tasks placed column by column", () => {
  /** The host capture's distinct stacks, as (row list) to copy frames from. */
  function stacksOf(src: Capture): number[][] {
    const seen = new Map<string, number[]>();
    src.tasks.forEach((t) => {
      const rows = Array.from({ length: t.frameCount }, (_, k) => t.frameStart + k);
      seen.set(rows.map((r) => `${src.frames.symbol[r]}:${src.frames.offset[r]}`).join(","), rows);
    });
    return [[], ...seen.values()];
  }

  const letters = "RSDTtZXIPK";
  const taskArb = fc.record({
    stack: fc.nat(40),
    lines: fc.constantFrom("own", "offset", "zero", "random", "fromZero"),
    line: fc.nat(1 << 20),
    offset: fc.integer({ min: -5, max: 5 }),
    pid: fc.option(fc.nat(1 << 22)),
    tid: fc.option(fc.nat(1 << 22)),
    state: fc.option(fc.constantFrom(...letters)),
    stackStatus: fc.constantFrom("ok", "ok", "ok", "empty", "unreadable", "truncated", "vanished"),
    running: fc.boolean(),
    comm: fc.option(fc.uint8Array({ minLength: 0, maxLength: 16 })),
    errno: fc.option(fc.constantFrom("EPERM", "ESRCH")),
    ppid: fc.option(fc.nat(1 << 22)),
    patchState: fc.option(fc.constantFrom(-1, 0, 1)),
  });

  type Spec = typeof taskArb extends fc.Arbitrary<infer T> ? T : never;

  /** A capture whose tasks take stacks of the host capture with every shape of lines. */
  function build(src: Capture, stacks: number[][], specs: Spec[]): Capture {
    const frames = new FrameColumns(16);
    const tasks = new TaskTable(4);
    for (const s of specs) {
      const rows = stacks[s.stack % stacks.length];
      const start = frames.length;
      rows.forEach((r, k) => {
        const line = s.lines === "own" ? s.line + k : s.lines === "offset" ? Math.max(0, s.line + s.offset) + k : s.lines === "zero" ? 0 : s.lines === "fromZero" ? k : (s.line * 7 + k * 13) % 1000;
        frames.pushCopy(src.frames, r, line, src.frames.flags[r] & ~FrameFlag.SHARED);
      });
      tasks.push(
        newTask({
          pid: s.pid,
          tid: s.tid,
          state: s.state,
          stackStatus: s.stackStatus,
          running: s.running,
          comm: s.comm,
          errno: s.errno,
          ppid: s.ppid,
          patchState: s.patchState,
          frameStart: start,
          frameCount: rows.length,
          line: s.line,
        }),
      );
    }
    return { ...src, tasks, frames, sharedRows: false };
  }

  test("random captures (every line shape, empty stacks, rare facts): decode gives the model written", () => {
    const src = hostCapture("proc-grep.txt");
    const stacks = stacksOf(src);
    fc.assert(
      fc.property(fc.array(taskArb, { minLength: 0, maxLength: 40 }), (specs) => {
        const c = build(src, stacks, specs);
        const d = decodeSnapshot(encodeSnapshot(c, null), "random");
        expect(captureModel(d.capture)).toEqual(captureModel(c));
        expect(taskLines(d.capture)).toEqual(taskLines(c));
        // And again from the decoded (shared) capture.
        const again = decodeSnapshot(encodeSnapshot(d.capture, null), "again");
        expect(captureModel(again.capture)).toEqual(captureModel(c));
      }),
      { numRuns: 150, seed: 5 },
    );
  });

  test("captures whose tasks all start on their own line (a /proc dump's shape), with empty stacks and line 0 anywhere", () => {
    const src = hostCapture("proc-grep.txt");
    const stacks = stacksOf(src);
    const ownArb = taskArb.chain((t) => fc.record({ line: fc.oneof(fc.constant(0), fc.nat(3), fc.nat(1 << 20)) }).map((o) => ({ ...t, ...o, lines: "own" as const })));
    fc.assert(
      fc.property(fc.array(ownArb, { minLength: 1, maxLength: 40 }), (specs) => {
        const c = build(src, stacks, specs);
        const d = decodeSnapshot(encodeSnapshot(c, null), "own");
        expect(captureModel(d.capture)).toEqual(captureModel(c));
        expect(taskLines(d.capture)).toEqual(taskLines(c));
        // Shared blocks: one per stack for the tasks with frames above line 0.
        const starts = new Map<number, number>();
        d.capture.tasks.forEach((t, i) => {
          if (t.frameCount === 0 || t.line === 0) return;
          const s = d.taskStack[i];
          if (!starts.has(s)) starts.set(s, t.frameStart);
          expect(t.frameStart).toBe(starts.get(s));
        });
      }),
      { numRuns: 200, seed: 7 },
    );
    // The dev host's dump: every task shares its stack's block.
    const d = decodeSnapshot(encodeSnapshot(src, null), "grep");
    expect(captureModel(d.capture)).toEqual(captureModel(src));
    expect(d.capture.frames.length).toBeLessThanOrEqual(new Set(d.taskStack).size * 64);
  });

  test("lines, frame counts and ids that do not add up are corrupt, and rows never outgrow the file", () => {
    // capture.json: native JSON, every frame on line 0 (stored one by one in frames.lines).
    const { header, body } = parts(encodeSnapshot(cap, table));
    const tk = body.tasks as Record<string, any>;
    const fr = body.frames as Record<string, any>;
    expect(fr.lines.n).toBeGreaterThan(0);
    const lines = Array.from({ length: fr.lines.n }, () => 0);
    const stackLen = Array.from(decodeInts(fr.stackLen, fr.stacks, "stackLen"));
    const longest = stackLen.indexOf(Math.max(...stackLen));
    const cases: [string, Record<string, unknown>][] = [
      ["one line more than the frames on lines of their own", { ...body, frames: { ...fr, lines: encodeInts([...lines, 0]) } }],
      ["one line fewer", { ...body, frames: { ...fr, lines: encodeInts(lines.slice(1)) } }],
      ["more lines than frames", { ...body, frames: { ...fr, lines: { m: "r", n: fr.n + 1, b: Uint8Array.of(0, 0x80, 0x80, 0x04) } } }],
      ["a line out of range", { ...body, frames: { ...fr, lines: encodeInts(lines.map((_, i) => (i === 0 ? 2 ** 33 : 0))) } }],
      ["every task on the longest stack (more frames than declared)", { ...body, tasks: { ...tk, stack: encodeInts(new Array(tk.n).fill(longest)) } }],
      ["a negative pid", { ...body, tasks: { ...tk, pid: encodeInts(new Array(tk.n).fill(-3), "d") } }],
      ["a negative tid run", { ...body, tasks: { ...tk, tid: encodeInts(new Array(tk.n).fill(-3), "r") } }],
      ["a pid column one short", { ...body, tasks: { ...tk, pid: encodeNullable(new Array(tk.n - 1).fill(1)) } }],
      ["a stack status out of range", { ...body, tasks: { ...tk, stackStatus: encodeInts(new Array(tk.n).fill(9)) } }],
    ];
    const before = process.memoryUsage().heapUsed;
    for (const [what, b] of cases) {
      expect(codeOf(() => decodeSnapshot(rebuildSectioned(header, b), what)), what).toBe("E_SNAPSHOT_CORRUPT");
      expect(codeOf(() => decodeSnapshot(rebuildWhole(header, b), what)), what).toBe("E_SNAPSHOT_CORRUPT");
    }
    // A body declaring 2^26 frames per task through one huge stack: the tasks are refused as
    // soon as they reference more frames than declared, before rows are copied for them.
    const huge = {
      ...body,
      frames: { ...fr, stacks: 1, stackLen: encodeInts([2 ** 26], "r"), stackRows: { m: "r", n: 2 ** 26, b: Uint8Array.of(0, 0x80, 0x80, 0x80, 0x20) }, lines: encodeInts([]) },
      tasks: { ...tk, stack: encodeInts(new Array(tk.n).fill(0), "r"), firstLine: encodeInts(new Array(tk.n).fill(1), "r") },
    };
    expect(["E_SNAPSHOT_CORRUPT", "E_SNAPSHOT_TOO_LARGE"]).toContain(codeOf(() => decodeSnapshot(rebuildWhole(header, huge), "huge")));
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(256 * 1024 * 1024);
  });

  test("pid and tid columns decode straight into the task table: nulls as NaN, every value checked", () => {
    const vals = [null, 0, 1, 7, 2 ** 40, null, 5];
    for (const m of ["d", "r"] as const) {
      const out = new Float64Array(vals.length + 3).fill(-1);
      decodeIdsInto(encodeNullable(vals, m), out, vals.length, "pid");
      expect(Array.from(out.subarray(0, vals.length), (x) => (Number.isNaN(x) ? null : x))).toEqual(vals);
      expect(Array.from(out.subarray(vals.length))).toEqual([-1, -1, -1]);
    }
    const bad = encodeInts([1, 2, -1], "d");
    expect(() => decodeIdsInto(bad, new Float64Array(3), 3, "pid")).toThrow(/pid\[2\]/);
    expect(() => decodeIdsInto(encodeInts([1, 2], "d"), new Float64Array(3), 3, "pid")).toThrow(/expected/);
    expect(() => decodeIdsInto({ m: "d", n: 2 ** 40, b: new Uint8Array(4) }, new Float64Array(4), 2 ** 40, "pid")).toThrow(/declares|expected|values into/);
  });
});

describe("symbol sizes of a decoded table", () => {
  /** A kallsyms text: objects interleaved or not, addresses in order or not, runs of equal addresses, 64-bit gaps. */
  const tableArb = fc
    .array(
      fc.record({
        object: fc.constantFrom("", "", "", "kvm", "xfs", "nf_tables"),
        hi: fc.constantFrom(0xffffffff, 0xffffffff, 0xffffffff, 0xfffffffe, 0),
        step: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.integer({ min: -64, max: 4096 }), fc.constant(2 ** 31)),
        type: fc.constantFrom("t", "T", "d", "D", "b", "r"),
      }),
      { minLength: 1, maxLength: 300 },
    )
    .map((rows) => {
      const at = new Map<string, number>();
      return rows
        .map((r, i) => {
          const lo = (((at.get(r.object) ?? 0x81000000) + r.step) % 2 ** 32) >>> 0;
          at.set(r.object, lo);
          const addr = `${r.hi.toString(16).padStart(8, "0")}${lo.toString(16).padStart(8, "0")}`;
          return `${addr} ${r.type} s${i % 37}${r.object === "" ? "" : `\t[${r.object}]`}`;
        })
        .join("\n");
    });

  test("equal table.ts's sizes for every order of addresses and objects; a decoded table carries them", () => {
    const real = hostTable();
    expect(Array.from(symbolSizes(real.addrLo, real.addrHi, real.object, real.objects.length))).toEqual(Array.from(real.size));
    fc.assert(
      fc.property(tableArb, (text) => {
        let t: SymbolTable;
        try {
          t = parseSymbolTable(text, { file: "random" });
        } catch {
          return; // a table parse refuses (all-zero addresses)
        }
        expect(Array.from(symbolSizes(t.addrLo, t.addrHi, t.object, t.objects.length))).toEqual(Array.from(t.size));
        const d = decodeSnapshot(encodeSnapshot(cap, t), "sizes");
        expect(symbolsModel(d.symbols!)).toEqual(symbolsModel(t));
        expect(Array.from(d.symbols!.size)).toEqual(Array.from(t.size));
      }),
      { numRuns: 300, seed: 11 },
    );
  });
});

describe("stored names of a decoded table", () => {
  test("the same blob or the same error as table.ts nameBlobFromStored, for real and hostile names", () => {
    const { body } = parts(encodeSnapshot(cap, table));
    const sy = body.symbols as Record<string, any>;
    const chars = Uint8Array.from(sy.names as Uint8Array);
    expect(storedNameBlob(sy.n, sy.pad, sy.nameLen, chars)).toEqual(nameBlobFromStored(sy.n, sy.pad, sy.nameLen, chars));
    fc.assert(
      fc.property(storedNamesArb(), ({ n, pad, len, chars }) => {
        expect(storedNameBlob(n, pad, len, chars)).toEqual(nameBlobFromStored(n, pad, len, chars));
        expect(storedNameBlob(n + 9, pad, len, chars)).toEqual(nameBlobFromStored(n + 9, pad, len, chars));
      }),
      { numRuns: 2000, seed: 3 },
    );
  });
});

describe("bulk appends of the model's columns", () => {
  test("TaskTable.appendBlank: the rows pushIds(null, null, 0, 0, 0, 'ok') would append, growing as push does", () => {
    const a = new TaskTable(2);
    const b = new TaskTable(2);
    a.push(newTask({ pid: 1, tid: 1, frameStart: 0, ppid: 3, comm: Uint8Array.of(65), state: "S" }));
    b.push(newTask({ pid: 1, tid: 1, frameStart: 0, ppid: 3, comm: Uint8Array.of(65), state: "S" }));
    expect(a.appendBlank(5)).toBe(1);
    for (let i = 0; i < 5; i++) b.pushIds(null, null, 0, 0, 0, "ok");
    expect(a.length).toBe(6);
    expect(a.toArray()).toEqual(b.toArray());
    // Rows left behind by pop() are blank again.
    a.set(5, newTask({ pid: 9, tid: 9, frameStart: 3, frameCount: 2, line: 4, state: "D", running: true, cpu: 1 }));
    a.pop();
    a.appendBlank(1);
    expect(a.get(5)).toEqual(b.get(5));
    expect(new TaskTable(1).appendBlank(0)).toBe(0);
  });

  test("FrameColumns.appendRows: rows as push() leaves them, growing the columns", () => {
    const f = new FrameColumns(2);
    const g = new FrameColumns(2);
    f.push();
    f.symbol[0] = 7;
    g.push();
    g.symbol[0] = 7;
    expect(f.appendRows(10)).toBe(1);
    for (let i = 0; i < 10; i++) g.push();
    expect(f.length).toBe(11);
    for (const col of ["symbol", "object", "buildId", "offset", "size", "addrLo", "addrHi", "flags", "line"] as const) {
      expect(Array.from(f[col].subarray(0, f.length)), col).toEqual(Array.from(g[col].subarray(0, g.length)));
    }
    expect(f.appendRows(0)).toBe(11);
  });
});
