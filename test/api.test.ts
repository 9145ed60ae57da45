/** The README's embedding example, run as written (kept in sync by extracting it from README.md). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fixturePath, hostKallsyms } from "./helpers.js";

describe("library API", () => {
  it("the README embedding example runs and reaches a verdict", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const m = /<!-- embed-example -->\s*```ts\n([\s\S]*?)```/.exec(readme);
    expect(m, "README.md has an embedding example marked <!-- embed-example -->").not.toBeNull();
    // Run it as written, against this checkout and the committed fixtures instead of the live host.
    const dir = mkdtempSync(join(tmpdir(), "patchsafe-embed-"));
    try {
      writeFileSync(join(dir, "kallsyms"), hostKallsyms());
      const code = m![1]
        .replace(/from "patchsafe\/node"/g, `from ${JSON.stringify(new URL("../src/node/index.ts", import.meta.url).pathname)}`)
        .replace(/from "patchsafe"/g, `from ${JSON.stringify(new URL("../src/index.ts", import.meta.url).pathname)}`)
        .replace(/"dump\.txt"/g, JSON.stringify(fixturePath("host/proc-grep.txt")))
        .replace(/"\/proc\/kallsyms"/g, JSON.stringify(join(dir, "kallsyms")))
        .replace(/console\.log\(/g, "globalThis.__embedLog(");
      const file = new URL("./.embed-example.tmp.ts", import.meta.url);
      writeFileSync(file, code);
      const logs: string[] = [];
      (globalThis as { __embedLog?: (...a: unknown[]) => void }).__embedLog = (...a) => logs.push(a.join(" "));
      try {
        await import(`${file.href}?t=${Date.now()}`);
      } finally {
        rmSync(file, { force: true });
      }
      expect(logs.join("\n")).toMatch(/^blocked 13\b/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the core imports nothing from node: and no Buffer (it must run in browsers)", () => {
    const files = [
      "index.ts", "check.ts", "errors.ts", "model.ts", "version.ts",
      "ingest/builder.ts", "ingest/bytes.ts", "ingest/procText.ts", "ingest/procTokenizer.ts", "ingest/detect.ts", "symbols/kallsymsFast.ts", "ingest/procTextReference.ts", "ingest/nativeJson.ts", "ingest/jsonPosition.ts",
      "symbols/table.ts", "symbols/resolve.ts", "patch/spec.ts", "patch/ranges.ts",
      "decide/kinds.ts", "decide/livepatch.ts", "decide/verdict.ts",
      "report/escape.ts", "report/json.ts", "report/text.ts", "report/inventory.ts",
      "scan/index.ts", "scan/types.ts", "scan/reference.ts", "scan/wasm.ts", "generate/procDump.ts",
    ];
    for (const f of files) {
      const src = readFileSync(new URL(`../src/${f}`, import.meta.url), "utf8");
      expect([f, /from "node:|\brequire\(|\bBuffer\.|\bprocess\.(env|argv|exit|std|cwd|pid|platform)/.test(src)]).toEqual([f, false]);
    }
  });
});
