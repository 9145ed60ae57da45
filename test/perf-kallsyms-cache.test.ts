/**
 * The on-disk kallsyms cache (src/node/kallsymsCache.ts): a hit gives the same table as a parse;
 * anything not exactly ours (corrupt, other key, group-writable, a symlink) is a miss that parses.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { decodeTable, encodeTable, parseSymbolTableCached } from "../src/node/kallsymsCache.js";
import { parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";
import { hostKallsyms } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "patchsafe-kcache-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function same(a: SymbolTable, b: SymbolTable): void {
  const { byName: ba, ...ra } = a;
  const { byName: bb, ...rb } = b;
  expect(rb).toEqual(ra);
  expect([...bb.entries()]).toEqual([...ba.entries()]);
}

describe("kallsyms cache", () => {
  const text = hostKallsyms();
  const parsed = parseSymbolTable(text, { file: "k", source: "kallsyms" });

  test("encode/decode round-trips every column of the real table", () => {
    same(decodeTable(encodeTable(parsed)), parsed);
  });

  test("miss then hit for a saved file; the hit equals a parse; files are 0600 in a 0700 dir", () => {
    const dir = join(root, "c1");
    const file = join(root, "kallsyms.txt");
    writeFileSync(file, text, "latin1");
    const a = parseSymbolTableCached(file, text, "kallsyms", { dir });
    expect(a.cache).toBe("miss");
    const b = parseSymbolTableCached(file, text, "kallsyms", { dir });
    expect(b.cache).toBe("hit");
    same(b.table, a.table);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
  });

  test("the live table is keyed by boot id: another boot misses; no boot id, no cache", () => {
    const dir = join(root, "c2");
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", { dir, bootId: "b1" }).cache).toBe("miss");
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", { dir, bootId: "b1" }).cache).toBe("hit");
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", { dir, bootId: "b2" }).cache).toBe("miss");
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", { dir, bootId: null }).cache).toBe("disabled");
  });

  test("corrupt, group-writable or symlinked cache files are misses (and are rewritten)", () => {
    const dir = join(root, "c3");
    const opts = { dir, bootId: "b" };
    parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", opts);
    const [name] = readdirSync(dir);
    const path = join(dir, name);
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    bad[bad.length - 3] ^= 0xff;
    writeFileSync(path, bad);
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", opts).cache).toBe("miss");
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", opts).cache).toBe("hit");
    chmodSync(path, 0o660);
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", opts).cache).toBe("miss");
    rmSync(path);
    writeFileSync(join(dir, "elsewhere"), good, { mode: 0o600 });
    symlinkSync(join(dir, "elsewhere"), path);
    expect(parseSymbolTableCached("/proc/kallsyms", text, "kallsyms", opts).cache).toBe("miss");
  });
});
