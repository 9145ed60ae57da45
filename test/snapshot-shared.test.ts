/**
 * Snapshot format 1.1 internals: decoders share frame rows between tasks of one stack
 * (Capture.sharedRows), encoders write a shared capture like any other, the decoded symbol table
 * answers name lookups from its hash index exactly as the old Map did, and a symbol section is
 * reused across snapshots only when its bytes are identical.
 */
import { crc32 as zcrc32 } from "node:zlib";
import { Packr } from "msgpackr";
import { beforeAll, describe, expect, test } from "vitest";
import { type Capture, FrameFlag, TaskTable } from "../src/model.js";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { crc32 } from "../src/snapshot/crc32.js";
import { parseSnapshotJson, snapshotToJson } from "../src/snapshot/json.js";
import { crc32Combine, decodeSnapshot, encodeSnapshot, SymbolSectionCache } from "../src/snapshot/psnap.js";
import { resolveFrames } from "../src/symbols/resolve.js";
import { isPaddingName, NameIndex, parseSymbolTable, rowsNamed, type SymbolTable } from "../src/symbols/table.js";
import { codeOf, hostCapture, hostTable, runCheck, taskLines } from "./helpers.js";

/** What finishTable computed before it became lazy: the reference for byName, sympos, dupCount, padding. */
function referenceColumns(t: SymbolTable): { byName: Map<string, number[]>; sympos: number[]; dupCount: number[]; padding: number[] } {
  const names = t.names;
  const byName = new Map<string, number[]>();
  names.forEach((n, i) => {
    const l = byName.get(n);
    if (l === undefined) byName.set(n, [i]);
    else l.push(i);
  });
  const sympos = new Array<number>(names.length).fill(0);
  const dupCount = new Array<number>(names.length).fill(0);
  for (const rows of byName.values()) {
    const perObject = new Map<number, number[]>();
    for (const r of rows) perObject.set(t.object[r], [...(perObject.get(t.object[r]) ?? []), r]);
    for (const same of perObject.values()) same.forEach((r, k) => ((sympos[r] = k + 1), (dupCount[r] = same.length)));
  }
  return { byName, sympos, dupCount, padding: names.map((n) => (isPaddingName(n) ? 1 : 0)) };
}

let table: SymbolTable;
beforeAll(() => {
  table = hostTable();
});

describe("shared frame rows", () => {
  test("psnap: tasks of one stack share rows; lines, model and verdict as before", () => {
    for (const name of ["proc-grep.txt", "proc-tail.txt", "capture.json"] as const) {
      const cap = hostCapture(name);
      const d = decodeSnapshot(encodeSnapshot(cap, table), name);
      expect(d.capture.sharedRows).toBe(true);
      expect(captureModel(d.capture), name).toEqual(captureModel(cap));
      expect(taskLines(d.capture), name).toEqual(taskLines(cap));
      // One copy per distinct (stack, line shape): far fewer rows than frames.
      // (tail -n +1 blocks start with a header line: their tasks keep rows of their own.)
      const frames = cap.tasks.toArray().reduce((n, t) => n + t.frameCount, 0);
      if (name === "proc-tail.txt") expect(d.capture.frames.length, name).toBeLessThanOrEqual(frames);
      else expect(d.capture.frames.length, name).toBeLessThan(frames);
      // Equal stack ids with lines from the task's own line share the rows.
      const first = new Map<number, number>();
      d.capture.tasks.forEach((t, i) => {
        if (t.frameCount === 0) return;
        const shared = (d.capture.frames.flags[t.frameStart] & FrameFlag.SHARED) !== 0;
        if (!shared) return;
        const s = d.taskStack[i];
        if (!first.has(s)) first.set(s, t.frameStart);
        else expect(t.frameStart).toBe(first.get(s));
      });
      const funcs = ["smpboot_thread_fn", "do_epoll_wait"];
      const a = runCheck(cap, funcs, { symbols: table }).verdict;
      const b = runCheck(d.capture, funcs, { symbols: d.symbols }).verdict;
      expect(b.verdict, name).toBe(a.verdict);
      expect(b.counts, name).toEqual(a.counts);
      expect(b.blockers.map((x) => [x.task, x.frameIndex]), name).toEqual(a.blockers.map((x) => [x.task, x.frameIndex]));
    }
  });

  test("grep -H lines: the rows of a stack are stored once however many tasks have it", () => {
    const cap = hostCapture("proc-grep.txt");
    const d = decodeSnapshot(encodeSnapshot(cap, null), "g");
    const stacks = new Set(d.taskStack);
    let maxRows = 0;
    for (const s of stacks) maxRows += d.capture.tasks.find((_, i) => d.taskStack[i] === s)!.frameCount * 2;
    expect(d.capture.frames.length).toBeLessThanOrEqual(maxRows);
    expect(d.capture.tasks.some((t) => t.frameCount > 0 && (d.capture.frames.flags[t.frameStart] & FrameFlag.SHARED) !== 0)).toBe(true);
  });

  test("encoders write a shared capture with each task's own lines; JSON decodes to shared rows too", () => {
    const cap = hostCapture("proc-grep.txt");
    const d1 = decodeSnapshot(encodeSnapshot(cap, null), "a");
    // Re-encode the shared capture (binary and JSON): same model, same lines.
    const d2 = decodeSnapshot(encodeSnapshot(d1.capture, null), "b");
    expect(captureModel(d2.capture)).toEqual(captureModel(cap));
    const json = snapshotToJson(d1.capture, null);
    expect(json).toBe(snapshotToJson(cap, null));
    const j = parseSnapshotJson(json, "j");
    expect(j.capture.sharedRows).toBe(true);
    expect(j.capture.frames.length).toBe(d1.capture.frames.length);
    expect(captureModel(j.capture)).toEqual(captureModel(cap));
    expect(Array.from(j.taskStack)).toEqual(Array.from(d1.taskStack));
    // The SHARED mark never reaches a file.
    const again = decodeSnapshot(encodeSnapshot(j.capture, null), "c");
    expect(captureModel(again.capture)).toEqual(captureModel(cap));
  });

  test("tasks whose lines do not start at their own line keep rows of their own", () => {
    const cap = hostCapture("proc-grep.txt");
    // Move every other task's block down one line (a header line before its frames).
    const tasks = cap.tasks.map((t, i) => (i % 2 === 0 ? t : { ...t, line: Math.max(0, t.line - 1) }));
    const odd: Capture = { ...cap, tasks: TaskTable.from(tasks) };
    const d = decodeSnapshot(encodeSnapshot(odd, null), "o");
    expect(taskLines(d.capture)).toEqual(taskLines(odd));
    expect(captureModel(d.capture)).toEqual(captureModel(odd));
  });
});

describe("symbol table from a snapshot", () => {
  test("byName, sympos, dupCount, padding, sizes and sections equal the eager computation", () => {
    const d = decodeSnapshot(encodeSnapshot(hostCapture("capture.json"), table), "s");
    const s = d.symbols!;
    const ref = referenceColumns(table);
    // Lookups before anything materializes the names.
    for (const name of ["schedule", "init_once", "__pfx_init_once", "_text", "no_such_symbol", "__pfx_", "", "__pfx___pfx_x"]) {
      expect(s.byName.get(name), name).toEqual(ref.byName.get(name));
      expect(s.byName.has(name), name).toBe(ref.byName.has(name));
    }
    for (const [name, rows] of ref.byName) expect(s.byName.get(name)).toEqual(rows);
    expect(Array.from(s.sympos)).toEqual(ref.sympos);
    expect(Array.from(s.dupCount)).toEqual(ref.dupCount);
    expect(Array.from(s.padding)).toEqual(ref.padding);
    expect(Array.from(s.size)).toEqual(Array.from(table.size));
    expect(s.sections).toEqual(table.sections);
    expect(s.text).toBe(table.text);
    // Iteration and size turn the index into a full Map.
    expect(s.byName.size).toBe(ref.byName.size);
    expect([...s.byName.keys()].sort()).toEqual([...ref.byName.keys()].sort());
    // A spread copy keeps every field.
    expect(symbolsModel({ ...s })).toEqual(symbolsModel(table));
  });

  test("odd names: __pfx_ chains, a bare __pfx_, __cfi_, unsorted module symbols", () => {
    const text = [
      "ffffffffa0000100 t mod_b\t[m]",
      "ffffffffa0000000 t __pfx_mod_a\t[m]",
      "ffffffffa0000010 t mod_a\t[m]",
      "ffffffff81000000 T _text",
      "ffffffff81000010 T __pfx_",
      "ffffffff81000020 T __pfx___pfx_x",
      "ffffffff81000030 T __pfx_x",
      "ffffffff81000040 T x",
      "ffffffff81000050 t __cfi_y",
      "ffffffff81000060 t y",
      "ffffffff81000070 t y",
      "ffffffff81000070 t __pfx_z",
      "ffffffff81000080 t z",
      "ffffffff81000090 T _etext",
    ].join("\n");
    const t = parseSymbolTable(text, { file: "odd" });
    const ref = referenceColumns(t);
    const d = decodeSnapshot(encodeSnapshot(hostCapture("capture.json"), t), "odd").symbols!;
    for (const name of [...ref.byName.keys(), "__pfx___pfx_", "__pfx___pfx___pfx_x", "_"]) expect(d.byName.get(name), name).toEqual(ref.byName.get(name));
    expect(d.names).toEqual(t.names);
    expect(Array.from(d.size)).toEqual(Array.from(t.size));
    expect(Array.from(d.size.subarray(0, 3))).toEqual([0, 0x10, 0xf0]);
    expect(Array.from(d.sympos)).toEqual(ref.sympos);
    expect(Array.from(d.padding)).toEqual(ref.padding);
  });
});

describe("symbol sections reused by exact bytes", () => {
  test("a second snapshot with the same section hits; another section or a damaged one does not", () => {
    const cap = hostCapture("capture.json");
    const cache = new SymbolSectionCache(2);
    const a = encodeSnapshot(cap, table);
    const b = encodeSnapshot({ ...cap, host: { ...cap.host, hostname: "other" }, tasks: TaskTable.from(cap.tasks.toArray().slice(0, 50)) }, table);
    const da = decodeSnapshot(a, "a", { cache });
    const db = decodeSnapshot(b, "b", { cache });
    expect([cache.misses, cache.hits]).toEqual([1, 1]);
    expect(db.symbols).toBe(da.symbols);
    expect(db.capture.host.hostname).toBe("other");
    expect(captureModel(db.capture)).toEqual(captureModel(decodeSnapshot(b, "b").capture));

    // Same release string, other table (one size differs): a miss, and its own table.
    const lines = parseSymbolTable(
      hostCaptureKallsymsVariant(),
      { file: "variant" },
    );
    const c = encodeSnapshot(cap, lines);
    const dc = decodeSnapshot(c, "c", { cache });
    expect(cache.misses).toBe(2);
    expect(dc.symbols).not.toBe(da.symbols);
    expect(symbolsModel(dc.symbols!)).toEqual(symbolsModel(lines));

    // A damaged copy of a cached section is not a hit and fails its checksum.
    const dv = new DataView(a.buffer, a.byteOffset);
    const bodyAt = 32 + dv.getUint32(12, true);
    const damaged = a.slice();
    damaged[damaged.length - 100] ^= 0x10;
    expect(codeOf(() => decodeSnapshot(damaged, "d", { cache }))).toBe("E_SNAPSHOT_CHECKSUM");
    const damagedRest = a.slice();
    damagedRest[bodyAt + 20] ^= 0x10;
    expect(codeOf(() => decodeSnapshot(damagedRest, "e", { cache }))).toBe("E_SNAPSHOT_CHECKSUM");
    expect(cache.size).toBe(2);
  });

  test("a wrong or hostile symbolsAt never changes what is read: the body map decides", () => {
    const cap = hostCapture("capture.json");
    const a = encodeSnapshot(cap, table);
    const p = new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true, useToJSON: false, copyBuffers: true });
    const dv = new DataView(a.buffer, a.byteOffset);
    const hl = dv.getUint32(12, true);
    const header = p.unpack(a.subarray(32, 32 + hl)) as Record<string, unknown> & { symbolsAt: [number, number] };
    const body = a.subarray(32 + hl);
    const [off, len] = header.symbolsAt;
    const want = captureModel(decodeSnapshot(a, "a").capture);
    const wantSyms = symbolsModel(decodeSnapshot(a, "a").symbols!);
    for (const hint of [null, [off - 1, len + 1], [off + 1, len - 1], [0, body.length], [9, body.length - 9], [off, len + 5], "x", [off, -1], [2 ** 60, 1]]) {
      const h = p.pack({ ...header, symbolsAt: hint }).slice();
      const out = new Uint8Array(32 + h.length + body.length);
      out.set(a.subarray(0, 32));
      const odv = new DataView(out.buffer);
      odv.setUint32(12, h.length, true);
      odv.setUint32(20, crc32(h), true);
      odv.setUint32(28, crc32(out, 0, 28), true);
      out.set(h, 32);
      out.set(body, 32 + h.length);
      const cache = new SymbolSectionCache();
      for (let k = 0; k < 2; k++) {
        const d = decodeSnapshot(out, "hint", { cache });
        expect(captureModel(d.capture), JSON.stringify(hint)).toEqual(want);
        expect(symbolsModel(d.symbols!), JSON.stringify(hint)).toEqual(wantSyms);
      }
    }
  });

  test("decoded names never point into bytes the caller may reuse (a fleet worker's read buffer)", () => {
    const a = encodeSnapshot(hostCapture("capture.json"), table);
    const want = symbolsModel(table);
    // Plain decode: a copy. Through a cache: a view into the cache's own copy.
    for (const opts of [{}, { cache: new SymbolSectionCache(2) }]) {
      const b = a.slice();
      const d = decodeSnapshot(b, "reused", opts);
      b.fill(0x41);
      expect(symbolsModel(d.symbols!)).toEqual(want);
    }
    // keepBytes: the caller promises the bytes stay; same table.
    expect(symbolsModel(decodeSnapshot(a.slice(), "kept", { keepBytes: true }).symbols!)).toEqual(want);
  });

  test("CRC-32 combine equals the CRC of the concatenation", () => {
    const b = new Uint8Array(70_001).map((_, i) => (i * 7919 + 13) & 0xff);
    for (const cut of [0, 1, 3, 4096, 65_536, 70_000, 70_001]) {
      expect(crc32Combine(crc32(b.subarray(0, cut)), crc32(b.subarray(cut)), b.length - cut)).toBe(zcrc32(b));
    }
  });
});

/** The dev host's kallsyms with one symbol moved by 16 bytes: same length, other sizes. */
function hostCaptureKallsymsVariant(): string {
  const t = hostTable();
  const lines: string[] = [];
  for (let i = 0; i < t.count; i++) {
    let lo = t.addrLo[i];
    if (t.names[i] === "do_epoll_wait") lo += 16;
    const mod = t.objects[t.object[i]];
    lines.push(`${t.addrHi[i].toString(16).padStart(8, "0")}${lo.toString(16).padStart(8, "0")} ${String.fromCharCode(t.type[i])} ${t.names[i]}${mod === "vmlinux" ? "" : `\t[${mod}]`}`);
  }
  return lines.join("\n");
}

/** Per task and frame (a decoded capture shares rows): status, symbol row and key. */
function resolvedView(c: Capture, r: ReturnType<typeof resolveFrames>): number[][][] {
  return c.tasks.map((t) =>
    Array.from({ length: t.frameCount }, (_, k) => {
      const i = t.frameStart + k;
      return [r.status[i], r.symbol[i], r.keys[2 * i], r.keys[2 * i + 1]];
    }),
  );
}

describe("format 1.2: a snapshot's frames carry their symbol rows", () => {
  test("resolving a decoded capture builds no name index and gives the original's rows and keys", () => {
    const cap = hostCapture("capture.json");
    const d = decodeSnapshot(encodeSnapshot(cap, table), "r");
    const idx = d.symbols!.byName as NameIndex;
    const mine = resolveFrames(d.capture, d.symbols);
    expect(idx.indexed).toBe(false);
    const theirs = resolveFrames(cap, table);
    expect(resolvedView(d.capture, mine)).toEqual(resolvedView(cap, theirs));
    // A check with the patch's functions and the section bounds still only scans.
    const funcs = ["smpboot_thread_fn", "do_epoll_wait", "init_once,2"];
    const a = runCheck(cap, funcs).verdict;
    const b = runCheck(d.capture, funcs, { symbols: d.symbols }).verdict;
    expect(idx.indexed).toBe(false);
    expect(b.counts).toEqual(a.counts);
    expect(b.kernelCheck).toEqual(a.kernelCheck);
    expect(b.reasons).toEqual(a.reasons);
  });

  test("the rows are used only with the snapshot's own table; derived captures keep them", () => {
    const cap = hostCapture("capture.json");
    const d = decodeSnapshot(encodeSnapshot(cap, table), "r");
    // Another table (a copy): resolved by name, the same answer.
    const other = parseSymbolTable(hostCaptureKallsymsVariant(), { file: "variant" });
    const byName = resolveFrames(d.capture, other);
    expect((other.byName as NameIndex).indexed).toBe(true);
    expect(resolvedView(d.capture, byName)).toEqual(resolvedView(cap, resolveFrames(cap, other)));
    // The kpatch model checks a derived capture (added tasks): same verdict as the original's.
    for (const model of ["kpatch", "quiesce"] as const) {
      const a = runCheck(cap, ["do_epoll_wait"], { options: { model } }).verdict;
      const b = runCheck(d.capture, ["do_epoll_wait"], { symbols: d.symbols, options: { model } }).verdict;
      expect(b.counts, model).toEqual(a.counts);
    }
  });

  test("lookups before the index is built scan; their answers equal the index's; enough of them build it", () => {
    const d = decodeSnapshot(encodeSnapshot(hostCapture("capture.json"), table), "l").symbols!;
    const idx = d.byName as NameIndex;
    const ref = referenceColumns(table).byName;
    const names = ["schedule", "init_once", "__pfx_init_once", "_text", "no_such_symbol", "__pfx_", "", "__pfx___pfx_x", "__sched_text_start", "_einittext"];
    const many = idx.lookupMany(names);
    expect(idx.indexed).toBe(false);
    names.forEach((n, k) => expect(many[k], n).toEqual(ref.get(n)));
    expect(d.sections).toEqual(table.sections);
    expect(d.text).toBe(table.text);
    for (const n of ["do_epoll_wait", "worker_thread", "__pfx_worker_thread", "kthread"]) expect(rowsNamed(d, n), n).toEqual(ref.get(n));
    expect(idx.indexed).toBe(false);
    // A string-named table scans the same way.
    const strs = parseSymbolTable(hostCaptureKallsymsVariant(), { file: "variant" });
    const sIdx = strs.byName as NameIndex;
    expect(sIdx.lookupMany(names)).toEqual(names.map((n) => ref.get(n)));
    expect(sIdx.indexed).toBe(false);
    // Past NameIndex.SCANS scans, lookups build the index (a caller that looks up many names).
    for (let k = 0; k <= NameIndex.SCANS; k++) rowsNamed(d, `missing_${k}`);
    expect(idx.indexed).toBe(true);
    for (const n of names) expect(rowsNamed(d, n), n).toEqual(ref.get(n));
  });
});
