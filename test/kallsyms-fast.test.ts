/**
 * The wasm kallsyms parser (symbols/kallsymsFast.ts + assembly/tokenize.ts kallsymsParse) against
 * parseSymbolTable: the same table on the dev host's real kallsyms and on seeded random edits of
 * a sample (module columns, [vmlinux], CRLF, blanks, padding prefixes, bad lines, non-ASCII), and
 * the same error where the text is refused.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { encodeLatin1 } from "../src/ingest/bytes.js";
import { loadTokenizerModuleSync } from "../src/node/wasm.js";
import { kallsymsPaths, parseKallsymsBytes } from "../src/symbols/kallsymsFast.js";
import { findObjectSymbol, parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";
import { hostKallsyms } from "./helpers.js";

const module = loadTokenizerModuleSync("release");

function facts(t: SymbolTable, probe: string[]) {
  return {
    count: t.count,
    names: t.names,
    object: [...t.object],
    objects: t.objects,
    type: [...t.type],
    lo: [...t.addrLo],
    hi: [...t.addrHi],
    size: [...t.size],
    sympos: [...t.sympos],
    dupCount: [...t.dupCount],
    padding: [...t.padding],
    sections: t.sections,
    text: t.text,
    hasAddresses: t.hasAddresses,
    lookups: probe.map((name) => [t.byName.get(name) ?? null, ...t.objects.map((o) => findObjectSymbol(t, o, name, 0))]),
  };
}

function outcome(text: string, probe: string[], fast: boolean) {
  try {
    const t = fast ? parseKallsymsBytes(module, encodeLatin1(text), { file: "k" }) : parseSymbolTable(text, { file: "k" });
    return facts(t, probe);
  } catch (e) {
    return { error: (e as Error).message, code: (e as { code?: string }).code, line: (e as { line?: number }).line };
  }
}

describe("wasm kallsyms parser = parseSymbolTable", () => {
  test("the dev host's kallsyms", () => {
    const text = hostKallsyms();
    const probe = ["do_epoll_wait", "__pfx_do_epoll_wait", "__pfx___pfx_x", "_text", "worker_thread", "ep_poll", "no_such_symbol", "__sched_text_start"];
    // Real duplicate static names.
    const seen = new Map<string, number>();
    for (const line of text.split("\n")) {
      const name = line.split(" ")[2]?.split("\t")[0];
      if (name !== undefined) seen.set(name, (seen.get(name) ?? 0) + 1);
    }
    probe.push(...[...seen].filter(([, k]) => k > 1).slice(0, 20).map(([n]) => n));
    const before = kallsymsPaths.wasm;
    const a = outcome(text, probe, true);
    expect(kallsymsPaths.wasm).toBe(before + 1);
    const b = outcome(text, probe, false);
    expect("error" in a).toBe(false);
    expect(a).toEqual(b);
  });

  const line = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.constantFrom("ffffffff81000000", "ffffffff81000010", "ffffffffc0001000", "0", "FFFFFFFF81000020", "ffffffff81000010"), fc.constantFrom("T", "t", "d", "W"), fc.constantFrom("foo", "bar", "__pfx_foo", "__pfx___pfx_bar", "__pfx_", "baz.cold", "_text", "x")).map(([a, t, n]) => `${a} ${t} ${n}`) },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom("ffffffffc0002000", "ffffffffc0002010"), fc.constantFrom("t", "T"), fc.constantFrom("foo", "modf"), fc.constantFrom("ext4", "vmlinux", "kvm", "e x")).map(([a, t, n, m]) => `${a} ${t} ${n}\t[${m}]`) },
    { weight: 2, arbitrary: fc.constantFrom("", " ", "ffffffff81000000 T name  ", "ffffffff81000000 T name\r", "ffffffff81000000 T a\t[m", "ffffffff81000000 T a\tm]", "ffffffff81000000 T a\t]m[", "zz T a", "ffffffff81000000T a", "ffffffff81000000 T ", "ffffffff81000000  T a", "1ffffffff81000000 T a", "ffffffff81000000 T n\u00e9", "ffffffff81000000 T a\t[m]\t[n]") },
  );
  test("seeded random tables", () => {
    fc.assert(
      fc.property(fc.array(line, { minLength: 0, maxLength: 40 }), fc.constantFrom("\n", "\r\n"), fc.boolean(), (lines, eol, last) => {
        const text = lines.join(eol) + (last ? eol : "");
        const probe = ["foo", "bar", "__pfx_foo", "__pfx___pfx_bar", "__pfx_", "_text", "modf"];
        expect(outcome(text, probe, true)).toEqual(outcome(text, probe, false));
      }),
      { seed: 424242, numRuns: 500 },
    );
    // Most random tables are well formed: the wasm path took them.
    expect(kallsymsPaths.wasm).toBeGreaterThan(100);
  });
});
