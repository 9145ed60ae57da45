/**
 * The in-browser checker's page logic (bundled by scripts/build-web.mjs into the single file
 * dist-web/patchsafe.html, with the release scan kernel inlined as base64). The user picks or
 * drops files, types functions, and the report renders in this page; the page's CSP forbids every
 * connection, so the files never leave the machine.
 */
import { isPatchsafeError } from "../src/errors.js";
import { enhanceReport, REPORT_CSS } from "../src/report/html.js";
import { createWasmScanner } from "../src/scan/wasm.js";
import type { Scanner } from "../src/scan/types.js";
import { runChecker, type CheckerInput, type NamedBytes } from "./run.js";

/** build/scan.wasm (release), base64; replaced at build time. */
declare const __PATCHSAFE_WASM_BASE64__: string;

let module: Promise<WebAssembly.Module> | null = null;

function scanner(): Promise<Scanner> {
  module ??= (async () => {
    const bin = atob(__PATCHSAFE_WASM_BASE64__);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return WebAssembly.compile(bytes);
  })();
  return module.then((m) => createWasmScanner(m, "wasm-release"));
}

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`checker page lacks #${id}`);
  return e as T;
}

async function readAll(input: HTMLInputElement): Promise<NamedBytes[]> {
  return Promise.all(Array.from(input.files ?? []).map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
}

function setup(): void {
  const style = document.createElement("style");
  style.textContent = REPORT_CSS;
  document.head.appendChild(style);

  const form = el<HTMLFormElement>("ps-form");
  const dump = el<HTMLInputElement>("dump");
  const kallsyms = el<HTMLInputElement>("kallsyms");
  const status = el<HTMLElement>("status");
  const out = el<HTMLElement>("report");
  const save = el<HTMLAnchorElement>("save");
  const run = el<HTMLButtonElement>("run");
  let saved: string | null = null;

  // Drop zones: a file dropped on a zone becomes that zone's input's file.
  for (const [zone, input] of [
    [el("drop-dump"), dump],
    [el("drop-kallsyms"), kallsyms],
  ] as const) {
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length > 0) input.files = e.dataTransfer.files;
    });
  }
  // Dropping a file anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void (async () => {
      run.disabled = true;
      status.className = "";
      status.textContent = "checking…";
      out.replaceChildren();
      save.hidden = true;
      if (saved !== null) URL.revokeObjectURL(saved);
      saved = null;
      const t0 = performance.now();
      try {
        const input: CheckerInput = {
          dumps: await readAll(dump),
          symbols: (await readAll(kallsyms))[0] ?? null,
          funcs: el<HTMLInputElement>("funcs").value,
          model: el<HTMLSelectElement>("model").value as CheckerInput["model"],
          revert: el<HTMLInputElement>("revert").checked,
          partialOk: el<HTMLInputElement>("partial-ok").checked,
          strict: el<HTMLInputElement>("strict").checked,
        };
        const res = await runChecker(input, await scanner());
        // The body is built by renderReportBody: every input-derived string is escaped.
        out.innerHTML = res.body;
        enhanceReport(out);
        saved = URL.createObjectURL(new Blob([res.page()], { type: "text/html" }));
        save.href = saved;
        save.hidden = false;
        const r = res.report;
        const series = res.prediction === null ? "" : ` in the last of ${res.prediction.captures} captures`;
        status.textContent = `${r.verdict}: ${r.counts.tasks} task(s), ${r.counts.blocked} blocked, ${r.counts.undecided} undecided${series} (${Math.round(performance.now() - t0)} ms)`;
        status.className = `done v-${r.verdict}`;
      } catch (err) {
        status.className = "error";
        status.textContent = isPatchsafeError(err) ? `${err.describe()} [${err.code}]` : `error: ${(err as Error).message}`;
      } finally {
        run.disabled = false;
      }
    })();
  });
  el("ready").textContent = "ready";
}

setup();
