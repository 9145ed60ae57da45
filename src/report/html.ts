/**
 * `--html FILE`: one self-contained page (no network, works from file://) built from the --json
 * object (JsonReport) plus what JSON does not carry: the blocking tasks' stacks, and for a series
 * of captures the Prediction.
 *
 *   toHtmlReport(result, { prediction })          // from a CheckResult: JSON report + stacks
 *   renderHtmlPage(report, { stacks, prediction }) // from a JsonReport (stacks optional)
 *   renderReportBody(report, …) + REPORT_CSS + enhanceReport(root)   // embedding (web/checker)
 *
 * Sections: the verdict and its reasons; blocking tasks per function (inline SVG bars); for a
 * series, the timeline (tasks × captures) and functions × captures; the blocking stacks merged
 * into an icicle (root on top) where frames inside patched functions stand out; a table of the
 * blocked and undecided tasks with search and sort; the report as JSON in a data block.
 *
 * Trust (SPEC §8): comm, symbol and module names, file names and messages come from inputs.
 * Every one goes through `text()` (control characters shown as \xNN, then & < > " ' as entities)
 * and attributes are always double-quoted, so the same escaping serves text and attributes. The
 * JSON data block escapes < > & U+2028 U+2029 as \uXXXX so `</script>` and `<!--` cannot end it.
 * A Content-Security-Policy meta tag allows no fetch of any kind and only the one inline script
 * (by its SHA-256), so even markup that slipped through could neither load nor run anything.
 */
import type { CheckResult } from "../check.js";
import { frameName, realChain } from "../decide/kinds.js";
import { taskOrder } from "../decide/livepatch.js";
import { frameText } from "../ingest/nativeJson.js";
import type { Prediction } from "../predict/types.js";
import { escapeComm, terminalSafe } from "./escape.js";
import { type JsonReport, toJsonReportHead, writeJsonReport } from "./json.js";
import { cspHash } from "./sha256.js";

/** One frame of a blocking stack, as the icicle shows it. */
export interface StackFrameSample {
  /** Function name (no offset), or the frame text when there is no symbol (bare address). */
  name: string;
  object: string;
  /** The frame is inside a patched function (a blocker frame). */
  patched: boolean;
}

/** The stack of one blocked task, outermost frame first. */
export interface StackSample {
  pid: number | null;
  tid: number | null;
  /** Escaped as escapeComm does (printable ASCII), or null. */
  comm: string | null;
  frames: StackFrameSample[];
}

export interface HtmlReportOptions {
  /** A series of captures: the timeline. Default: report.prediction. */
  prediction?: Prediction | null;
  /** The blocking stacks for the icicle; without them the page says they were not given. */
  stacks?: StackSample[] | null;
  /** Page title; default "patchsafe: VERDICT — source". */
  title?: string;
  /**
   * The full lengths of the report's per-task arrays when the report holds only their first
   * items (toJsonReportHead); default: the arrays' own lengths.
   */
  totals?: Partial<Record<"blockers" | "undecided" | "switchable", number>>;
}

/** Rows drawn at most in the timeline and the table before "n more" (the data block has all). */
export const HTML_LIMITS = { timelineTasks: 200, tableRows: 5000, chartFunctions: 60, icicleNodes: 4000 } as const;

/**
 * The page for a check result: the JSON report (toJsonReport, with the prediction of a series)
 * plus the blocking stacks taken from result.capture (blockingStacks). This is what `--html FILE`
 * writes: `toHtmlReport(result, { prediction })` with the result and prediction --json prints.
 */
export function toHtmlReport(result: CheckResult, opts: Omit<HtmlReportOptions, "stacks" | "totals"> = {}): string {
  const parts: string[] = [];
  writeHtmlReport(result, opts, (p) => parts.push(p));
  return parts.join("");
}

/**
 * toHtmlReport's page in pieces, in order, through `write`: the sections are made from the
 * report's first rows (what they draw) and the data block is the --json report written a block
 * of items at a time (writeJsonReport), so a 1M-task page never holds the report as one object
 * graph or one string.
 */
export function writeHtmlReport(result: CheckResult, opts: Omit<HtmlReportOptions, "stacks" | "totals">, write: (piece: string) => void): void {
  const prediction = opts.prediction ?? null;
  const { report, totals } = toJsonReportHead(result, prediction, HTML_LIMITS.tableRows);
  const page = renderHtmlPage(report, { ...opts, prediction, stacks: blockingStacks(result), totals }, DATA_BLOCK);
  const at = page.indexOf(DATA_BLOCK);
  write(page.slice(0, at));
  // The data block: the report as --json prints it (prediction included), made safe for a
  // script element piece by piece (the escape is per character).
  writeJsonReport(result, prediction, (chunk) => write(chunk.replace(SCRIPT_UNSAFE, scriptEscape)));
  write(page.slice(at + DATA_BLOCK.length));
}

/** Where renderHtmlPage puts the data block's JSON when the caller writes it itself. */
const DATA_BLOCK = "\u0000ps-data\u0000";

/** The blocked tasks' stacks (real frames, outermost first), in report order (pid, tid). */
export function blockingStacks(r: CheckResult): StackSample[] {
  const cap = r.capture;
  const patchedRows = new Set(r.verdict.blockers.map((b) => b.frame));
  const unique = [...new Set(r.verdict.blockers.map((b) => b.task))].sort((a, b) => taskOrder(cap, a, b));
  // A sample's frames depend only on the task's rows: tasks that share rows share the list.
  const bySpan = new Map<string, StackSample["frames"]>();
  return unique.map((ti) => {
    const t = cap.tasks.get(ti);
    const key = `${t.frameStart}:${t.frameCount}`;
    let frames = bySpan.get(key);
    if (frames === undefined) {
      const rows = new Set(realChain(cap, t));
      for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) if (patchedRows.has(i)) rows.add(i);
      frames = [...rows]
        .sort((a, b) => b - a)
        .map((i) => {
          const o = cap.frames.object[i];
          return { name: frameName(cap, i) ?? frameText(cap, i), object: o < 0 ? "vmlinux" : cap.strings.get(o), patched: patchedRows.has(i) };
        });
      bySpan.set(key, frames);
    }
    return { pid: t.pid, tid: t.tid, comm: escapeComm(t.comm), frames };
  });
}

// ---------------------------------------------------------------------------------------------
// Escaping

/** HTML-escapes for text and double-quoted attribute contexts alike. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;"));
}

/** Input-derived text for the page: control characters visible as \xNN, then HTML-escaped. */
function text(s: string | null | undefined, dflt = "-"): string {
  return escapeHtml(terminalSafe(s ?? dflt));
}

/** JSON for a `<script type="application/json">` block: nothing in it can end the element. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(SCRIPT_UNSAFE, scriptEscape);
}

const SCRIPT_UNSAFE = /[<>&\u2028\u2029]/g;
const scriptEscape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

// ---------------------------------------------------------------------------------------------
// The page

export const REPORT_CSS = `
.ps-report{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;max-width:1280px;margin:0 auto;padding:12px 20px 40px}
.ps-report h1{font-size:26px;margin:0 0 4px}
.ps-report h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.ps-report .verdict{border-radius:8px;padding:14px 18px;border:2px solid}
.ps-report .v-blocked{background:#fdecea;border-color:#c0392b}
.ps-report .v-safe{background:#e8f6ee;border-color:#2e8b57}
.ps-report .v-undecided{background:#fff6db;border-color:#d4a000}
.ps-report .verdict ul{margin:6px 0;padding-left:20px}
.ps-report .code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;color:#555}
.ps-report .counts{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0 4px}
.ps-report .counts div{background:#fff;border:1px solid #ccc;border-radius:6px;padding:4px 10px;min-width:70px;text-align:center}
.ps-report .counts b{display:block;font-size:20px}
.ps-report .meta{color:#444;margin:4px 0}
.ps-report .scroll{overflow-x:auto;border:1px solid #e3e3e3;border-radius:6px;padding:6px;background:#fcfcfc}
.ps-report svg text{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.ps-report g.fr{cursor:pointer}
.ps-report .legend span{display:inline-block;margin-right:14px}
.ps-report .legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border:1px solid #888}
.ps-report table{border-collapse:collapse;width:100%;font-size:13px}
.ps-report th,.ps-report td{border-bottom:1px solid #e5e5e5;padding:3px 6px;text-align:left;vertical-align:top}
.ps-report td.mono,.ps-report .mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.ps-report th{background:#f2f2f2;cursor:pointer;user-select:none;position:sticky;top:0}
.ps-report th[aria-sort=ascending]::after{content:" \\25B2"}
.ps-report th[aria-sort=descending]::after{content:" \\25BC"}
.ps-report tr.s-blocked td:first-child{border-left:4px solid #c0392b}
.ps-report tr.s-undecided td:first-child{border-left:4px solid #d4a000}
.ps-report input[type=search]{font-size:14px;padding:4px 8px;width:320px;margin:0 10px 8px 0}
.ps-report .pred dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:6px 0}
.ps-report .pred dt{color:#555}
.ps-report .pred dd{margin:0}
.ps-report .muted{color:#777}
.ps-report details{margin-top:10px}
`;

/**
 * The page's behaviour: search and sort of the tables. Runs as the page's one inline script
 * (`(enhanceReport)(document)`, hashed into the CSP) and is called directly by the in-browser
 * checker on the element it rendered the body into. It must stay self-contained: it is embedded
 * by Function.prototype.toString, so it may not refer to anything outside itself.
 */
export function enhanceReport(root: ParentNode): void {
  const tables = root.querySelectorAll<HTMLTableElement>("table[data-ps-table]");
  tables.forEach((table) => {
    const tbody = table.tBodies[0];
    if (!tbody) return;
    const rows = Array.prototype.slice.call(tbody.rows) as HTMLTableRowElement[];
    const input = root.querySelector<HTMLInputElement>(`input[data-ps-filter="${table.id}"]`);
    const shown = root.querySelector<HTMLElement>(`[data-ps-shown="${table.id}"]`);
    const update = (): void => {
      const q = input ? input.value.trim().toLowerCase() : "";
      let n = 0;
      rows.forEach((r) => {
        const hit = q === "" || (r.textContent || "").toLowerCase().indexOf(q) >= 0;
        r.hidden = !hit;
        if (hit) n++;
      });
      if (shown) shown.textContent = String(n);
    };
    if (input) input.addEventListener("input", update);
    const heads = Array.prototype.slice.call(table.tHead ? table.tHead.rows[0].cells : []) as HTMLTableCellElement[];
    heads.forEach((th, col) => {
      th.tabIndex = 0;
      const sort = (): void => {
        const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        heads.forEach((h) => h.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        const key = (r: HTMLTableRowElement): string => {
          const c = r.cells[col];
          return c ? (c.getAttribute("data-sort") ?? c.textContent ?? "") : "";
        };
        rows.sort((a, b) => {
          const x = key(a);
          const y = key(b);
          const nx = Number(x);
          const ny = Number(y);
          const num = x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny);
          return dir * (num ? nx - ny : x.localeCompare(y));
        });
        rows.forEach((r) => tbody.appendChild(r));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          sort();
        }
      });
    });
    update();
  });
  // Icicle zoom: a clicked frame spans the width, its ancestors stay full width, the rest hide.
  const ice = root.querySelector<SVGSVGElement>("svg#ps-icicle");
  if (ice) {
    const W = Number(ice.getAttribute("width"));
    const frames = Array.prototype.slice.call(ice.querySelectorAll("g.fr")) as SVGGElement[];
    const num = (g: Element, k: string): number => Number(g.getAttribute(`data-${k}`));
    const zoom = (a0: number, n0: number, d0: number): void => {
      frames.forEach((g) => {
        const a = num(g, "a");
        const n = num(g, "n");
        const d = num(g, "d");
        const inside = d >= d0 && a >= a0 && a + n <= a0 + n0;
        const ancestor = d < d0 && a <= a0 && a + n >= a0 + n0;
        if (!inside && !ancestor) {
          g.setAttribute("display", "none");
          return;
        }
        g.removeAttribute("display");
        const x = ancestor ? 0 : ((a - a0) / n0) * W;
        const w = ancestor ? W : (n / n0) * W;
        const rect = g.querySelector("rect");
        const label = g.querySelector("text");
        if (rect) {
          rect.setAttribute("x", x.toFixed(2));
          rect.setAttribute("width", Math.max(0.5, w - 0.5).toFixed(2));
        }
        if (label) {
          const full = g.getAttribute("data-label") || "";
          const chars = Math.floor((w - 6) / 7.2);
          label.setAttribute("x", (x + 3).toFixed(2));
          label.textContent = chars < 3 ? "" : full.length <= chars ? full : `${full.slice(0, chars - 1)}…`;
        }
      });
    };
    frames.forEach((g) => {
      g.addEventListener("click", () => zoom(num(g, "a"), num(g, "n"), num(g, "d")));
    });
  }
}

/** The inline script of the page and the CSP that admits exactly it. */
export function reportScript(): { script: string; csp: string } {
  const script = `(${enhanceReport.toString()})(document);`;
  return { script, csp: `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src '${cspHash(script)}'; base-uri 'none'; form-action 'none'` };
}

/** A complete HTML document for `report`. */
export function renderHtmlPage(report: JsonReport, opts: HtmlReportOptions = {}, dataBlock?: string): string {
  const { script, csp } = reportScript();
  const title = opts.title ?? `patchsafe: ${report.verdict.toUpperCase()} — ${terminalSafe(report.input.source)}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<main class="ps-report">
${renderReportBody(report, opts, dataBlock)}
</main>
<script>${script}</script>
</body>
</html>
`;
}

/** The report's sections (no document, style or script): for embedding in another page. */
export function renderReportBody(report: JsonReport, opts: HtmlReportOptions = {}, dataBlock?: string): string {
  const prediction = opts.prediction ?? report.prediction ?? null;
  const totals = { blockers: report.blockers.length, undecided: report.undecided.length, switchable: report.switchable.length, ...opts.totals };
  const out: string[] = [];
  out.push(verdictSection(report, totals.blockers));
  out.push(chartSection(report));
  if (prediction !== null) out.push(timelineSection(prediction));
  out.push(icicleSection(report, opts.stacks ?? null));
  out.push(tableSection(report, totals.blockers + totals.undecided));
  out.push(detailsSection(report, totals.switchable));
  // The --json object itself (with the prediction of a series), for whoever wants the data back
  // (`dataBlock`: a marker the caller replaces with the JSON it writes itself).
  out.push(`<script type="application/json" id="ps-data">${dataBlock ?? jsonForScript({ ...report, prediction })}</script>`);
  out.push(
    `<p class="muted">patchsafe ${text(report.tool.version)} · made offline; this page loads nothing and sends nothing. The data block <span class="code">#ps-data</span> holds the --json report${prediction ? " with the prediction" : ""}.</p>`,
  );
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Sections

function verdictSection(r: JsonReport, blockers: number): string {
  const c = r.counts;
  const complete = r.complete === true ? "complete" : r.complete === false ? "partial" : "completeness unknown";
  const reasons = r.reasons.map((x) => `<li>${text(x.message)} <span class="code">[${text(x.code)}]</span></li>`).join("");
  const kc = r.kernelCheck;
  const kernel =
    kc.result === "fail" && kc.first !== null
      ? `would fail, first on ${text(kc.first.comm, "?")}:${kc.first.pid ?? "?"}${kc.first.function === null ? "" : ` (in ${text(kc.first.function)})`}`
      : kc.result === "fail"
        ? "would not start (see the reasons)"
        : kc.result === "pass" && r.verdict !== "safe"
          ? "would pass, but patchsafe cannot call it safe (see the reasons)"
          : text(kc.result);
  const count = (k: keyof JsonReport["counts"]) => `<div><b id="ps-count-${k}">${c[k]}</b>${k}</div>`;
  return `<header id="ps-verdict" class="verdict v-${text(r.verdict)}" data-verdict="${text(r.verdict)}">
<h1>${{ safe: "✓ SAFE", blocked: "✗ BLOCKED", undecided: "? UNDECIDED" }[r.verdict] ?? text(r.verdict)}</h1>
<div class="meta">${text(r.model)} ${text(r.direction)} over ${c.tasks} task(s) from <span class="mono">${text(r.input.source)}</span> (${text(r.input.format)}, ${complete})</div>
${reasons === "" ? "" : `<ul id="ps-reasons">${reasons}</ul>`}
<div class="counts">${count("blocked")}${count("undecided")}${count("clean")}${count("done")}${count("idle")}${count("excluded")}${count("tasks")}</div>
<div class="meta">blockers listed: <b id="ps-blockers">${blockers}</b> · kernel's own check: ${kernel}</div>
</header>`;
}

function funcLabel(f: { object: string; name: string | null; sympos: number | null }): string {
  return `${f.name ?? "range"}${f.sympos ? `,${f.sympos}` : ""} [${f.object}]`;
}

function clip(s: string, chars: number): string {
  return s.length <= chars ? s : chars <= 1 ? "" : `${s.slice(0, chars - 1)}…`;
}

function chartSection(r: JsonReport): string {
  const fs = [...r.functions].sort((a, b) => b.blocking - a.blocking || funcLabel(a).localeCompare(funcLabel(b)));
  const shown = fs.slice(0, HTML_LIMITS.chartFunctions);
  if (shown.length === 0) return `<section id="ps-chart"><h2>Blocking tasks per function</h2><p class="muted">No patched functions.</p></section>`;
  const max = Math.max(1, ...shown.map((f) => f.blocking));
  const rowH = 22;
  const labelW = 340;
  const barW = 560;
  const bars = shown
    .map((f, i) => {
      const y = i * rowH;
      const w = Math.max(f.blocking > 0 ? 2 : 0, Math.round((f.blocking / max) * barW));
      const label = funcLabel(f);
      return `<g class="bar" data-blocking="${f.blocking}"><title>${text(label)}: ${f.blocking} blocking task(s)</title><text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${text(clip(label, 44))}</text><rect x="${labelW}" y="${y + 3}" width="${w}" height="${rowH - 6}" fill="${f.blocking > 0 ? "#c0392b" : "#ccc"}"/><text x="${labelW + w + 6}" y="${y + 15}">${f.blocking}</text></g>`;
    })
    .join("");
  const more = fs.length > shown.length ? `<p class="muted">${fs.length - shown.length} more function(s) not drawn.</p>` : "";
  return `<section id="ps-chart"><h2>Blocking tasks per function</h2><div class="scroll"><svg role="img" aria-label="blocking tasks per function" width="${labelW + barW + 60}" height="${shown.length * rowH + 4}">${bars}</svg></div>${more}</section>`;
}

const STATUS_FILL: Record<string, string> = {
  blocked: "#c0392b",
  undecided: "#e0a800",
  clean: "#2e8b57",
  done: "#74b98a",
  idle: "#b8b8b8",
  excluded: "#d8d8d8",
};

function pct(x: number): string {
  return `${(Math.round(x * 1000) / 10).toString()}%`;
}

function timelineSection(p: Prediction): string {
  const n = p.captures;
  const cell = Math.max(6, Math.min(18, Math.floor(900 / Math.max(1, n))));
  const labelW = 230;
  const headH = 22;
  const interesting = p.tasks.filter((t) => t.blocked > 0 || t.undecided > 0);
  const rest = p.tasks.length - interesting.length;
  const rows = interesting.slice(0, HTML_LIMITS.timelineTasks);
  const colLabels: string[] = [];
  for (let c = 0; c < n; c++) {
    if (n <= 40 || c % Math.ceil(n / 40) === 0 || c === n - 1) {
      colLabels.push(`<text x="${labelW + c * cell + cell / 2}" y="15" text-anchor="middle"><title>capture ${c + 1}${p.times[c] ? ` at ${text(p.times[c])}` : ""}</title>${c + 1}</text>`);
    }
  }
  const cells = rows
    .map((t, ri) => {
      const y = headH + ri * cell;
      const who = `${t.comm ?? "?"}:${t.tid ?? "?"}`;
      const flags = `${t.neverClean ? " never clean" : ""}${t.neverLeaves ? " never leaves" : ""}`;
      const label = `<text x="${labelW - 6}" y="${y + cell - 4}" text-anchor="end">${text(clip(who, 28))}${t.neverLeaves ? " ⟳" : t.neverClean ? " ✗" : ""}</text>`;
      const cs = t.statuses
        .map((s, ci) =>
          s === null
            ? `<rect x="${labelW + ci * cell}" y="${y}" width="${cell - 1}" height="${cell - 1}" fill="#fff" stroke="#e5e5e5"><title>${text(who)}: not present in capture ${ci + 1}</title></rect>`
            : `<rect class="c-${s}" x="${labelW + ci * cell}" y="${y}" width="${cell - 1}" height="${cell - 1}" fill="${STATUS_FILL[s] ?? "#999"}"><title>${text(who)}: ${s} in capture ${ci + 1}</title></rect>`,
        )
        .join("");
      return `<g class="trow" data-tid="${t.tid ?? ""}"><title>${text(who)}: blocked in ${t.blocked}, undecided in ${t.undecided}, clean in ${t.clean} of ${t.seen} capture(s)${flags}</title>${label}${cs}</g>`;
    })
    .join("");
  let max = 1;
  for (const g of p.functions) for (const x of g.tids) max = Math.max(max, x.length);
  const funcs = p.functions
    .slice(0, HTML_LIMITS.chartFunctions)
    .map((f, ri) => {
      const y = headH + ri * cell;
      const label = funcLabel(f);
      const cs = f.tids
        .map((tids, ci) => {
          const a = tids.length === 0 ? 0 : 0.25 + 0.75 * (tids.length / max);
          return `<rect x="${labelW + ci * cell}" y="${y}" width="${cell - 1}" height="${cell - 1}" fill="${tids.length === 0 ? "#f3f3f3" : `rgba(192,57,43,${a.toFixed(2)})`}"><title>${text(label)}: ${tids.length} task(s) in capture ${ci + 1}${tids.length > 0 ? `: ${text(tids.slice(0, 20).map((x) => String(x ?? "?")).join(", "))}${tids.length > 20 ? ", …" : ""}` : ""}</title></rect>`;
        })
        .join("");
      return `<g class="frow"><text x="${labelW - 6}" y="${y + cell - 4}" text-anchor="end">${text(clip(label, 28))}</text>${cs}</g>`;
    })
    .join("");
  const width = labelW + n * cell + 10;
  const comp = p.completion;
  const completion =
    comp === null || comp.seconds === null
      ? `not estimated${comp ? ` (${text(comp.estimator)})` : ""}`
      : `${comp.seconds.toFixed(1)} s${comp.low !== null && comp.high !== null ? ` (${comp.low.toFixed(1)}–${comp.high.toFixed(1)} s)` : ""} — ${text(comp.estimator)}`;
  const list = (xs: string[]) => (xs.length === 0 ? "" : `<ul>${xs.map((x) => `<li>${text(x)}</li>`).join("")}</ul>`);
  return `<section id="ps-timeline" class="pred"><h2>Timeline over ${n} capture(s)</h2>
<dl>
<dt>captures</dt><dd id="ps-pred-captures">${n}${p.times[0] ? ` (${text(p.times[0])} … ${text(p.times[n - 1] ?? "?")})` : ""}</dd>
<dt>never clean</dt><dd id="ps-pred-neverclean">${p.neverClean.length} task(s)${p.neverClean.length > 0 ? `: ${text(p.neverClean.slice(0, 30).map((x) => String(x ?? "?")).join(", "))}${p.neverClean.length > 30 ? ", …" : ""}` : ""}</dd>
<dt>every task clean once by</dt><dd id="ps-pred-allcleanat">${p.allCleanAt === null ? "never within the window" : `capture ${p.allCleanAt}`}</dd>
<dt>all clean at once</dt><dd id="ps-pred-allcleanshare">${pct(p.allCleanShare)} of captures</dd>
<dt>kpatch load (5 tries)</dt><dd id="ps-pred-kpatch">${pct(p.kpatchLoadChance)} chance</dd>
<dt>livepatch completion</dt><dd id="ps-pred-completion">${completion}</dd>
</dl>
<div class="legend">${["blocked", "undecided", "clean", "done", "idle", "excluded"].map((s) => `<span><i style="background:${STATUS_FILL[s]}"></i>${s}</span>`).join("")}<span><i style="background:#fff"></i>not present</span><span>✗ never clean · ⟳ never leaves</span></div>
<h3>Tasks × captures</h3>
${rows.length === 0 ? `<p class="muted">No task was blocked or undecided in any capture.</p>` : `<div class="scroll"><svg id="ps-timeline-grid" role="img" aria-label="tasks by capture" width="${width}" height="${headH + rows.length * cell + 4}">${colLabels.join("")}${cells}</svg></div>`}
${interesting.length > rows.length ? `<p class="muted">${interesting.length - rows.length} more task(s) that held the patch back are in the data block.</p>` : ""}
${rest > 0 ? `<p class="muted">${rest} task(s) were clean or done in every capture they appear in (not drawn).</p>` : ""}
${p.functions.length === 0 ? "" : `<h3>Functions × captures (tasks inside)</h3><div class="scroll"><svg id="ps-timeline-funcs" role="img" aria-label="functions by capture" width="${width}" height="${headH + Math.min(p.functions.length, HTML_LIMITS.chartFunctions) * cell + 4}">${colLabels.join("")}${funcs}</svg></div>`}
<details><summary>Assumptions${p.warnings.length > 0 ? " and warnings" : ""}</summary>${list(p.assumptions)}${list(p.warnings)}</details>
</section>`;
}

interface IcicleNode {
  name: string;
  object: string;
  count: number;
  patched: boolean;
  children: Map<string, IcicleNode>;
  tasks: string[];
}

function hashHue(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return Math.abs(h);
}

function icicleSection(r: JsonReport, stacks: StackSample[] | null): string {
  const head = `<section id="ps-stacks"><h2>Blocking stacks</h2>`;
  if (stacks === null) return `${head}<p class="muted">The stacks were not given to this report (it was rendered from the JSON report alone).</p></section>`;
  if (stacks.length === 0) return `${head}<p class="muted">No task is blocked.</p></section>`;
  const root: IcicleNode = { name: "all blocked tasks", object: "", count: 0, patched: false, children: new Map(), tasks: [] };
  for (const s of stacks) {
    root.count++;
    let node = root;
    for (const f of s.frames) {
      const key = `${f.object}\u0000${f.name}`;
      let child = node.children.get(key);
      if (child === undefined) node.children.set(key, (child = { name: f.name, object: f.object, count: 0, patched: false, children: new Map(), tasks: [] }));
      child.count++;
      child.patched ||= f.patched;
      if (child.tasks.length < 8) child.tasks.push(`${s.comm ?? "?"}:${s.tid ?? "?"}`);
      node = child;
    }
  }
  const W = 1200;
  const rowH = 18;
  const rects: string[] = [];
  let depthMax = 0;
  let dropped = 0;
  // Position in task units (a = first task, n = tasks): zooming rescales them exactly.
  const walk = (node: IcicleNode, a: number, depth: number): void => {
    const x = (a / root.count) * W;
    const w = (node.count / root.count) * W;
    if (w < 0.1 || rects.length >= HTML_LIMITS.icicleNodes) {
      dropped++;
      return;
    }
    depthMax = Math.max(depthMax, depth);
    const y = depth * rowH;
    const label = node.object === "" || node.object === "vmlinux" ? node.name : `${node.name} [${node.object}]`;
    const fill = node === root ? "#9aa5b1" : node.patched ? "#c0392b" : `hsl(${200 + (hashHue(label) % 40)},45%,${72 + (hashHue(label) % 14)}%)`;
    const chars = Math.floor((w - 6) / 7.2);
    const tip = `${label}: ${node.count} task(s)${node.patched ? " — inside a patched function" : ""}${node.tasks.length > 0 ? ` (${node.tasks.join(", ")}${node.count > node.tasks.length ? ", …" : ""})` : ""}`;
    rects.push(
      `<g class="${node.patched ? "fr patched" : "fr"}" data-name="${text(node.name)}" data-label="${text(label)}" data-a="${a}" data-n="${node.count}" data-d="${depth}"><title>${text(tip)}</title><rect x="${x.toFixed(2)}" y="${y}" width="${Math.max(0.5, w - 0.5).toFixed(2)}" height="${rowH - 1}" fill="${fill}"${node.patched ? ` stroke="#000" stroke-width="1.5"` : ""}/><text x="${(x + 3).toFixed(2)}" y="${y + 13}" fill="${node.patched ? "#fff" : "#111"}">${chars >= 3 ? text(clip(label, chars)) : ""}</text></g>`,
    );
    let ca = a;
    for (const c of [...node.children.values()].sort((p, q) => q.count - p.count || p.name.localeCompare(q.name))) {
      walk(c, ca, depth + 1);
      ca += c.count;
    }
  };
  walk(root, 0, 0);
  return `${head}<p class="meta">${stacks.length} blocked task(s), outermost frame on top, width by task count; <span style="background:#c0392b;color:#fff;padding:0 4px">dark red</span> frames are inside a patched function. Hover a frame for its tasks; click one to zoom in, the top bar to zoom out.</p>
<div class="scroll"><svg id="ps-icicle" role="img" aria-label="blocking stacks merged" width="${W}" height="${(depthMax + 1) * rowH + 2}" data-total="${root.count}">${rects.join("")}</svg></div>${dropped > 0 ? `<p class="muted">${dropped} frame group(s) too narrow to draw.</p>` : ""}</section>`;
}

/** `total`: rows of the full report (r may hold only the first ones). */
function tableSection(r: JsonReport, total: number): string {
  const rows: string[] = [];
  const td = (v: string | number | null, cls = "", sort?: string) => `<td${cls ? ` class="${cls}"` : ""}${sort !== undefined ? ` data-sort="${text(sort)}"` : ""}>${typeof v === "number" ? v : text(v)}</td>`;
  for (const b of r.blockers) {
    rows.push(
      `<tr class="s-blocked">${td(b.tid, "", b.tid === null ? "" : String(b.tid))}${td(b.pid, "", b.pid === null ? "" : String(b.pid))}${td(b.comm, "mono")}${td(b.kind)}${td(b.state)}${td("blocked")}${td(funcLabel({ object: b.object, name: b.function, sympos: b.sympos }), "mono")}${td(`#${b.frame.index} ${b.frame.text}${b.kernelSees ? "" : " (kernel does not see this frame)"}`, "mono")}${td(`${b.remedy.code}: ${b.remedy.message}${b.remedy.callees?.length ? ` (callees: ${b.remedy.callees.join(", ")})` : ""}`)}</tr>`,
    );
  }
  for (const u of r.undecided) {
    rows.push(
      `<tr class="s-undecided">${td(u.tid, "", u.tid === null ? "" : String(u.tid))}${td(u.pid, "", u.pid === null ? "" : String(u.pid))}${td(u.comm, "mono")}${td("")}${td("")}${td("undecided")}${td(u.reason.code, "mono")}${td("")}${td(u.reason.message)}</tr>`,
    );
  }
  const drawn = rows.slice(0, HTML_LIMITS.tableRows);
  const heads = ["tid", "pid", "comm", "kind", "state", "status", "function / reason", "frame", "remedy / detail"].map((h) => `<th scope="col">${h}</th>`).join("");
  return `<section id="ps-table-section"><h2>Blocked and undecided tasks</h2>
<input type="search" placeholder="search comm, tid, function, remedy…" data-ps-filter="ps-tasks" aria-label="search the task table"><span class="muted"><span data-ps-shown="ps-tasks">${drawn.length}</span> of ${total} shown; click a heading to sort</span>
${total > drawn.length ? `<p class="muted">${total - drawn.length} more row(s) are in the data block.</p>` : ""}
<div class="scroll"><table id="ps-tasks" data-ps-table><thead><tr>${heads}</tr></thead><tbody>${drawn.join("")}</tbody></table></div></section>`;
}

function detailsSection(r: JsonReport, switchable: number): string {
  const list = (xs: { code: string; message: string }[]) => (xs.length === 0 ? "<p class=\"muted\">none</p>" : `<ul>${xs.map((x) => `<li>${text(x.message)} <span class="code">[${text(x.code)}]</span></li>`).join("")}</ul>`);
  const i = r.input;
  return `<section id="ps-details"><h2>Details</h2>
<p class="meta">input <span class="mono">${text(i.source)}</span> (${text(i.format)}): ${i.tasks} task(s), ${i.frames} frame(s), keys: ${text(i.keySpace)}, symbols: ${text(i.symbols, "none")}</p>
<details${r.warnings.length > 0 ? " open" : ""}><summary>Warnings (${r.warnings.length})</summary>${list(r.warnings)}</details>
<details><summary>Completeness (${r.completeness.length})</summary>${list(r.completeness)}</details>
<details><summary>Can switch now (${switchable})</summary><p class="mono">${text(r.switchable.slice(0, 2000).map((x) => String(x ?? "?")).join(" "), "none")}</p></details>
</section>`;
}
