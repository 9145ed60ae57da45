/**
 * The on-disk cache of built symbol tables (src/node/symbolCache.ts, used by readSymbolFile): a
 * cached table is the parsed table (every column, lookups by name and address, warnings, errors),
 * the key is the content (not size or mtime), damaged or foreign entries are ignored and
 * rewritten, and PATCHSAFE_NO_CACHE / --no-cache turn it off. Every cache directory here is a
 * fresh temporary one (never the user's home).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, gunzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test, vi } from "vitest";
import { run } from "../src/cli/main.js";
import { readSymbolFile } from "../src/node/io.js";
import { IDENTITY_RACY_MS, MAX_ENTRIES, MAX_RECORDS, setSymbolCacheDisabled, SYMBOL_CACHE_FORMAT, symbolCacheDir, symbolCacheFile, symbolCacheKey, symbolCacheStats } from "../src/node/symbolCache.js";
import { findObjectSymbol, parseSymbolTable, type SymbolSource, type SymbolTable } from "../src/symbols/table.js";
import { VERSION } from "../src/version.js";

const FIX = new URL("./fixtures/host/", import.meta.url);
const savedEnv = { dir: process.env.PATCHSAFE_CACHE_DIR, off: process.env.PATCHSAFE_NO_CACHE };
let root = "";
let cacheDir = "";
let kallsymsText = "";
let caseNo = 0;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "patchsafe-kcache-"));
  kallsymsText = gunzipSync(readFileSync(new URL("kallsyms.gz", FIX))).toString("latin1");
});

beforeEach(() => {
  // A fresh cache directory per test.
  cacheDir = join(root, `cache-${++caseNo}`);
  process.env.PATCHSAFE_CACHE_DIR = cacheDir;
  delete process.env.PATCHSAFE_NO_CACHE;
});

afterEach(() => {
  setSymbolCacheDisabled(false); // a `check --no-cache` run leaves it set for the process
});

afterAll(() => {
  if (savedEnv.dir === undefined) delete process.env.PATCHSAFE_CACHE_DIR;
  else process.env.PATCHSAFE_CACHE_DIR = savedEnv.dir;
  if (savedEnv.off === undefined) delete process.env.PATCHSAFE_NO_CACHE;
  else process.env.PATCHSAFE_NO_CACHE = savedEnv.off;
  if (root !== "") rmSync(root, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = join(root, `f${caseNo}`, name);
  mkdirSync(join(root, `f${caseNo}`), { recursive: true });
  writeFileSync(p, Buffer.from(text, "latin1"));
  return p;
}

const entries = (): string[] => (existsSync(cacheDir) ? readdirSync(cacheDir).filter((n) => n.endsWith(".pskc")).sort() : []);

/** The symbols in [addr, addr + 1) as "object:name" (addresses as hi/lo halves: no BigInt per row). */
function symbolsAt(t: SymbolTable, hi: number, lo: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < t.count; i++) {
    if (t.addrHi[i] !== hi) continue;
    const a = t.addrLo[i];
    if (lo >= a && lo < a + Math.max(1, t.size[i])) out.push(`${t.objects[t.object[i]]}:${t.names[i]}`);
  }
  return out;
}

/** A column as itself (small tables: readable diffs) or its type and SHA-256 (toEqual on 122k-row arrays takes seconds). */
function col(a: Uint8Array | Uint32Array | Float64Array | string[]): unknown {
  if (a.length < 2000) return Array.isArray(a) ? a : [a.constructor.name, ...a];
  const bytes = Array.isArray(a) ? Buffer.from(a.join("\n"), "utf8") : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  return [a.constructor.name, a.length, createHash("sha256").update(bytes).digest("hex")];
}

/** Everything a check can read from a table, lookups by name (every object) and by address. */
function facts(t: SymbolTable, probe: string[], addresses: [number, number][] = []) {
  return {
    source: t.source,
    coverage: t.coverage,
    warnings: t.warnings,
    count: t.count,
    names: col(t.names),
    object: col(t.object),
    objects: t.objects,
    type: col(t.type),
    lo: col(t.addrLo),
    hi: col(t.addrHi),
    size: col(t.size),
    sympos: col(t.sympos),
    dupCount: col(t.dupCount),
    padding: col(t.padding),
    sections: t.sections,
    text: t.text,
    hasAddresses: t.hasAddresses,
    // findObjectSymbol in vmlinux, in every object the name is in, and in one it is not in.
    byName: probe.map((name) => {
      const rows = t.byName.get(name) ?? null;
      const objects = new Set(["vmlinux", t.objects[t.objects.length - 1], ...(rows ?? []).map((r) => t.objects[t.object[r]])]);
      return [rows, t.byName.has(name), ...[...objects].flatMap((o) => [0, 1, 2].map((pos) => findObjectSymbol(t, o, name, pos)))];
    }),
    byAddress: addresses.map(([hi, lo]) => symbolsAt(t, hi, lo)),
  };
}

function outcome(f: () => SymbolTable, probe: string[], addresses: [number, number][] = []) {
  try {
    return facts(f(), probe, addresses);
  } catch (e) {
    return { error: (e as Error).message, code: (e as { code?: string }).code, file: (e as { file?: string }).file, line: (e as { line?: number }).line };
  }
}

const sourceOf = (path: string): SymbolSource => (/system\.map/i.test(path.split("/").pop()!) ? "system.map" : "kallsyms");

/** Names to look up in the real table: known ones, duplicates, padding, missing. */
function realProbe(t: SymbolTable): string[] {
  const probe = ["do_epoll_wait", "__pfx_do_epoll_wait", "worker_thread", "smpboot_thread_fn", "_text", "_stext", "__sched_text_start", "init_once", "no_such_symbol", "__pfx_", ""];
  const seen = new Map<string, number>();
  for (let i = 0; i < t.count; i += 97) probe.push(t.names[i]);
  for (const name of t.names) seen.set(name, (seen.get(name) ?? 0) + 1);
  probe.push(...[...seen].filter(([, k]) => k > 1).slice(0, 30).map(([n]) => n));
  return probe;
}

/** Addresses at the start of, inside and just past symbols (every 2311th row), plus a few outside. */
function realAddresses(t: SymbolTable): [number, number][] {
  const out: [number, number][] = [[0xffffffff, 0], [0, 0], [0xffffffff, 0xffffffff]];
  for (let i = 0; i < t.count; i += 2311) {
    out.push([t.addrHi[i], t.addrLo[i]], [t.addrHi[i], (t.addrLo[i] + Math.floor(t.size[i] / 2)) >>> 0], [t.addrHi[i], (t.addrLo[i] + t.size[i]) >>> 0]);
  }
  return out;
}

describe("a cached table is the parsed table", () => {
  test.each(["kallsyms", "System.map"])("the dev host's kallsyms read as %s (122k symbols)", (name) => {
    const path = file(name, kallsymsText);
    const source = sourceOf(path);
    const reference = parseSymbolTable(kallsymsText, { file: path, source });
    const probe = realProbe(reference);
    const addresses = realAddresses(reference);
    const expected = outcome(() => reference, probe, addresses);
    const before = { ...symbolCacheStats };
    const miss = readSymbolFile(path);
    expect(symbolCacheStats.misses).toBe(before.misses + 1);
    expect(symbolCacheStats.writes).toBe(before.writes + 1);
    expect(entries()).toHaveLength(1);
    const hit = readSymbolFile(path);
    expect(symbolCacheStats.hits).toBe(before.hits + 1);
    expect(hit === miss).toBe(false);
    expect(outcome(() => miss, probe, addresses)).toEqual(expected);
    expect(outcome(() => hit, probe, addresses)).toEqual(expected);
    expect(outcome(() => readSymbolFile(path, { cache: false }), probe, addresses)).toEqual(expected);
    // Every column is its own array (nothing aliases another column's memory).
    const buffers = new Set([hit.object, hit.type, hit.addrLo, hit.addrHi, hit.size].map((a) => a.buffer));
    expect(buffers.size).toBe(5);
  });

  test("the same check report with a cached table (frames resolved by name and by address)", () => {
    const path = file("kallsyms", kallsymsText);
    const t = parseSymbolTable(kallsymsText, { file: path });
    // Old kernels print real addresses; add a task whose frames carry them.
    const at = (name: string, off: number): string => {
      const i = t.byName.get(name)![0];
      const a = ((BigInt(t.addrHi[i]) << 32n) | BigInt(t.addrLo[i])) + BigInt(off);
      return `[<${a.toString(16)}>] ${name}+0x${off.toString(16)}/0x${t.size[i].toString(16)}`;
    };
    const extra = ["worker_thread", "kthread", "ret_from_fork"].map((n, k) => `/proc/77777/task/77777/stack:${at(n, 8 + k)}`).join("\n");
    const dump = file("dump.txt", `${readFileSync(new URL("proc-grep.txt", FIX), "latin1").replace(/\n?$/, "\n")}${extra}\n`);
    const args = ["check", dump, "--kallsyms", path, "--func", "worker_thread", "--func", "do_epoll_wait", "--json", "--partial-ok"];
    const parsed = run([...args, "--no-cache"]);
    expect(entries()).toHaveLength(0);
    const first = run(args);
    const before = symbolCacheStats.hits;
    const cached = run(args);
    expect(symbolCacheStats.hits).toBe(before + 1);
    expect(first).toEqual(parsed);
    expect(cached).toEqual(parsed);
    expect(cached.stdout).toContain("worker_thread");
  });

  // Random tables: module columns, [vmlinux], CRLF, blanks, padding prefixes, duplicates, bad
  // lines, non-ASCII names (the TypeScript parser), System.map names.
  const line = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.constantFrom("ffffffff81000000", "ffffffff81000010", "ffffffffc0001000", "0", "FFFFFFFF81000020", "ffffffff81000010", "0000000000001000"), fc.constantFrom("T", "t", "d", "W", "a", "U"), fc.constantFrom("foo", "bar", "__pfx_foo", "__pfx___pfx_bar", "__pfx_", "baz.cold", "_text", "x", "__sched_text_start", "__sched_text_end")).map(([a, t, n]) => `${a} ${t} ${n}`) },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom("ffffffffc0002000", "ffffffffc0002010"), fc.constantFrom("t", "T"), fc.constantFrom("foo", "modf"), fc.constantFrom("ext4", "vmlinux", "kvm", "e x")).map(([a, t, n, m]) => `${a} ${t} ${n}\t[${m}]`) },
    { weight: 1, arbitrary: fc.constantFrom("", " ", "ffffffff81000000 T name  ", "ffffffff81000000 T name\r", "ffffffff81000000 T a\t[m", "zz T a", "ffffffff81000000 T ", "ffffffff81000000 T n\u00e9", "ffffffff81000000 T a\t[m]\t[n]") },
  );
  test("seeded random tables: first read (parse, store) and second read (cache) = parseSymbolTable", () => {
    let hits = 0;
    let stored = 0;
    fc.assert(
      fc.property(fc.array(line, { minLength: 0, maxLength: 30 }), fc.constantFrom("\n", "\r\n"), fc.constantFrom("kallsyms", "System.map", "syms.txt"), (lines, eol, name) => {
        caseNo++;
        const text = lines.join(eol) + eol;
        const path = file(name, text);
        const probe = ["foo", "bar", "__pfx_foo", "__pfx___pfx_bar", "__pfx_", "_text", "modf", "n\u00e9", "x", "baz.cold"];
        const addresses: [number, number][] = [[0xffffffff, 0x81000000], [0xffffffff, 0x81000008], [0xffffffff, 0x81000010], [0xffffffff, 0xc0002004], [0, 0x1000]];
        const expected = outcome(() => parseSymbolTable(text, { file: path, source: sourceOf(path) }), probe, addresses);
        const h0 = symbolCacheStats.hits;
        const w0 = symbolCacheStats.writes;
        const a = outcome(() => readSymbolFile(path), probe, addresses); // parsed, unless an earlier case had this text
        const h1 = symbolCacheStats.hits;
        const b = outcome(() => readSymbolFile(path), probe, addresses);
        expect(a).toEqual(expected);
        expect(b).toEqual(expected);
        if ("error" in expected) {
          expect(symbolCacheStats.writes).toBe(w0); // failures are never cached
          expect(symbolCacheStats.hits).toBe(h0);
        } else {
          expect(symbolCacheStats.hits).toBe(h1 + 1);
          hits++;
          stored += symbolCacheStats.writes - w0;
        }
      }),
      { seed: 6060, numRuns: 150 },
    );
    // Most random tables are well formed and were served from the cache.
    expect(hits).toBeGreaterThan(50);
    expect(stored).toBeGreaterThan(0);
  });
});

describe("identity records: a file read again is not hashed again, unless it may have changed", () => {
  const records = (): string[] => (existsSync(cacheDir) ? readdirSync(cacheDir).filter((n) => n.endsWith(".pski")).sort() : []);
  /** Runs fn as if the clock said now + ms (the writer stamps records with Date.now()). */
  function later<T>(ms: number, fn: () => T): T {
    const real = Date.now();
    const spy = vi.spyOn(Date, "now").mockReturnValue(real + ms);
    try {
      return fn();
    } finally {
      spy.mockRestore();
    }
  }
  const probe = ["worker_thread", "do_epoll_wait", "_text", "init_once", "no_such_symbol"];

  test("a file changed less than IDENTITY_RACY_MS before: no record (its ctime tick could still hide a change)", () => {
    const path = file("kallsyms", kallsymsText);
    readSymbolFile(path);
    readSymbolFile(path);
    expect(entries()).toHaveLength(1);
    expect(records()).toEqual([]);
    expect(IDENTITY_RACY_MS).toBeGreaterThanOrEqual(1000);
  });

  test("an older file: the hit by content writes a record, and the next read is served by it; the table is the parsed one", () => {
    const path = file("kallsyms", kallsymsText);
    readSymbolFile(path); // miss: parsed and stored (the file is new: no record)
    later(IDENTITY_RACY_MS + 1000, () => readSymbolFile(path)); // hit by content: record written
    expect(records()).toHaveLength(1);
    const before = { ...symbolCacheStats };
    const t = readSymbolFile(path);
    expect(symbolCacheStats.byIdentity).toBe(before.byIdentity + 1);
    expect(symbolCacheStats.hits).toBe(before.hits + 1);
    expect(facts(t, probe)).toEqual(facts(parseSymbolTable(kallsymsText, { file: path }), probe));
  });

  test("changed in place after its record (same size, mtime put back): the record no longer matches, the content decides", async () => {
    const a = kallsymsText;
    const k = a.indexOf(" T ", 1000) - 3; // an address digit
    const b = a.slice(0, k) + (a[k] === "0" ? "1" : "0") + a.slice(k + 1);
    const path = file("kallsyms", a);
    utimesSync(path, 1_700_000_000, 1_700_000_000);
    const ta = readSymbolFile(path);
    later(IDENTITY_RACY_MS + 1000, () => readSymbolFile(path));
    expect(records()).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 30)); // past the ctime clock's tick
    writeFileSync(path, Buffer.from(b, "latin1"));
    utimesSync(path, 1_700_000_000, 1_700_000_000);
    const before = { ...symbolCacheStats };
    const tb = readSymbolFile(path);
    expect(symbolCacheStats.byIdentity).toBe(before.byIdentity);
    expect(facts(tb, probe)).toEqual(facts(parseSymbolTable(b, { file: path }), probe));
    expect(tb.addrLo).not.toEqual(ta.addrLo);
  });

  test(`records stay bounded (at most ${MAX_RECORDS}) when many copies of one file hit the same entry`, () => {
    const text = "ffffffff81000000 T _text\nffffffff81000010 t foo\nffffffff81000030 T bar\n";
    for (let k = 0; k < MAX_RECORDS + 8; k++) later(IDENTITY_RACY_MS + 1000, () => readSymbolFile(file(`kallsyms-${k}`, text)));
    expect(entries()).toHaveLength(1);
    expect(records().length).toBeGreaterThan(MAX_RECORDS / 2);
    expect(records().length).toBeLessThanOrEqual(MAX_RECORDS);
  });

  test("a record that is not ours to trust (readable by others, damaged, another identity, racy stamp) is ignored: the content decides", () => {
    const path = file("kallsyms", kallsymsText);
    readSymbolFile(path);
    later(IDENTITY_RACY_MS + 1000, () => readSymbolFile(path));
    const [name] = records();
    const rec = join(cacheDir, name);
    const good = readFileSync(rec, "utf8");
    const reference = facts(parseSymbolTable(kallsymsText, { file: path }), probe);
    const tamper: [string, () => void][] = [
      ["mode 0644", () => chmodSync(rec, 0o644)],
      ["not JSON", () => writeFileSync(rec, "{", { mode: 0o600 })],
      ["another identity", () => writeFileSync(rec, good.replace(/ino \d+/, "ino 1"), { mode: 0o600 })],
      ["read within the margin of the file's change", () => writeFileSync(rec, good.replace(/"readAt":\d+/, `"readAt":${Math.floor(statSync(path).ctimeMs) + 10}`), { mode: 0o600 })],
      ["an entry that is not a cache entry", () => writeFileSync(rec, good.replace(/"entry":"[^"]*"/, '"entry":"../x.pskc"'), { mode: 0o600 })],
    ];
    for (const [what, damage] of tamper) {
      rmSync(rec, { force: true });
      writeFileSync(rec, good, { mode: 0o600 });
      chmodSync(rec, 0o600);
      damage();
      const before = { ...symbolCacheStats };
      const t = readSymbolFile(path);
      expect(symbolCacheStats.byIdentity, what).toBe(before.byIdentity);
      expect(facts(t, probe), what).toEqual(reference);
    }
  });
});

describe("the key is the content", () => {
  test("a file changed in place with the same size and mtime is not served from the cache", () => {
    const a = kallsymsText;
    const k = a.indexOf(" T ", 1000) - 3; // an address digit
    const b = a.slice(0, k) + (a[k] === "0" ? "1" : "0") + a.slice(k + 1);
    expect(b.length).toBe(a.length);
    const path = file("kallsyms", a);
    utimesSync(path, 1_700_000_000, 1_700_000_000);
    const st = statSync(path);
    const ta = readSymbolFile(path);
    expect(readSymbolFile(path).addrLo).toEqual(ta.addrLo); // cached
    writeFileSync(path, Buffer.from(b, "latin1")); // same inode, same size
    utimesSync(path, 1_700_000_000, 1_700_000_000);
    const st2 = statSync(path);
    expect([st2.size, st2.mtimeMs, st2.ino]).toEqual([st.size, st.mtimeMs, st.ino]);
    const hits = symbolCacheStats.hits;
    const tb = readSymbolFile(path);
    expect(symbolCacheStats.hits).toBe(hits);
    const probe = ["worker_thread", "do_epoll_wait", "_text"];
    expect(facts(tb, probe)).toEqual(facts(parseSymbolTable(b, { file: path }), probe));
    expect(tb.addrLo).not.toEqual(ta.addrLo);
    expect(entries()).toHaveLength(2);
  });

  test("the same bytes under another name share the entry; read as System.map they do not", () => {
    const text = "ffffffff81000000 T _text\nffffffff81000010 t foo\nffffffff81000020 a absolute\nffffffff81000030 T bar\n";
    const one = readSymbolFile(file("kallsyms", text));
    const hits = symbolCacheStats.hits;
    const two = readSymbolFile(file("kallsyms.copy", text));
    expect(symbolCacheStats.hits).toBe(hits + 1);
    expect(facts(two, ["foo"])).toEqual(facts(one, ["foo"]));
    const map = readSymbolFile(file("System.map-6.8", text));
    expect(symbolCacheStats.hits).toBe(hits + 1);
    expect(map.source).toBe("system.map");
    expect(map.count).toBe(3); // System.map's `a` symbols are dropped
    expect(entries()).toHaveLength(2);
  });

  test("the key names the version, the cache format, the source and the content", () => {
    const bytes = Buffer.from("ffffffff81000000 T _text\n");
    const key = symbolCacheKey(bytes, "kallsyms");
    expect(key).toContain(`patchsafe ${VERSION}`);
    expect(key).toContain(`cache format ${SYMBOL_CACHE_FORMAT}`);
    expect(key).toContain("sha256 ");
    expect(symbolCacheKey(bytes, "system.map")).not.toBe(key);
    expect(symbolCacheKey(Buffer.from("ffffffff81000001 T _text\n"), "kallsyms")).not.toBe(key);
    expect(symbolCacheFile(key)).toMatch(/^ks-[0-9a-f]{32}\.pskc$/);
  });

  test("/proc/kallsyms (made by the kernel on each read) is never cached", () => {
    if (!existsSync("/proc/kallsyms")) return;
    try {
      readSymbolFile("/proc/kallsyms");
    } catch {
      // unprivileged: all-zero addresses, an error either way
    }
    expect(entries()).toHaveLength(0);
  });
});

/** Rewrites an entry with an edited header (and prefix), checksums recomputed: a well-formed foreign entry. */
function rewrite(path: string, edit: (h: Record<string, unknown>) => void, prefix?: (dv: DataView) => void, raw?: string): void {
  const b = readFileSync(path);
  const hLen = b.readUInt32LE(12);
  const h = JSON.parse(b.subarray(32, 32 + hLen).toString("utf8")) as Record<string, unknown>;
  edit(h);
  const head = Buffer.from(raw ?? JSON.stringify(h));
  const p = Buffer.from(b.subarray(0, 32));
  const dv = new DataView(p.buffer, p.byteOffset, 32);
  dv.setUint32(12, head.length, true);
  dv.setUint32(20, crc32(head), true);
  prefix?.(dv);
  dv.setUint32(28, crc32(p.subarray(0, 28)), true);
  writeFileSync(path, Buffer.concat([p, head, b.subarray(32 + hLen)]));
}

describe("a damaged or foreign entry is ignored and rewritten", () => {
  const small = "ffffffff81000000 T _text\nffffffff81000010 t __pfx_foo\nffffffff81000020 t foo\nffffffff81000030 t foo\nffffffffc0001000 t foo\t[ext4]\nffffffff81000040 T bar\n";
  const probe = ["foo", "__pfx_foo", "bar", "_text"];
  const damage: [string, (path: string) => void][] = [
    ["truncated", (p) => writeFileSync(p, readFileSync(p).subarray(0, 100))],
    ["cut by one byte", (p) => writeFileSync(p, readFileSync(p).subarray(0, statSync(p).size - 1))],
    ["one byte longer", (p) => writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.of(0)]))],
    ["empty", (p) => writeFileSync(p, "")],
    ["a body byte flipped (checksum)", (p) => {
      const b = readFileSync(p);
      b[b.length - 5] ^= 0x40;
      writeFileSync(p, b);
    }],
    ["a header byte flipped (checksum)", (p) => {
      const b = readFileSync(p);
      b[40] ^= 0x01;
      writeFileSync(p, b);
    }],
    ["the prefix's format field changed (checksum)", (p) => {
      const b = readFileSync(p);
      b[8] ^= 0x02;
      writeFileSync(p, b);
    }],
    ["another patchsafe version", (p) => rewrite(p, (h) => (h.version = "0.0.1-old"))],
    ["another version's key", (p) => rewrite(p, (h) => (h.key = String(h.key).replace(`patchsafe ${VERSION}`, "patchsafe 0.0.1")))],
    ["another cache format", (p) => rewrite(p, (h) => (h.format = SYMBOL_CACHE_FORMAT + 1), (dv) => dv.setUint32(8, SYMBOL_CACHE_FORMAT + 1, true))],
    ["another content's key", (p) => rewrite(p, (h) => (h.key = String(h.key).replace(/sha256 [0-9a-f]{4}/, "sha256 0000")))],
    ["a column of another width", (p) => rewrite(p, (h) => ((h.columns as { kind: string }[])[8].kind = "u32"))],
    ["a wrong row count", (p) => rewrite(p, (h) => (h.n = Number(h.n) + 1))],
    ["objects not a list", (p) => rewrite(p, (h) => (h.objects = "x"))],
    ["a header that is not JSON", (p) => rewrite(p, () => {}, undefined, "{not json")],
    ["addresses as i8 (lengths no longer add up)", (p) => rewrite(p, (h) => ((h.columns as { kind: string }[])[2].kind = "i8"))],
    ["random bytes", (p) => writeFileSync(p, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff)))],
    ["readable by others", (p) => chmodSync(p, 0o644)],
    ["a symlink", (p) => {
      const target = join(root, `target-${caseNo}`);
      writeFileSync(target, readFileSync(p), { mode: 0o600 });
      rmSync(p);
      symlinkSync(target, p);
    }],
    ["a directory", (p) => {
      rmSync(p);
      mkdirSync(p);
    }],
  ];
  test.each(damage)("%s", (_, hurt) => {
    const path = file("kallsyms", small);
    const expected = facts(parseSymbolTable(small, { file: path }), probe);
    readSymbolFile(path);
    const [entry] = entries();
    expect(entry).toBeDefined();
    const at = join(cacheDir, entry);
    hurt(at);
    const s0 = { ...symbolCacheStats };
    expect(facts(readSymbolFile(path), probe)).toEqual(expected);
    expect(symbolCacheStats.hits).toBe(s0.hits);
    expect(symbolCacheStats.misses).toBe(s0.misses + 1);
    if (lstatSync(at).isDirectory()) return; // cannot be replaced by a rename: parsed every time
    // Rewritten whole: the next read is a hit again.
    expect(lstatSync(at).isFile()).toBe(true);
    expect(statSync(at).mode & 0o777).toBe(0o600);
    expect(facts(readSymbolFile(path), probe)).toEqual(expected);
    expect(symbolCacheStats.hits).toBe(s0.hits + 1);
  });
});

describe("where and whether", () => {
  const text = "ffffffff81000000 T _text\nffffffff81000010 t foo\n";

  test("PATCHSAFE_NO_CACHE=1: nothing read or written", () => {
    const path = file("kallsyms", text);
    process.env.PATCHSAFE_NO_CACHE = "1";
    const d = symbolCacheStats.disabled;
    readSymbolFile(path);
    readSymbolFile(path);
    expect(symbolCacheStats.disabled).toBe(d + 2);
    expect(existsSync(cacheDir)).toBe(false);
    process.env.PATCHSAFE_NO_CACHE = "0"; // "0" (and "") leave it on
    readSymbolFile(path);
    expect(entries()).toHaveLength(1);
    process.env.PATCHSAFE_NO_CACHE = "1";
    const hits = symbolCacheStats.hits;
    expect(readSymbolFile(path).count).toBe(2);
    expect(symbolCacheStats.hits).toBe(hits);
  });

  test("check --no-cache neither reads nor writes the cache; without it, check does", () => {
    const path = file("kallsyms", kallsymsText);
    const dump = join(new URL("proc-grep.txt", FIX).pathname);
    const args = ["check", dump, "--kallsyms", path, "--func", "worker_thread"];
    const off = run([...args, "--no-cache"]);
    expect(entries()).toHaveLength(0);
    const on = run(args);
    expect(entries()).toHaveLength(1);
    const hits = symbolCacheStats.hits;
    expect(run([...args, "--no-cache"])).toEqual(off);
    expect(symbolCacheStats.hits).toBe(hits);
    expect(run(args)).toEqual(on);
    expect(symbolCacheStats.hits).toBe(hits + 1);
    expect(on).toEqual(off);
  });

  test("a parse error is the same error (file and line, exit 2) and is never cached", () => {
    const bad = `${text}ffffffff81000020 T\nffffffff81000030 t bar\n`;
    const path = file("kallsyms", bad);
    const expected = outcome(() => parseSymbolTable(bad, { file: path }), []);
    expect(expected).toMatchObject({ code: "E_SYMBOLS", file: path, line: 3 });
    expect(outcome(() => readSymbolFile(path), [])).toEqual(expected);
    expect(outcome(() => readSymbolFile(path), [])).toEqual(expected);
    expect(entries()).toHaveLength(0);
    const r = run(["check", new URL("proc-grep.txt", FIX).pathname, "--kallsyms", path, "--func", "foo"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${path}:3`);
    expect(entries()).toHaveLength(0);
  });

  test("a directory that cannot be created, or that others can write, is not used; nothing fails", () => {
    const path = file("kallsyms", text);
    const expected = facts(parseSymbolTable(text, { file: path }), ["foo"]);
    const blocker = join(root, `file-${caseNo}`);
    writeFileSync(blocker, "");
    process.env.PATCHSAFE_CACHE_DIR = join(blocker, "cache"); // under a regular file
    expect(facts(readSymbolFile(path), ["foo"])).toEqual(expected);
    expect(facts(readSymbolFile(path), ["foo"])).toEqual(expected);
    const open = join(root, `open-${caseNo}`);
    mkdirSync(open);
    chmodSync(open, 0o777);
    process.env.PATCHSAFE_CACHE_DIR = open;
    expect(facts(readSymbolFile(path), ["foo"])).toEqual(expected);
    expect(readdirSync(open)).toEqual([]);
  });

  test("created 0700, entries 0600, no temporary file left", () => {
    readSymbolFile(file("kallsyms", text));
    expect(statSync(cacheDir).mode & 0o777).toBe(0o700);
    const all = readdirSync(cacheDir);
    expect(all).toHaveLength(1);
    expect(all[0]).toMatch(/^ks-[0-9a-f]{32}\.pskc$/);
    expect(statSync(join(cacheDir, all[0])).mode & 0o777).toBe(0o600);
  });

  test(`bounded: at most ${MAX_ENTRIES} entries, least recently used go first; other files are left alone`, () => {
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(cacheDir, "notes.txt"), "mine");
    const staleTmp = join(cacheDir, `ks-${"0".repeat(32)}.pskc.1.abcd.tmp`);
    const freshTmp = join(cacheDir, `ks-${"1".repeat(32)}.pskc.2.abcd.tmp`);
    writeFileSync(staleTmp, "");
    writeFileSync(freshTmp, "");
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(staleTmp, old, old);
    const paths = Array.from({ length: MAX_ENTRIES + 4 }, (_, i) => file(`kallsyms-${i}`, `ffffffff81000000 T _text\nffffffff810000${(16 + i).toString(16)} t f${i}\n`));
    const entryOf = (p: string): string => join(cacheDir, symbolCacheFile(symbolCacheKey(readFileSync(p), "kallsyms")));
    const t0 = Date.now() / 1000;
    paths.forEach((p, i) => {
      readSymbolFile(p);
      // Distinct, increasing use times (mtime); the first file is used again after every other.
      utimesSync(entryOf(p), t0 - 1000 + i, t0 - 1000 + i);
      readSymbolFile(paths[0]);
    });
    expect(entries().length).toBe(MAX_ENTRIES);
    expect(existsSync(join(cacheDir, "notes.txt"))).toBe(true);
    expect(existsSync(staleTmp)).toBe(false);
    expect(existsSync(freshTmp)).toBe(true);
    // Kept: the most recently used (the first file, and the last ones); gone: the second.
    expect(existsSync(entryOf(paths[0]))).toBe(true);
    expect(existsSync(entryOf(paths[paths.length - 1]))).toBe(true);
    expect(existsSync(entryOf(paths[1]))).toBe(false);
    const hits = symbolCacheStats.hits;
    readSymbolFile(paths[0]);
    readSymbolFile(paths[paths.length - 1]);
    expect(symbolCacheStats.hits).toBe(hits + 2);
  });

  test("location: PATCHSAFE_CACHE_DIR, else $XDG_CACHE_HOME/patchsafe (absolute), else ~/.cache/patchsafe", () => {
    expect(symbolCacheDir({ PATCHSAFE_CACHE_DIR: "/x/c", XDG_CACHE_HOME: "/y", HOME: "/h" })).toBe("/x/c");
    expect(symbolCacheDir({ XDG_CACHE_HOME: "/y", HOME: "/h" })).toBe("/y/patchsafe");
    expect(symbolCacheDir({ XDG_CACHE_HOME: "relative", HOME: "/h" })).toBe("/h/.cache/patchsafe");
    expect(symbolCacheDir({ PATCHSAFE_CACHE_DIR: "", HOME: "/h" })).toBe("/h/.cache/patchsafe");
  });

  test("the test suite runs with PATCHSAFE_CACHE_DIR in a temporary directory (vitest.config.ts)", () => {
    expect(savedEnv.dir).toBeDefined();
    expect(savedEnv.dir!.startsWith(tmpdir()) || savedEnv.dir!.startsWith("/tmp/")).toBe(true);
  });

  test("the built CLI, with neither PATCHSAFE_CACHE_DIR nor XDG_CACHE_HOME, caches under $HOME/.cache/patchsafe", () => {
    const bin = new URL("../bin/patchsafe.cjs", import.meta.url).pathname;
    const bundle = new URL("../dist/cli/patchsafe.cjs", import.meta.url);
    // A dist/ built before the cache existed says nothing about it (npm test builds first).
    if (!existsSync(bundle) || !readFileSync(bundle, "latin1").includes("PSKSYMC")) return;
    const home = join(root, `home-${caseNo}`);
    mkdirSync(home);
    const path = file("kallsyms", text);
    const env = { ...process.env, HOME: home, XDG_CACHE_HOME: "" };
    delete (env as Record<string, string | undefined>).PATCHSAFE_CACHE_DIR;
    try {
      execFileSync(process.execPath, [bin, "check", new URL("proc-grep.txt", FIX).pathname, "--kallsyms", path, "--func", "foo"], { env, stdio: "ignore" });
    } catch {
      // exit 3 (undecided) or 1: only where the cache went matters here
    }
    expect(readdirSync(join(home, ".cache", "patchsafe")).filter((n) => n.endsWith(".pskc"))).toHaveLength(1);
  });
});
