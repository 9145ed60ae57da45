import { describe, expect, it } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { parseProcText } from "../src/ingest/procText.js";
import { buildRanges } from "../src/patch/ranges.js";
import { emptyPatch, parseFuncArg, parseRangeArg } from "../src/patch/spec.js";
import { decodeSnapshot, encodeSnapshot } from "../src/snapshot/psnap.js";
import { FrameStatus, resolveFrames } from "../src/symbols/resolve.js";
import { findObjectSymbol, parseSymbolTable, type SymbolTable, symbolAddress } from "../src/symbols/table.js";
import { fixtureBytes, hostKallsyms, hostTable } from "./helpers.js";

describe("symbol table from this machine's /proc/kallsyms", () => {
  const t = hostTable();

  it("holds every line, with real duplicate static names", () => {
    expect(t.count).toBe(hostKallsyms().trimEnd().split("\n").length);
    expect(t.count).toBeGreaterThan(100_000);
    expect(t.byName.get("init_once")?.length).toBe(12);
    expect(t.byName.get("type_show")?.length).toBe(10);
  });

  it("numbers duplicates in kallsyms order (sympos) and flags padding", () => {
    const rows = t.byName.get("init_once")!;
    expect(rows.map((r) => t.sympos[r])).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    for (let k = 1; k < rows.length; k++) expect(symbolAddress(t, rows[k]) > symbolAddress(t, rows[k - 1])).toBe(true);
    expect(rows.every((r) => t.dupCount[r] === 12)).toBe(true);
    const pfx = t.byName.get("__pfx_kthread")![0];
    expect(t.padding[pfx]).toBe(1);
    expect(t.padding[t.byName.get("kthread")![0]]).toBe(0);
  });

  it("sizes every function as the distance to the next address, matching what /proc prints", () => {
    // Every frame of the committed /proc walk resolves with its printed size singling it out.
    const cap = parseProcText(fixtureBytes("host/proc-grep.txt"));
    const r = resolveFrames(cap, t);
    expect(cap.frames.length).toBeGreaterThan(400);
    expect(r.counts.RESOLVED).toBe(cap.frames.length);
    const k = t.byName.get("kthread")![0];
    const next = t.byName.get("__pfx_kthread")![0];
    expect(symbolAddress(t, k) + BigInt(t.size[k])).toBeGreaterThan(symbolAddress(t, k));
    expect(t.size[next]).toBe(16);
  });

  it("finds the section bounds from their marker symbols", () => {
    const s = t.sections;
    for (const b of [s.sched, s.lock, s.entry, s.noinstr, s.cpuidle]) {
      expect(b).not.toBeNull();
      expect(b![1] > b![0]).toBe(true);
    }
    const schedule = symbolAddress(t, t.byName.get("schedule")![0]);
    expect(schedule >= s.sched![0] && schedule < s.sched![1]).toBe(true);
    const kthread = symbolAddress(t, t.byName.get("kthread")![0]);
    expect(kthread >= s.sched![0] && kthread < s.sched![1]).toBe(false);
  });

  it("resolves sympos like klp_find_object_symbol, with the kernel's errors", () => {
    const third = findObjectSymbol(t, "vmlinux", "init_once", 3);
    expect(third.ok && t.sympos[third.index]).toBe(3);
    const amb = findObjectSymbol(t, "vmlinux", "init_once", 0);
    expect(amb.ok).toBe(false);
    expect(!amb.ok && amb.message).toMatch(/^unresolvable ambiguity for symbol 'init_once' in object 'vmlinux'/);
    const pos = findObjectSymbol(t, "vmlinux", "init_once", 13);
    expect(!pos.ok && pos.code).toBe("E_SYMPOS_NOT_FOUND");
    const none = findObjectSymbol(t, "vmlinux", "no_such_function_xyz", 0);
    expect(!none.ok && none.message).toBe("symbol 'no_such_function_xyz' not found in symbol table");
    const unique = findObjectSymbol(t, "vmlinux", "worker_thread", 0);
    expect(unique.ok).toBe(true);
  });
});

describe("symbol table edge cases", () => {
  it("module symbols: sympos in file order, sizes from address order within the module", () => {
    // Module symbols in /proc/kallsyms are not address-sorted.
    const text = [
      "ffffffff81000000 T _text",
      "ffffffff81000100 T foo",
      "ffffffff81000200 T bar",
      "ffffffffc0002000 t helper\t[mymod]",
      "ffffffffc0001000 t helper\t[mymod]",
      "ffffffffc0001ff0 t __pfx_helper\t[mymod]",
      "ffffffffc0003000 t last\t[mymod]",
    ].join("\n");
    const t = parseSymbolTable(text);
    const rows = t.byName.get("helper")!;
    expect(rows.map((r) => t.sympos[r])).toEqual([1, 2]);
    expect(symbolAddress(t, rows[0])).toBe(0xffffffffc0002000n);
    expect(t.size[rows[0]]).toBe(0x1000); // up to `last`
    expect(t.size[rows[1]]).toBe(0xff0); // up to __pfx_helper
    expect(t.objects[t.object[rows[0]]]).toBe("mymod");
    const r = findObjectSymbol(t, "mymod", "helper", 2);
    expect(r.ok && symbolAddress(t, r.index)).toBe(0xffffffffc0001000n);
    expect(findObjectSymbol(t, "vmlinux", "helper", 0).ok).toBe(false);
  });

  it("aliases at one address share a size; the last symbol's size is unknown (0)", () => {
    const t = parseSymbolTable("ffffffff81000000 T a\nffffffff81000000 T b\nffffffff81000040 T c\n");
    expect(t.size[0]).toBe(0x40);
    expect(t.size[1]).toBe(0x40);
    expect(t.size[2]).toBe(0);
  });

  it("refuses a table whose addresses are all zero (read without privilege)", () => {
    expect(() => parseSymbolTable("0000000000000000 T _text\n0000000000000000 T foo\n", { file: "k" })).toThrow(/every address in the symbol table is zero/);
  });

  it("names file and line of a malformed line", () => {
    try {
      parseSymbolTable("ffffffff81000000 T a\nnot a symbol line\n", { file: "ks.txt" });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PatchsafeError);
      expect((e as PatchsafeError).describe()).toMatch(/^ks\.txt:2: /);
    }
  });

  it("System.map: drops what kallsyms never lists before counting sympos, and warns", () => {
    const text = "ffffffff81000000 T _text\nffffffff81000010 t $x\nffffffff81000020 t foo\n0000000000001000 A __crc_bar\nffffffff81000040 t foo\nffffffff81000080 T _etext\n";
    const t = parseSymbolTable(text, { source: "system.map" });
    expect(t.byName.has("$x")).toBe(false);
    expect(t.byName.has("__crc_bar")).toBe(false);
    expect(t.byName.get("foo")!.map((r) => t.sympos[r])).toEqual([1, 2]);
    expect(t.size[t.byName.get("foo")![0]]).toBe(0x20);
    expect(t.warnings.join(" ")).toMatch(/less certain/);
  });
});

describe("resolve", () => {
  const t = hostTable();
  it("a duplicate whose printed size does not single it out is ambiguous; an unknown name unresolved", () => {
    const rows = t.byName.get("type_show")!;
    const sizes = rows.map((r) => t.size[r]);
    const dupSize = sizes.find((s, i) => sizes.indexOf(s) !== i);
    const uniqueSize = sizes.find((s) => sizes.filter((x) => x === s).length === 1)!;
    const lines = [
      `[<0>] type_show+0x10/0x${uniqueSize.toString(16)}`,
      "[<0>] no_such_function_xyz+0x10/0x40",
      "[<0>] worker_thread+0x98/0x999", // unique name, wrong size: another build
    ];
    if (dupSize !== undefined) lines.push(`[<0>] type_show+0x10/0x${dupSize.toString(16)}`);
    const cap = parseProcText(lines.join("\n"));
    const r = resolveFrames(cap, t);
    expect(r.status[0]).toBe(FrameStatus.RESOLVED);
    expect(r.status[1]).toBe(FrameStatus.UNRESOLVED);
    expect(r.status[2]).toBe(FrameStatus.SIZE_MISMATCH);
    if (dupSize !== undefined) expect(r.status[3]).toBe(FrameStatus.AMBIGUOUS);
    // key = start + offset
    const row = rows[sizes.indexOf(uniqueSize)];
    const key = (BigInt(r.keys[1]) << 32n) | BigInt(r.keys[0]);
    expect(key).toBe(symbolAddress(t, row) + 0x10n);
  });

  it("without a symbol table: one synthetic block per (object, name, size), stable and gapped", () => {
    const cap = parseProcText("[<0>] foo+0x10/0x40\n[<0>] foo+0x40/0x40\n[<0>] foo+0x8/0x80 [mod]\n[<0>] bar+0x0/0x10\n");
    const r = resolveFrames(cap, null);
    expect(r.keySpace).toBe("synthetic");
    const key = (i: number) => (BigInt(r.keys[2 * i + 1]) << 32n) | BigInt(r.keys[2 * i]);
    expect(key(1) - key(0)).toBe(0x30n);
    const foo = r.synthetic.get("vmlinux\u0000foo")![0];
    expect(key(0)).toBe(foo.base + 0x10n);
    expect(r.synthetic.get("mod\u0000foo")).toHaveLength(1);
    expect(key(3)).toBeGreaterThan(foo.base + 0x40n); // the gap keeps foo+size off bar
    expect([...r.status.slice(0, 4)]).toEqual([4, 4, 4, 4]);
  });
});

describe("resolve: absolute addresses (crash, old /proc, ARM)", () => {
  const t = hostTable();
  const at = (name: string, off: bigint) => symbolAddress(t, t.byName.get(name)![0]) + off;
  const hexa = (a: bigint) => a.toString(16);

  it("an address inside the named symbol is the key; outside it, the frame is placed by name with a warning", () => {
    const inside = at("worker_thread", 0x98n);
    const cap = parseProcText(`[<${hexa(inside)}>] worker_thread\n[<ffffffff80000000>] worker_thread+0x98/0x310\n`);
    expect(cap.frames.flags[0] & 0x100).toBe(0); // no offset printed
    const r = resolveFrames(cap, t);
    const key = (i: number) => (BigInt(r.keys[2 * i + 1]) << 32n) | BigInt(r.keys[2 * i]);
    expect(r.status[0]).toBe(FrameStatus.RESOLVED);
    expect(key(0)).toBe(inside);
    expect(key(1)).toBe(at("worker_thread", 0x98n));
    expect(r.warnings.join(" ")).toMatch(/another boot/);
  });

  it("a bare address inside a known object is checked directly; one outside every object is unresolved", () => {
    const cap = parseProcText(`[<0>] 0x${hexa(at("worker_thread", 0x10n))}\n[<0>] 0xffffffffc9999999\n`);
    const r = resolveFrames(cap, t);
    expect(r.status[0]).toBe(FrameStatus.ADDRESS);
    expect(r.status[1]).toBe(FrameStatus.UNRESOLVED);
  });
});

describe("KASLR: a System.map reconciled with a dump's runtime addresses", () => {
  it("infers the shift from frames that print symbol and address, and checks addresses through it", () => {
    const map = "ffffffff81000000 T _text\nffffffff81000100 T foo\nffffffff81000200 T bar\nffffffff81000400 T _etext\n";
    const t = parseSymbolTable(map, { source: "system.map" });
    const shift = 0x1a200000n;
    const rt = (a: bigint) => (a + shift).toString(16);
    const cap = parseProcText(`[<${rt(0xffffffff81000110n)}>] foo+0x10/0x100\n[<${rt(0xffffffff81000220n)}>] bar\n[<0>] 0x${rt(0xffffffff81000230n)}\n`);
    const r = resolveFrames(cap, t);
    const key = (i: number) => (BigInt(r.keys[2 * i + 1]) << 32n) | BigInt(r.keys[2 * i]);
    expect(r.warnings.join(" ")).toMatch(/shifted by 0x1a200000 \(KASLR\): reconciled through _text/);
    expect(key(0)).toBe(0xffffffff81000110n);
    expect(key(1)).toBe(0xffffffff81000220n);
    expect(r.status[2]).toBe(FrameStatus.ADDRESS);
    expect(key(2)).toBe(0xffffffff81000230n);
  });

  it("a --range is checked as runtime addresses too: the dump's own address in it is not clean", () => {
    // foo+0x10 prints runtime address R; `--range R-(R+0x10)` copied from the dump must block
    // although the frames are keyed in the System.map's link-time space.
    const map = "ffffffff81000000 T _text\nffffffff81000100 T foo\nffffffff81000200 T bar\nffffffff81000400 T _etext\n";
    const t = parseSymbolTable(map, { source: "system.map" });
    const shift = 0x1a200000n;
    const rt = (a: bigint) => (a + shift).toString(16);
    const cap = parseProcText(`[<${rt(0xffffffff81000110n)}>] foo+0x10/0x100\n[<${rt(0xffffffff81000220n)}>] bar+0x20/0x200\n`);
    const r = resolveFrames(cap, t);
    expect(r.kaslrShift).toBe(shift);
    const patch = { ...emptyPatch(), ranges: [parseRangeArg(`0x${rt(0xffffffff81000100n)}-0x${rt(0xffffffff81000120n)}`)] };
    const ranges = buildRanges(patch, t, r);
    const key = (BigInt(r.keys[1]) << 32n) | BigInt(r.keys[0]);
    expect(ranges.ranges.some((x) => x.role === "original" && key >= x.start && key < x.end)).toBe(true);
    expect(ranges.warnings.join(" ")).toMatch(/checked both as runtime addresses and as System.map addresses/);
  });

  it("does not pick one of two shifts that explain the frames equally (duplicates 2 MiB apart)", () => {
    // init_once twice, exactly 2 MiB apart; the only frames with addresses are in the second
    // copy. Shift S and S + 2 MiB explain them equally; the first one put them in copy 1 and a
    // patch of init_once,2 was safe.
    const map = [
      "ffffffff81000000 T _text",
      "ffffffff81001000 t init_once",
      "ffffffff81001100 T foo",
      "ffffffff81201000 t init_once",
      "ffffffff81201100 T bar",
      "ffffffff81400000 T _etext",
    ].join("\n");
    const t = parseSymbolTable(map, { source: "system.map" });
    const cap = parseProcText("[<ffffffffb3201010>] init_once+0x10/0x100\n[<ffffffffb3201020>] init_once+0x20/0x100\n");
    const r = resolveFrames(cap, t);
    expect(r.kaslrShift).toBe(0n);
    expect([r.status[0], r.status[1]]).toEqual([FrameStatus.AMBIGUOUS, FrameStatus.AMBIGUOUS]);
  });

  it("does not invent a shift from one frame or from disagreeing frames", () => {
    const map = "ffffffff81000000 T _text\nffffffff81000100 T foo\nffffffff81000200 T bar\nffffffff81000400 T _etext\n";
    const t = parseSymbolTable(map, { source: "system.map" });
    const one = parseProcText("[<ffffffff9b000110>] foo+0x10/0x100\n");
    expect(resolveFrames(one, t).warnings.join(" ")).not.toMatch(/reconciled through _text/);
  });
});

describe("Clang-LTO `.llvm.` variants (SPEC §1: a warning only)", () => {
  // foo twice (static), and a promoted foo.llvm.<hash> that Linux ~6.2–6.10 counted in foo's sympos.
  const ks = [
    "ffffffff81000000 T _text",
    "ffffffff81001000 t foo",
    "ffffffff81001100 t foo.llvm.12345678901234567890",
    "ffffffff81001200 t foo",
    "ffffffff81001300 T bar",
    "ffffffff81001400 T baz.llvm.1",
    "ffffffff81002000 T _etext",
    "ffffffffc0001000 t foo.llvm.77\t[mod]",
  ].join("\n");
  const warningsFor = (t: SymbolTable, func: string) => {
    const patch = emptyPatch();
    patch.funcs.push(parseFuncArg(func));
    const cap = parseProcText("==> /proc/1/task/1/stack <==\n[<0>] bar+0x10/0x100\n");
    return buildRanges(patch, t, resolveFrames(cap, t)).warnings.filter((w) => w.includes(".llvm."));
  };

  it("warns for a patched name with variants in its own object, from a table of strings and from a snapshot's name blob", () => {
    const text = parseSymbolTable(ks, { file: "kallsyms" });
    const cap = parseProcText("==> /proc/1/task/1/stack <==\n[<0>] bar+0x10/0x100\n");
    const blob = decodeSnapshot(encodeSnapshot(cap, text), "s.psnap").symbols!;
    for (const t of [text, blob]) {
      expect(warningsFor(t, "foo,2")).toEqual([expect.stringContaining("vmlinux also has 1 foo.llvm.* symbol(s)")]);
      // bar has none; baz.llvm.1 is not a variant of bar; mod's variant is another object's.
      expect(warningsFor(t, "bar")).toEqual([]);
    }
  });
});
