/**
 * The binary snapshot (.psnap) and its JSON form: round trips with the dev host's capture and
 * kallsyms, msgpackr typed arrays, redaction, and every corruption class rejected with its code
 * in bounded memory.
 */
import { crc32 as zcrc32 } from "node:zlib";
import { Packr } from "msgpackr";
import { beforeAll, describe, expect, test } from "vitest";
import { type Capture, FrameFlag } from "../src/model.js";
import { decodeInts, encodeInts } from "../src/snapshot/columns.js";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { crc32 } from "../src/snapshot/crc32.js";
import { parseSnapshotJson, snapshotToJson } from "../src/snapshot/json.js";
import { decodeSnapshot, encodeSnapshot, isSnapshot, readSnapshotHeader, SNAPSHOT_MAGIC } from "../src/snapshot/psnap.js";
import { parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";
import { codeOf, hostCapture, hostTable, runCheck } from "./helpers.js";

let cap: Capture;
let table: SymbolTable;
let bytes: Uint8Array;

beforeAll(() => {
  cap = hostCapture("capture.json");
  table = hostTable();
  bytes = encodeSnapshot(cap, table);
});

describe("round trips", () => {
  test("capture.json + kallsyms → psnap: equal model, same verdict", () => {
    expect(isSnapshot(bytes)).toBe(true);
    const d = decodeSnapshot(bytes, "x.psnap");
    expect(captureModel(d.capture)).toEqual(captureModel(cap));
    expect(symbolsModel(d.symbols!)).toEqual(symbolsModel(table));
    const h = readSnapshotHeader(bytes);
    expect(h).toMatchObject({ tasks: cap.tasks.length, hostname: "vm", release: "6.18.44-fc-v857", redacted: false, complete: false, symbols: table.count });
    const funcs = ["smpboot_thread_fn", "do_epoll_wait"];
    const a = runCheck(cap, funcs).verdict;
    const b = runCheck(d.capture, funcs, { symbols: d.symbols }).verdict;
    expect(b.verdict).toBe(a.verdict);
    expect(b.counts).toEqual(a.counts);
    expect(b.blockers.map((x) => [x.task, x.frameIndex])).toEqual(a.blockers.map((x) => [x.task, x.frameIndex]));
  });

  test("capture → psnap → JSON → psnap: equal models", () => {
    const withPatches: Capture = {
      ...cap,
      modules: ["kvm", "kvm_intel"],
      livepatches: [{ name: "livepatch_fix", enabled: true, transition: false, replace: true, forced: false, stackOrder: 1, funcs: [{ object: "vmlinux", oldName: "cmdline_proc_show", oldSympos: 0, newName: null, newSize: null, force: false }] }],
    };
    const d1 = decodeSnapshot(encodeSnapshot(withPatches, table), "a.psnap");
    const json = snapshotToJson(d1.capture, d1.symbols);
    const d2 = parseSnapshotJson(json, "a.json");
    const d3 = decodeSnapshot(encodeSnapshot(d2.capture, d2.symbols), "b.psnap");
    expect(captureModel(d3.capture)).toEqual(captureModel(withPatches));
    expect(symbolsModel(d3.symbols!)).toEqual(symbolsModel(table));
    expect(d3.header).toEqual(d1.header);
    // Distinct-stack ids: the same partition of tasks from the binary and the JSON form.
    const partition = (ids: Int32Array): string => {
      const first = new Map<number, number>();
      return Array.from(ids, (id, i) => (first.has(id) ? first.get(id)! : (first.set(id, i), i))).join(",");
    };
    expect(d1.taskStack.length).toBe(cap.tasks.length);
    expect(partition(d2.taskStack)).toBe(partition(d1.taskStack));
    expect(new Set(d1.taskStack).size).toBeLessThan(cap.tasks.length);
  });

  test("text-derived capture keeps source lines; odd frames survive JSON", () => {
    const text = hostCapture("proc-grep.txt");
    const d = decodeSnapshot(encodeSnapshot(text, null), "t.psnap");
    expect(captureModel(d.capture)).toEqual(captureModel(text));
    const j = parseSnapshotJson(snapshotToJson(d.capture, null), "t.json");
    expect(captureModel(j.capture)).toEqual(captureModel(text));
    expect(j.symbols).toBeNull();
  });

  test("redacted: no address anywhere, names, sizes, sympos and section rows kept", () => {
    const red = encodeSnapshot(cap, table, { redact: true });
    const d = decodeSnapshot(red, "r.psnap");
    expect(d.header.redacted).toBe(true);
    for (let i = 0; i < d.capture.frames.length; i++) expect(d.capture.frames.flags[i] & FrameFlag.HAS_ADDRESS).toBe(0);
    const s = d.symbols!;
    expect(s.hasAddresses).toBe(false);
    expect(s.coverage).toBe("names-only");
    expect(s.names).toEqual(table.names);
    expect(Array.from(s.size)).toEqual(Array.from(table.size));
    expect(Array.from(s.sympos)).toEqual(Array.from(table.sympos));
    const sched = Array.from(d.sectionRows!.sched!, (r) => s.names[r]);
    expect(sched).toContain("schedule");
    expect(sched).not.toContain("do_epoll_wait");
    const json = snapshotToJson(d.capture, d.symbols, { redacted: true, sectionRows: d.sectionRows });
    expect(json).not.toMatch(/0xffff/);
    const back = parseSnapshotJson(json, "r.json");
    expect(symbolsModel(back.symbols!)).toEqual(symbolsModel(s));
    expect(back.sectionRows).toEqual(d.sectionRows);
    expect(back.header.redacted).toBe(true);
    // Same model when the JSON goes back to binary.
    const again = decodeSnapshot(encodeSnapshot(back.capture, back.symbols, { redacted: true, sectionRows: back.sectionRows }), "r2.psnap");
    expect(captureModel(again.capture)).toEqual(captureModel(d.capture));
    expect(again.sectionRows).toEqual(d.sectionRows);
  });

  test("hashed comms: user tasks hashed, kthreads readable", () => {
    const d = decodeSnapshot(encodeSnapshot(cap, null, { hashComms: true }), "h.psnap");
    expect(d.header.commsHashed).toBe(true);
    const dec = new TextDecoder("latin1");
    const byTid = new Map(cap.tasks.map((t) => [t.tid, t]));
    let hashed = 0;
    for (const t of d.capture.tasks) {
      const orig = byTid.get(t.tid)!;
      const kthread = orig.flags !== null && (orig.flags & 0x00200000) !== 0;
      if (kthread) expect(t.comm).toEqual(orig.comm);
      else if (orig.comm !== null) {
        expect(dec.decode(t.comm!)).toMatch(/^~[0-9a-f]{8}$/);
        hashed++;
      }
    }
    expect(hashed).toBeGreaterThan(0);
  });
});

describe("codecs", () => {
  test("msgpackr 2.x moreTypes round-trips typed arrays exactly (1.x truncated them)", () => {
    const p = new Packr({ moreTypes: true, useRecords: false });
    const raw = new Uint8Array(4 * 7 + 1);
    const unaligned = new Uint32Array(raw.buffer.slice(0), 0, 7);
    unaligned.set([0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 12345, 0xdeadbeef]);
    const v = {
      i32: Int32Array.of(-2147483648, -1, 0, 1, 2147483647),
      u32: unaligned,
      u16: Uint16Array.of(0, 1, 0xffff),
      f64: Float64Array.of(0.5, -1e300, Number.MAX_SAFE_INTEGER),
      u64: BigUint64Array.of(0n, 0xffffffffffffffffn, 0xffffffff81000000n),
      sub: new Int32Array([9, 8, 7, 6]).subarray(1, 3),
    };
    const packed = p.pack(v);
    // Four bytes per u32 element on the wire, not one.
    expect(packed.length).toBeGreaterThan(5 * 4 + 7 * 4 + 3 * 2 + 3 * 8 + 3 * 8 + 2 * 4);
    const back = p.unpack(packed) as typeof v;
    expect(back.i32).toBeInstanceOf(Int32Array);
    expect(Array.from(back.i32)).toEqual(Array.from(v.i32));
    expect(back.u32).toBeInstanceOf(Uint32Array);
    expect(Array.from(back.u32)).toEqual(Array.from(v.u32));
    expect(Array.from(back.u16)).toEqual(Array.from(v.u16));
    expect(Array.from(back.f64)).toEqual(Array.from(v.f64));
    expect(Array.from(back.u64)).toEqual(Array.from(v.u64));
    expect(Array.from(back.sub)).toEqual([8, 7]);
  });

  test("integer columns: both codecs, large values, bounded decode", () => {
    const vals = [0, 1, -1, 2 ** 40, -(2 ** 40), 7, 7, 7, 7, 0xffffffff];
    for (const m of ["d", "r"] as const) expect(Array.from(decodeInts(encodeInts(vals, m), vals.length, "t"))).toEqual(vals);
    const c = encodeInts(vals, "d");
    expect(() => decodeInts({ ...c, n: 2 ** 40 }, 2 ** 40, "t")).toThrow(/declares/);
    expect(() => decodeInts(c, 3, "t")).toThrow(/expected/);
    const r = encodeInts([5, 5, 5], "r");
    expect(() => decodeInts(r, 2, "t")).toThrow();
  });

  test("CRC-32 matches zlib's", () => {
    for (const n of [0, 1, 3, 4, 5, 1000, 4099]) {
      const b = new Uint8Array(n).map((_, i) => (i * 131 + 7) & 0xff);
      expect(crc32(b)).toBe(zcrc32(b));
    }
    expect(crc32(bytes)).toBe(zcrc32(bytes));
  });
});

/** Rebuilds a file around new header/body values with valid checksums (hostile but well-formed). */
function rebuild(header: unknown, body: unknown, patchPrefix?: (dv: DataView) => void): Uint8Array {
  const p = new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true, useToJSON: false, copyBuffers: true });
  const h = p.pack(header).slice();
  const b = body instanceof Uint8Array ? body : p.pack(body).slice();
  const out = new Uint8Array(32 + h.length + b.length);
  out.set(SNAPSHOT_MAGIC);
  const dv = new DataView(out.buffer);
  dv.setUint16(8, 1, true);
  dv.setUint32(12, h.length, true);
  dv.setUint32(16, b.length, true);
  dv.setUint32(20, crc32(h), true);
  dv.setUint32(24, crc32(b), true);
  patchPrefix?.(dv);
  dv.setUint32(28, crc32(out, 0, 28), true);
  out.set(h, 32);
  out.set(b, 32 + h.length);
  return out;
}

function parts(b: Uint8Array): { header: Record<string, unknown>; body: Record<string, any> } {
  const p = new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true, copyBuffers: true });
  const dv = new DataView(b.buffer, b.byteOffset);
  const hl = dv.getUint32(12, true);
  return { header: p.unpack(b.subarray(32, 32 + hl)), body: p.unpack(b.subarray(32 + hl)) };
}

describe("corruption is rejected with its code, never a partial load", () => {
  let small: Uint8Array;
  beforeAll(() => {
    small = encodeSnapshot(cap, table);
  });

  test("truncation at every 1/16th", () => {
    for (let k = 0; k < 16; k++) {
      const cut = small.subarray(0, Math.floor((small.length * k) / 16));
      expect(codeOf(() => decodeSnapshot(cut, "t"))).toBe("E_SNAPSHOT_TRUNCATED");
    }
    expect(codeOf(() => decodeSnapshot(small.subarray(0, small.length - 1), "t"))).toBe("E_SNAPSHOT_TRUNCATED");
  });

  test("flipped bytes", () => {
    const hl = new DataView(small.buffer, small.byteOffset).getUint32(12, true);
    const positions = [0, 3, 7, 8, 9, 12, 16, 20, 27, 28, 31, 32, 32 + hl - 1, 32 + hl, 32 + hl + 100, small.length - 1];
    for (let k = 0; k < 48; k++) positions.push(32 + hl + Math.floor(((small.length - 32 - hl) * k) / 48));
    for (const pos of positions) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const b = small.slice();
        b[pos] ^= mask;
        const want = pos < 8 ? "E_SNAPSHOT_MAGIC" : pos < 32 ? "E_SNAPSHOT_CORRUPT" : "E_SNAPSHOT_CHECKSUM";
        expect(codeOf(() => decodeSnapshot(b, "f")), `byte ${pos} ^ ${mask}`).toBe(want);
      }
    }
  });

  test("wrong magic, other files", () => {
    expect(codeOf(() => decodeSnapshot(new TextEncoder().encode('{"format": "patchsafe-capture"}'), "x"))).toBe("E_SNAPSHOT_MAGIC");
    expect(codeOf(() => decodeSnapshot(new TextEncoder().encode("[<0>] schedule+0x3d/0xa0\n".repeat(4)), "x"))).toBe("E_SNAPSHOT_MAGIC");
    expect(isSnapshot(new Uint8Array(3))).toBe(false);
    const png = small.slice();
    png[1] = 0x4e; // "\x89PNG…"
    expect(codeOf(() => decodeSnapshot(png, "x"))).toBe("E_SNAPSHOT_MAGIC");
  });

  test("future major version; a newer minor still reads", () => {
    const { header, body } = parts(small);
    const future = rebuild(header, body, (dv) => dv.setUint16(8, 2, true));
    expect(codeOf(() => decodeSnapshot(future, "v"))).toBe("E_SNAPSHOT_VERSION");
    expect(codeOf(() => readSnapshotHeader(future, "v"))).toBe("E_SNAPSHOT_VERSION");
    const minor = rebuild({ ...header, minor: 7, extra: "ignored" }, { ...body, newThing: [1, 2] }, (dv) => dv.setUint16(10, 7, true));
    expect(decodeSnapshot(minor, "m").capture.tasks.length).toBe(cap.tasks.length);
    expect(codeOf(() => parseSnapshotJson(JSON.stringify({ format: "patchsafe-snapshot", version: 2 }), "j"))).toBe("E_SNAPSHOT_VERSION");
  });

  test("huge declared lengths and counts, within bounded memory", () => {
    const { header, body } = parts(small);
    const before = process.memoryUsage().heapUsed;
    const cases: [string, Uint8Array][] = [
      ["header length", rebuild(header, body, (dv) => dv.setUint32(12, 0xffffffff, true))],
      ["body length", rebuild(header, body, (dv) => dv.setUint32(16, 0xfffffff0, true))],
      ["tasks.n", rebuild({ ...header, tasks: 2 ** 40 }, { ...body, tasks: { ...body.tasks, n: 2 ** 40 } })],
      ["frames.n", rebuild({ ...header, frames: 2 ** 45 }, { ...body, frames: { ...body.frames, n: 2 ** 45 } })],
      ["symbols.n", rebuild({ ...header, symbols: 2 ** 33 }, { ...body, symbols: { ...body.symbols, n: 2 ** 33 } })],
      // Run-length stack lengths declaring 2^40 entries each, with a stackRows column to match.
      [
        "frames.stackLen",
        rebuild(header, {
          ...body,
          frames: { ...body.frames, stackLen: encodeInts(new Array(body.frames.stacks).fill(2 ** 40), "r"), stackRows: { m: "r", n: 2 ** 40 * body.frames.stacks, b: Uint8Array.of(0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01) } },
        }),
      ],
      [
        "frames.stackLen (within the safe-integer range, 400 MB of entries)",
        rebuild(header, { ...body, frames: { ...body.frames, stackLen: encodeInts(new Array(body.frames.stacks).fill(2 ** 26), "r"), stackRows: encodeInts(new Array(1).fill(0), "r") } }),
      ],
    ];
    for (const [what, b] of cases) expect(codeOf(() => decodeSnapshot(b, what)), what).toBe("E_SNAPSHOT_TOO_LARGE");
    // Declared within limits but beyond the file: truncated.
    expect(codeOf(() => decodeSnapshot(rebuild(header, body, (dv) => dv.setUint32(16, 1 << 30, true)), "b"))).toBe("E_SNAPSHOT_TRUNCATED");
    // msgpack containers that declare 2^32-1 entries / bytes inside a checksummed body.
    const hostile = [
      Uint8Array.of(0x81, 0xa4, 0x62, 0x6f, 0x64, 0x79, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01), // {body: array32(2^32-1)}
      Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01), // map32(2^32-1)
      Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61), // str32(4 GiB)
      Uint8Array.of(0xc6, 0xff, 0xff, 0xff, 0xff, 0x00), // bin32(4 GiB)
      Uint8Array.of(0xc9, 0xff, 0xff, 0xff, 0xf0, 0x74, 0x01), // ext32 typed array (4 GiB)
    ];
    for (const h of hostile) expect(codeOf(() => decodeSnapshot(rebuild(header, h), "h"))).toBe("E_SNAPSHOT_CORRUPT");
    // Inconsistent but small counts: corrupt, not a partial model.
    const bad = [
      { ...body, tasks: { ...body.tasks, stack: encodeInts(new Array(body.tasks.n).fill(1e6)) } },
      { ...body, frames: { ...body.frames, stackRows: encodeInts(new Array(body.frames.stackRows.n).fill(1e6)) } },
      { ...body, frames: { ...body.frames, symbol: new Int32Array(3) } },
      { ...body, capture: { ...body.capture, strings: [1, 2] } },
      { ...body, tasks: { ...body.tasks, state: encodeInts(new Array(body.tasks.n).fill(0x0a)) } },
    ];
    for (const b of bad) expect(codeOf(() => decodeSnapshot(rebuild(header, b), "bad"))).toBe("E_SNAPSHOT_CORRUPT");
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(256 * 1024 * 1024);
  });

  test("format 1.2 fields: names, lengths, padding bits, resolved rows and line steps are checked", () => {
    const { header, body } = parts(small);
    const sy = body.symbols as Record<string, any>;
    const fr = body.frames as Record<string, any>;
    const tk = body.tasks as Record<string, any>;
    expect(sy.names).toBeInstanceOf(Uint8Array);
    expect(fr.symRow).toBeInstanceOf(Int32Array);
    expect(tk.lineStep).toBeDefined();
    // Well-formed as is (the rebuilt body is read whole: its symbolsAt no longer fits).
    expect(decodeSnapshot(rebuild(header, body), "ok").capture.tasks.length).toBe(cap.tasks.length);
    const n: number = sy.n;
    const lens = sy.nameLen as Uint8Array;
    const withSymbols = (o: Record<string, unknown>) => ({ ...body, symbols: { ...sy, ...o } });
    const withFrames = (o: Record<string, unknown>) => ({ ...body, frames: { ...fr, ...o } });
    const withTasks = (o: Record<string, unknown>) => ({ ...body, tasks: { ...tk, ...o } });
    const flipPad = (i: number) => {
      const p = (sy.pad as Uint8Array).slice();
      p[i >> 3] ^= 1 << (i & 7);
      return p;
    };
    const firstResolved = Array.from(fr.symRow as Int32Array).findIndex((r) => r >= 0);
    const otherRow = (fr.symRow as Int32Array).slice();
    otherRow[firstResolved] = (otherRow[firstResolved] + 2) % n;
    const sizedFirst = Array.from(fr.symRow as Int32Array).findIndex((r, i) => r >= 0 && (fr.flags[i] & FrameFlag.HAS_SIZE) !== 0);
    const otherSize = (fr.size as Uint32Array).slice();
    otherSize[sizedFirst] += 1;
    const cases: [string, unknown][] = [
      ["names as a string", withSymbols({ names: "abc" })],
      ["names one byte short", withSymbols({ names: (sy.names as Uint8Array).subarray(1) })],
      ["names one byte long", withSymbols({ names: Uint8Array.from([...sy.names, 0x41]) })],
      ["a zero length", withSymbols({ nameLen: Uint8Array.from(lens, (l, i) => (i === 5 ? 0 : l)) })],
      ["a huge length", withSymbols({ nameLen: Uint32Array.from(lens, (l, i) => (i === 5 ? 0xffffffff : l)) })],
      ["lengths as a column", withSymbols({ nameLen: encodeInts(Array.from(lens)) })],
      ["one length short", withSymbols({ nameLen: lens.subarray(1) })],
      ["padding bitset short", withSymbols({ pad: (sy.pad as Uint8Array).subarray(1) })],
      ["padding bitset long", withSymbols({ pad: Uint8Array.from([...sy.pad, 0]) })],
      ...(n % 8 === 0 ? [] : ([["padding bit past the rows", withSymbols({ pad: flipPad(n) })]] as [string, unknown][])),
      ["last row marked", withSymbols({ pad: flipPad(n - 1) })],
      ["a mark moved", withSymbols({ pad: flipPad(1) })],
      ["front coding and bytes mixed", withSymbols({ text: "x", names: undefined })],
      ["symRow of the wrong length", withFrames({ symRow: (fr.symRow as Int32Array).subarray(1) })],
      ["symRow out of range", withFrames({ symRow: (fr.symRow as Int32Array).map((r) => (r >= 0 ? n + 5 : r)) })],
      ["symRow naming another symbol", withFrames({ symRow: otherRow })],
      ["symRow not a status", withFrames({ symRow: (fr.symRow as Int32Array).map((r) => (r >= 0 ? -4 : r)) })],
      ["symRow with another printed size", withFrames({ size: otherSize })],
      ["symRow without a symbol table", { ...withFrames({}), symbols: null }],
      ["line step out of range", withTasks({ lineStep: encodeInts(new Array(tk.n).fill(-5)) })],
      ["first line out of range", withTasks({ firstLine: encodeInts(new Array(tk.n).fill(2 ** 40)) })],
      ["stack id out of range", withTasks({ stack: encodeInts(new Array(tk.n).fill(fr.stacks)) })],
    ];
    for (const [what, b] of cases) expect(codeOf(() => decodeSnapshot(rebuild(what === "symRow without a symbol table" ? { ...header, symbols: null } : header, b), what)), what).toBe("E_SNAPSHOT_CORRUPT");
    // A table whose rows do not fill the last padding byte: a bit past the rows is corrupt.
    const odd = parseSymbolTable(["ffffffff81000000 T _text", "ffffffff81000010 t __pfx_a", "ffffffff81000020 t a", "ffffffff81000030 T _etext"].join("\n"), { file: "odd" });
    const o = parts(encodeSnapshot(cap, odd));
    expect(decodeSnapshot(rebuild(o.header, o.body), "odd").symbols!.names).toEqual(odd.names);
    const pad = (o.body.symbols.pad as Uint8Array).slice();
    expect(pad).toEqual(Uint8Array.of(0b0010));
    for (const bit of [4, 7]) {
      pad[0] = 0b0010 | (1 << bit);
      expect(codeOf(() => decodeSnapshot(rebuild(o.header, { ...o.body, symbols: { ...o.body.symbols, pad } }), "odd")), `bit ${bit}`).toBe("E_SNAPSHOT_CORRUPT");
    }
    // A bin32 names field declaring 4 GiB inside a checksummed body: corrupt, not an allocation.
    const before = process.memoryUsage().heapUsed;
    const bin = Uint8Array.of(0x81, 0xa5, 0x6e, 0x61, 0x6d, 0x65, 0x73, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x41); // {names: bin32(4 GiB)}
    expect(codeOf(() => decodeSnapshot(rebuild(header, bin), "bin"))).toBe("E_SNAPSHOT_CORRUPT");
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024);
  });
});
