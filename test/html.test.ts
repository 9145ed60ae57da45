/**
 * The HTML report (src/report/html.ts): hostile input renders as text, the sections exist for a
 * blocked capture and a series, nothing on the page points outside it, and the CSP admits
 * exactly the page's one script. test/browser.test.ts loads the same pages in Chromium.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseNativeJson } from "../src/ingest/nativeJson.js";
import type { Prediction } from "../src/predict/types.js";
import { blockingStacks, escapeHtml, jsonForScript, renderHtmlPage, reportScript, toHtmlReport } from "../src/report/html.js";
import { toJsonReport } from "../src/report/json.js";
import { cspHash } from "../src/report/sha256.js";
import { sha256 } from "../src/sha256.js";
import { hostCapture, runCheck, USER_EPOLL } from "./helpers.js";
import { handPrediction, HOSTILE, hostileResult } from "./html-fixtures.js";

/** What is left of a page once its own two script elements are taken out. */
function withoutOwnScripts(page: string): string {
  return page.replace(/<script type="application\/json" id="ps-data">[^<]*<\/script>/, "").replace(/<script>\(function[^]*?<\/script>/, "");
}

describe("sha256 (CSP hash)", () => {
  it("matches node:crypto on block-boundary and multi-byte inputs", () => {
    for (const s of ["", "abc", "a".repeat(55), "a".repeat(56), "a".repeat(64), "a".repeat(119), "é€😀".repeat(99)]) {
      expect(Buffer.from(sha256(new TextEncoder().encode(s))).toString("hex")).toBe(createHash("sha256").update(s, "utf8").digest("hex"));
      expect(cspHash(s)).toBe(`sha256-${createHash("sha256").update(s, "utf8").digest("base64")}`);
    }
  });

  it("the page's CSP names the hash of exactly its inline script, and nothing may load", () => {
    const page = toHtmlReport(runCheck(hostCapture("proc-grep.txt"), ["worker_thread"]));
    const { script, csp } = reportScript();
    expect(page).toContain(`<script>${script}</script>`);
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(page);
    expect(meta).not.toBeNull();
    expect(meta![1]).toBe(escapeHtml(csp));
    expect(csp).toMatch(/^default-src 'none';/);
    expect(csp).toContain(`script-src '${cspHash(script)}'`);
    expect(csp).not.toContain("unsafe-eval");
    // The meta tag comes before any style or script, so it governs all of them.
    expect(page.indexOf("Content-Security-Policy")).toBeLessThan(page.indexOf("<style>"));
    // The embedded function stands alone (no helper the bundler or test runner injected).
    expect(script).not.toMatch(/__name|__vite|require\(|import\(/);
  });
});

describe("escaping", () => {
  it("escapeHtml covers text and attribute contexts; jsonForScript cannot end its element", () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe("&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
    const j = jsonForScript({ s: "</script><!--<script>\u2028&" });
    expect(j).not.toMatch(/[<>&\u2028]/);
    expect(JSON.parse(j)).toEqual({ s: "</script><!--<script>\u2028&" });
  });

  it("a hostile comm, symbol, module and file name render as text, never as markup", () => {
    const r = hostileResult();
    expect(r.verdict.counts.blocked).toBe(2);
    const page = toHtmlReport(r);
    // The page's own elements: one data block and one script, each closed once.
    expect(page.match(/<script/g)).toHaveLength(2);
    expect(page.match(/<\/script>/g)).toHaveLength(2);
    const rest = withoutOwnScripts(page);
    expect(rest).not.toMatch(/<img/i);
    expect(rest).not.toMatch(/<svg\/onload/i);
    expect(rest).not.toMatch(/<\/?script/i);
    expect(rest).not.toMatch(/<b>|<i>/);
    // The hostile strings are there, escaped, in text and in attributes.
    expect(page).toContain("&lt;img src=x onerror=alert(1)&gt;");
    expect(page).toContain("evil&lt;/script&gt;&lt;svg/onload=alert(2)&gt;");
    expect(page).toContain(`data-name="evil&lt;/script&gt;&lt;svg/onload=alert(2)&gt;"`);
    expect(page).toContain("a&quot;b&#39;c&amp;d");
    expect(page).toContain("dump&quot;&#39;&lt;i&gt;x&lt;/i&gt;&amp;amp;.json");
    // Every attribute value is double-quoted and holds no raw quote or angle bracket.
    for (const m of rest.matchAll(/\s[a-z-]+="([^"]*)"/g)) expect(m[1]).not.toMatch(/[<>']/);
    // The data block round-trips the hostile names exactly.
    const data = JSON.parse(/<script type="application\/json" id="ps-data">([^<]*)<\/script>/.exec(page)![1]);
    expect(data.blockers[0].comm).toBe(HOSTILE.comm);
    expect(data.input.source).toBe(HOSTILE.file);
    expect(data.functions.map((f: { name: string }) => f.name)).toContain(HOSTILE.symbol);
  });

  it("control bytes in a comm and in names are shown, not passed through", () => {
    const doc = { format: "patchsafe-capture", version: 1, complete: true, hidesSchedFrames: true, tasks: [{ pid: 7, tid: 7, comm: "a\u001b[31mb\nc", state: "S", flags: 0x400000, frames: USER_EPOLL }] };
    const page = toHtmlReport(runCheck(parseNativeJson(JSON.stringify(doc), "x\u0007.json"), ["do_epoll_wait"], { symbols: null }));
    expect(page).toContain("a\\x1b[31mb\\x0ac");
    expect(page).toContain("x\\x07.json");
    expect(page).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
  });
});

describe("sections", () => {
  it("a blocked capture: verdict, chart, icicle with patched frames, table; no http(s) URL", () => {
    const r = runCheck(hostCapture("proc-grep.txt"), ["worker_thread", "do_epoll_wait"]);
    const j = toJsonReport(r);
    const page = toHtmlReport(r);
    expect(page).toContain(`data-verdict="blocked"`);
    expect(page).toContain(`<b id="ps-count-blocked">${j.counts.blocked}</b>`);
    expect(page).toContain(`<b id="ps-blockers">${j.blockers.length}</b>`);
    expect(page).toContain(`id="ps-chart"`);
    expect(page.match(/<g class="bar" data-blocking="\d+">/g)).toHaveLength(j.functions.length);
    expect(page).toContain(`data-blocking="${j.functions.find((f) => f.name === "worker_thread")!.blocking}"`);
    expect(page).toContain(`id="ps-icicle"`);
    expect(page).toMatch(/<g class="fr patched" data-name="worker_thread" /);
    expect(page).toMatch(/<g class="fr patched" data-name="do_epoll_wait" /);
    expect(page).toMatch(/<g class="fr" data-name="kthread" /);
    expect(page).toContain(`<table id="ps-tasks" data-ps-table>`);
    expect(page.match(/<tr class="s-blocked">/g)).toHaveLength(j.blockers.length);
    expect(page.match(/<tr class="s-undecided">/g)).toHaveLength(j.undecided.length);
    expect(page).toContain(`data-ps-filter="ps-tasks"`);
    expect(page).not.toContain(`id="ps-timeline"`);
    expect(page).not.toMatch(/https?:\/\//i);
    expect(page).not.toMatch(/\s(src|href|action|xlink:href)=/i);
  });

  it("blockingStacks: one stack per blocked task, outermost first, the blocker frame marked", () => {
    const r = runCheck(hostCapture("proc-grep.txt"), ["worker_thread"]);
    const stacks = blockingStacks(r);
    expect(stacks).toHaveLength(r.verdict.counts.blocked);
    for (const s of stacks) {
      expect(s.frames[0].name).toBe("ret_from_fork_asm");
      const patched = s.frames.filter((f) => f.patched);
      expect(patched.map((f) => f.name)).toEqual(["worker_thread"]);
    }
  });

  it("a safe capture says so and draws no stacks", () => {
    const page = toHtmlReport(runCheck(hostCapture("proc-grep.txt"), ["meminfo_proc_show"], { options: { partialOk: true } }));
    expect(page).toMatch(/data-verdict="(safe|undecided)"/);
    expect(page).toContain("No task is blocked.");
    expect(page).not.toContain(`id="ps-icicle"`);
  });

  it("rendered from a JsonReport alone, the page says the stacks were not given", () => {
    const page = renderHtmlPage(toJsonReport(runCheck(hostCapture("proc-grep.txt"), ["worker_thread"])));
    expect(page).toContain("The stacks were not given");
    expect(page).toContain(`data-verdict="blocked"`);
  });

  it("a series: the timeline shows tasks × captures with each status, and functions × captures", () => {
    const p = handPrediction();
    const page = toHtmlReport(runCheck(hostCapture("proc-grep.txt"), ["worker_thread"]), { prediction: p });
    expect(page).toContain(`id="ps-timeline"`);
    expect(page).toContain(`<dd id="ps-pred-captures">4 (2026-11-01T10:00:00Z … 2026-11-01T10:00:06Z)</dd>`);
    expect(page).toContain(`<dd id="ps-pred-allcleanat">never within the window</dd>`);
    expect(page).toContain("hand-built (test)");
    // Rows only for tasks that held the patch back (bash was always clean).
    expect(page.match(/<g class="trow" /g)).toHaveLength(4);
    expect(page).toContain("1 task(s) were clean or done in every capture");
    const row = (tid: number) => /<g class="trow" data-tid="(\d+)">.*?<\/g>/g.exec(page.slice(page.indexOf(`data-tid="${tid}"`) - 20))![0];
    expect(row(14).match(/class="c-blocked"/g)).toHaveLength(4);
    expect(row(4519).match(/class="c-(\w+)"/g)).toEqual(['class="c-blocked"', 'class="c-blocked"', 'class="c-clean"', 'class="c-clean"']);
    expect(row(201)).toContain("not present in capture 4");
    expect(row(14)).toContain("never leaves");
    // Hostile names in the prediction are escaped too.
    expect(withoutOwnScripts(page)).not.toMatch(/<img|<svg\/onload|<\/?script/i);
    expect(page.match(/<g class="frow">/g)).toHaveLength(2);
    expect(page).not.toMatch(/https?:\/\//i);
  });

  it("a series where every task gets clean: allCleanAt, shares and the estimate are shown", () => {
    const p: Prediction = { ...handPrediction(), neverClean: [], allCleanAt: 3, allCleanShare: 0.25, kpatchLoadChance: 0.7627, completion: { estimator: "first-clean capture time", seconds: 4, low: 2, high: 6 } };
    const page = renderHtmlPage(toJsonReport(runCheck(hostCapture("proc-grep.txt"), ["worker_thread"])), { prediction: p });
    expect(page).toContain(`<dd id="ps-pred-allcleanat">capture 3</dd>`);
    expect(page).toContain(`<dd id="ps-pred-allcleanshare">25% of captures</dd>`);
    expect(page).toContain(`<dd id="ps-pred-kpatch">76.3% chance</dd>`);
    expect(page).toContain("4.0 s (2.0–6.0 s) — first-clean capture time");
  });
});

describe("browser-clean", () => {
  it("the report and the checker's pipeline import nothing from node: and no Buffer", () => {
    for (const f of ["../src/report/html.ts", "../src/report/sha256.ts", "../src/sha256.ts", "../web/run.ts", "../web/checker.ts"]) {
      const src = readFileSync(new URL(f, import.meta.url), "utf8");
      expect([f, /from "node:|\brequire\(|\bBuffer\.|\bprocess\./.test(src)]).toEqual([f, false]);
    }
  });
});

describe("the page written in pieces (check --html)", () => {
  it("renders from the report's first rows exactly as from the whole report, and its data block is the whole --json report", async () => {
    const { writeHtmlReport, HTML_LIMITS } = await import("../src/report/html.js");
    const { generateProcDump } = await import("../src/generate/procDump.js");
    const { parseProcText } = await import("../src/ingest/procText.js");
    // More blocked and undecided tasks than the table draws, so the sections see a cut report.
    const cap = parseProcText(generateProcDump(hostCapture("capture.json"), { tasks: 20_000, seed: 9, in: [{ object: "vmlinux", name: "do_epoll_wait", share: 0.3 }] }).text, "synth");
    const r = runCheck(cap, ["do_epoll_wait"]);
    const full = toJsonReport(r);
    expect(full.blockers.length).toBeGreaterThan(HTML_LIMITS.tableRows);
    const pieces: string[] = [];
    writeHtmlReport(r, {}, (p) => pieces.push(p));
    const page = pieces.join("");
    expect(pieces.length).toBeGreaterThan(3);
    // The sections: the same markup as a page rendered from the whole report.
    const whole = renderHtmlPage(full, { stacks: blockingStacks(r) });
    expect(withoutOwnScripts(page)).toBe(withoutOwnScripts(whole));
    expect(page).toContain(`<b id="ps-blockers">${full.blockers.length}</b>`);
    expect(page).toContain(`of ${full.blockers.length + full.undecided.length} shown`);
    // The data block: every blocker, nothing that can end the script element.
    const block = /<script type="application\/json" id="ps-data">([^<]*)<\/script>/.exec(page)![1];
    expect(JSON.parse(block)).toEqual(JSON.parse(JSON.stringify({ ...full, prediction: null })));
    expect(toHtmlReport(r)).toBe(page);
  });
});
