/**
 * Real-browser tests: playwright-core drives Debian's Chromium (/usr/bin/chromium; .ci/run
 * installs it). Headless, --no-sandbox (CI runs as root), background networking off, a fresh
 * profile. Opens the in-browser checker (dist-web/patchsafe.html, rebuilt here when missing or
 * older than its sources) from file://, feeds it a fixture, and reads the verdict; opens an
 * --html report with a hostile comm and checks that no element was made from it.
 *
 * UPDATE_SCREENSHOT=1 also rewrites docs/web-checker.png (the README's picture).
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHtmlReport } from "../src/report/html.js";
import { toJsonReport } from "../src/report/json.js";
import { encodeSnapshot } from "../src/snapshot/psnap.js";
import { fixturePath, hostCapture, hostTable, runCheck } from "./helpers.js";
import { HOSTILE, hostileCaptureJson, hostileResult } from "./html-fixtures.js";
// Brings the checker's DOM code into `npm run typecheck` (no test imports it otherwise).
import type {} from "../web/checker.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PAGE = join(ROOT, "dist-web/patchsafe.html");
const ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser.test.ts skipped: ${CHROMIUM} is missing (apt-get install -y chromium; .ci/run does this)`);

/** Newest mtime under the checker's sources. */
function newestSource(): number {
  let newest = 0;
  const walk = (p: string): void => {
    const s = statSync(p);
    if (s.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else newest = Math.max(newest, s.mtimeMs);
  };
  for (const p of ["src", "web", "scripts/build-web.mjs", "build/scan.wasm"]) if (existsSync(join(ROOT, p))) walk(join(ROOT, p));
  return newest;
}

describe.skipIf(!haveChromium)("in Chromium", () => {
  let dir: string;
  let ctx: BrowserContext;

  beforeAll(async () => {
    if (!existsSync(PAGE) || statSync(PAGE).mtimeMs < newestSource()) execFileSync(process.execPath, [join(ROOT, "scripts/build-web.mjs")], { cwd: ROOT, stdio: "pipe" });
    dir = mkdtempSync(join(tmpdir(), "patchsafe-browser-"));
    const { chromium } = await import("playwright-core");
    ctx = await chromium.launchPersistentContext(join(dir, "profile"), { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 900 } });
  });

  afterAll(async () => {
    await ctx?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A page that records what would show an attack or a leak: dialogs, errors, non-file requests. */
  async function watched(): Promise<{ page: Page; dialogs: string[]; errors: string[]; requests: string[] }> {
    const page = await ctx.newPage();
    const w = { page, dialogs: [] as string[], errors: [] as string[], requests: [] as string[] };
    page.on("dialog", (d) => {
      w.dialogs.push(d.message());
      void d.dismiss();
    });
    page.on("pageerror", (e) => w.errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") w.errors.push(m.text());
    });
    page.on("request", (r) => {
      if (!r.url().startsWith("file:") && !r.url().startsWith("blob:")) w.requests.push(r.url());
    });
    return w;
  }

  async function checkIn(page: Page, dump: string | string[], kallsyms: string | null, funcs: string): Promise<void> {
    await page.goto(pathToFileURL(PAGE).href);
    await page.waitForSelector("#ready:text('ready')", { state: "attached" });
    await page.setInputFiles("#dump", dump);
    if (kallsyms !== null) await page.setInputFiles("#kallsyms", kallsyms);
    await page.fill("#funcs", funcs);
    await page.click("#run");
    await page.waitForSelector("#ps-verdict, #status.error");
  }

  it("the checker page, from file://: a /proc dump + kallsyms + worker_thread is blocked, with check()'s count", async () => {
    const kallsyms = join(dir, "kallsyms");
    writeFileSync(kallsyms, gunzipSync(readFileSync(fixturePath("host/kallsyms.gz"))));
    const want = toJsonReport(runCheck(hostCapture("proc-grep.txt"), ["worker_thread"]));
    const w = await watched();
    await checkIn(w.page, fixturePath("host/proc-grep.txt"), kallsyms, "worker_thread");
    const status = await w.page.textContent("#status");
    expect(await w.page.getAttribute("#ps-verdict", "data-verdict"), status ?? "").toBe("blocked");
    expect(Number(await w.page.textContent("#ps-count-blocked"))).toBe(want.counts.blocked);
    expect(Number(await w.page.textContent("#ps-blockers"))).toBe(want.blockers.length);
    expect(Number(await w.page.textContent("#ps-count-undecided"))).toBe(want.counts.undecided);
    expect(await w.page.locator("#ps-tasks tbody tr.s-blocked").count()).toBe(want.blockers.length);
    expect(await w.page.locator("#ps-icicle g.patched").count()).toBeGreaterThan(0);
    // The table's search works in the checker too.
    await w.page.fill("input[data-ps-filter=ps-tasks]", "smpboot-nothing");
    expect(await w.page.textContent("[data-ps-shown=ps-tasks]")).toBe("0");
    expect(await w.page.getAttribute("#save", "href")).toMatch(/^blob:/);
    // The picture for the README: three functions, the top of the page.
    await w.page.fill("#funcs", "worker_thread smpboot_thread_fn do_epoll_wait");
    await w.page.click("#run");
    await w.page.waitForFunction(() => document.querySelectorAll("#ps-chart g.bar").length === 3);
    await w.page.evaluate(() => {
      (document.activeElement as HTMLElement | null)?.blur();
      window.scrollTo(0, 0);
    });
    const shot = join(dir, "web-checker.png");
    await w.page.setViewportSize({ width: 1280, height: 1000 });
    await w.page.screenshot({ path: shot, fullPage: false });
    if (process.env.UPDATE_SCREENSHOT === "1") {
      mkdirSync(join(ROOT, "docs"), { recursive: true });
      copyFileSync(shot, join(ROOT, "docs/web-checker.png"));
    }
    // Icicle zoom: clicking a frame makes it span the width; the top bar zooms back out.
    const ice = w.page.locator("#ps-icicle");
    const smp = ice.locator('g.fr[data-name="smpboot_thread_fn"]');
    const width = async () => Number(await smp.locator("rect").getAttribute("width"));
    const before = await width();
    await smp.click();
    expect(await width()).toBeCloseTo(1199.5, 1);
    expect(await ice.locator('g.fr[data-name="do_epoll_wait"]').getAttribute("display")).toBe("none");
    await ice.locator('g.fr[data-d="0"]').click();
    expect(await width()).toBeCloseTo(before, 1);
    expect(w.requests).toEqual([]);
    expect(w.errors).toEqual([]);
    await w.page.close();
  });

  it("the checker page: a .psnap snapshot carries its own symbol table (msgpackr's browser build)", async () => {
    const cap = hostCapture("proc-grep.txt");
    const want = toJsonReport(runCheck(cap, ["worker_thread"]));
    const file = join(dir, "host.psnap");
    writeFileSync(file, encodeSnapshot(cap, hostTable()));
    const w = await watched();
    await checkIn(w.page, file, null, "worker_thread");
    expect(await w.page.getAttribute("#ps-verdict", "data-verdict"), (await w.page.textContent("#status")) ?? "").toBe("blocked");
    expect(Number(await w.page.textContent("#ps-count-blocked"))).toBe(want.counts.blocked);
    expect(w.errors).toEqual([]);
    await w.page.close();
  });

  it("the checker page: two dumps are a series with a timeline", async () => {
    const kallsyms = join(dir, "kallsyms");
    if (!existsSync(kallsyms)) writeFileSync(kallsyms, gunzipSync(readFileSync(fixturePath("host/kallsyms.gz"))));
    const w = await watched();
    await checkIn(w.page, [fixturePath("host/proc-grep.txt"), fixturePath("host/proc-tail.txt")], kallsyms, "worker_thread");
    expect(await w.page.getAttribute("#ps-verdict", "data-verdict")).toBe("blocked");
    expect(await w.page.textContent("#ps-pred-captures")).toBe("2");
    expect(await w.page.locator("#ps-timeline-grid g.trow").count()).toBeGreaterThan(0);
    expect(await w.page.textContent("#status")).toContain("in the last of 2 captures");
    expect(w.errors).toEqual([]);
    expect(w.requests).toEqual([]);
    await w.page.close();
  });

  it("the checker page: a hostile comm from a dropped capture renders as text", async () => {
    const file = join(dir, "hostile.json");
    writeFileSync(file, hostileCaptureJson());
    const w = await watched();
    await checkIn(w.page, file, null, "do_epoll_wait");
    expect(await w.page.getAttribute("#ps-verdict", "data-verdict")).toBe("blocked");
    expect(await w.page.locator("img").count()).toBe(0);
    expect(await w.page.locator("svg[onload], [onerror]").count()).toBe(0);
    expect(await w.page.locator("#ps-tasks td", { hasText: HOSTILE.comm }).count()).toBeGreaterThan(0);
    expect(w.dialogs).toEqual([]);
    expect(w.requests).toEqual([]);
    await w.page.close();
  });

  it("an --html report with a hostile comm, symbol and file name: no element made from them, and its script runs", async () => {
    const file = join(dir, "report.html");
    writeFileSync(file, toHtmlReport(hostileResult()));
    const w = await watched();
    await w.page.goto(pathToFileURL(file).href);
    expect(await w.page.getAttribute("#ps-verdict", "data-verdict")).toBe("blocked");
    expect(await w.page.locator("img").count()).toBe(0);
    // `<b>` (module name) and `<i>` (file name) would be elements where input text is shown.
    expect(await w.page.locator("i, svg b, td b, span b, svg[onload], [onerror]").count()).toBe(0);
    expect(await w.page.locator("script").count()).toBe(2);
    const comms = await w.page.locator("#ps-tasks tbody td:nth-child(3)").allTextContents();
    expect(comms).toContain(HOSTILE.comm);
    expect(await w.page.locator("#ps-icicle g.fr", { hasText: "evil</script>" }).count()).toBeGreaterThan(0);
    expect(await w.page.title()).toContain(HOSTILE.file);
    // The page's one script ran under its CSP: sorting by tid descending puts 101 first.
    await w.page.click("#ps-tasks th:nth-child(1)");
    await w.page.click("#ps-tasks th:nth-child(1)");
    expect(await w.page.getAttribute("#ps-tasks th:nth-child(1)", "aria-sort")).toBe("descending");
    expect(await w.page.textContent("#ps-tasks tbody tr:first-child td:first-child")).toBe("101");
    const data = JSON.parse((await w.page.textContent("#ps-data")) ?? "null");
    expect(data.blockers[0].comm).toBe(HOSTILE.comm);
    expect(w.dialogs).toEqual([]);
    expect(w.errors).toEqual([]);
    expect(w.requests).toEqual([]);
    await w.page.close();
  });
});
