/**
 * The in-browser checker's pipeline (web/run.ts) run in Node: the same answer as check(), from
 * gzip, snapshots and typed functions, and the errors a user can make. The page itself is driven
 * in Chromium by test/browser.test.ts.
 */
import { describe, expect, it } from "vitest";
import { isPatchsafeError } from "../src/errors.js";
import { predict } from "../src/predict/predict.js";
import { loadWasmScannerSync } from "../src/node/wasm.js";
import { toJsonReport } from "../src/report/json.js";
import { snapshotToJson } from "../src/snapshot/json.js";
import { encodeSnapshot } from "../src/snapshot/psnap.js";
import { maybeGunzip, parsePatchText, runChecker } from "../web/run.js";
import { fixtureBytes, hostCapture, hostTable, runCheck } from "./helpers.js";
import { HOSTILE, hostileCaptureJson } from "./html-fixtures.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dump = () => ({ name: "proc-grep.txt", bytes: fixtureBytes("host/proc-grep.txt") });
const kallsymsGz = () => ({ name: "kallsyms.gz", bytes: fixtureBytes("host/kallsyms.gz") });

async function rejects(p: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(isPatchsafeError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  expect((e as Error).message).toMatch(text);
}

describe("web/run.ts", () => {
  it("a dump and a gzipped kallsyms give the report check() gives in-process", async () => {
    const out = await runChecker({ dumps: [dump()], symbols: kallsymsGz(), funcs: "worker_thread" }, loadWasmScannerSync());
    const want = toJsonReport(runCheck(hostCapture("proc-grep.txt"), ["worker_thread"]));
    expect(out.report.verdict).toBe("blocked");
    expect(out.report.counts).toEqual(want.counts);
    expect(out.report.blockers).toEqual(want.blockers);
    expect(out.body).toContain(`<b id="ps-count-blocked">${want.counts.blocked}</b>`);
    expect(out.body).not.toMatch(/<script>|<html|<style/);
    expect(out.page()).toMatch(/^<!doctype html>/);
  });

  it("a .psnap snapshot and its JSON form carry their own symbol table", async () => {
    const cap = hostCapture("proc-grep.txt");
    const want = toJsonReport(runCheck(cap, ["worker_thread"]));
    for (const bytes of [encodeSnapshot(cap, hostTable()), enc(snapshotToJson(cap, hostTable()))]) {
      const out = await runChecker({ dumps: [{ name: "snap", bytes }], funcs: "worker_thread" }, loadWasmScannerSync());
      expect(out.report.counts).toEqual(want.counts);
      expect(out.report.input.symbols).not.toBeNull();
    }
  });

  it("without a symbol table it warns, and hostile names stay text", async () => {
    const out = await runChecker({ dumps: [{ name: HOSTILE.file, bytes: enc(hostileCaptureJson()) }], funcs: "do_epoll_wait" }, loadWasmScannerSync());
    expect(out.report.warnings.map((w) => w.code)).toContain("no-kallsyms");
    expect(out.report.counts.blocked).toBe(2);
    const markup = out.body.replace(/<script type="application\/json" id="ps-data">[^<]*<\/script>/, "");
    expect(markup).not.toMatch(/<img|<svg\/onload|<\/?script/i);
    expect(out.body).toContain("&lt;img src=x onerror=alert(1)&gt;");
  });

  it("several files are a series: the last capture's verdict, the prediction and its timeline", async () => {
    const tail = { name: "proc-tail.txt", bytes: fixtureBytes("host/proc-tail.txt") };
    const out = await runChecker({ dumps: [dump(), tail], symbols: kallsymsGz(), funcs: "worker_thread" }, loadWasmScannerSync());
    const results = [hostCapture("proc-grep.txt"), hostCapture("proc-tail.txt")].map((c) => runCheck(c, ["worker_thread"]));
    const kpatch = [hostCapture("proc-grep.txt"), hostCapture("proc-tail.txt")].map((c) => runCheck(c, ["worker_thread"], { options: { model: "kpatch" } }));
    const want = predict(results, [null, null], kpatch);
    expect(out.prediction).toEqual(want);
    expect(out.report.prediction).toEqual(want);
    expect(out.report.counts).toEqual(toJsonReport(results[1]).counts);
    expect(out.report.warnings.map((w) => w.code)).toContain("series-one-host");
    expect(out.body).toContain(`<dd id="ps-pred-captures">2</dd>`);
    expect(out.body).toContain(`id="ps-timeline-grid"`);
  });

  it("typed functions: names, sympos, modules and ranges; nothing typed is an error", () => {
    const p = parsePatchText(" worker_thread\nvmlinux:init_once,3  mod:fn ; 0x10-0x20 ");
    expect(p.funcs.map((f) => [f.object, f.oldName, f.oldSympos])).toEqual([
      ["vmlinux", "worker_thread", 0],
      ["vmlinux", "init_once", 3],
      ["mod", "fn", 0],
    ]);
    expect(p.ranges).toHaveLength(1);
    expect(() => parsePatchText("  ")).toThrow(/at least one function/);
    expect(() => parsePatchText("a<b")).toThrow(/expected \[object:\]name/);
  });

  it("user errors are PatchsafeErrors naming the problem", async () => {
    const s = loadWasmScannerSync();
    await rejects(runChecker({ dumps: [dump()], symbols: kallsymsGz(), funcs: "no_such_function_xyz" }, s), "E_SYMBOL_NOT_FOUND", /no_such_function_xyz/);
    await rejects(runChecker({ dumps: [{ name: "x.bin", bytes: enc("hello\nworld\n") }], funcs: "worker_thread" }, s), "E_INPUT", /not a known stack-dump format/);
    await rejects(runChecker({ dumps: [], funcs: "worker_thread" }, s), "E_USAGE", /stack dump/);
    await rejects(maybeGunzip({ name: "bad.gz", bytes: new Uint8Array([0x1f, 0x8b, 1, 2, 3]) }), "E_INPUT", /cannot gunzip/);
  });
});
