/**
 * The in-browser checker's pipeline, without the DOM: file bytes + typed functions → the same
 * check() the CLI runs → the HTML report's body. Browser-clean (no `node:`), so test/web.test.ts
 * runs it in Node too. Nothing here reads or sends anything but the bytes it is given.
 */
import { check, type CheckResult } from "../src/check.js";
import type { DecideOptions } from "../src/decide/livepatch.js";
import { PatchsafeError } from "../src/errors.js";
import { latin1 } from "../src/ingest/bytes.js";
import { parseCaptures } from "../src/ingest/detect.js";
import type { Capture } from "../src/model.js";
import { assertSeriesOrder, boundSeriesVerdict, predict } from "../src/predict/predict.js";
import type { Prediction } from "../src/predict/types.js";
import { emptyPatch, parseFuncArg, parseRangeArg, type PatchSpec } from "../src/patch/spec.js";
import { renderReportBody, toHtmlReport, blockingStacks } from "../src/report/html.js";
import { toJsonReport, type JsonReport } from "../src/report/json.js";
import type { Scanner } from "../src/scan/types.js";
import { looksLikeSnapshotJson, parseSnapshotJson } from "../src/snapshot/json.js";
import { decodeSnapshot, isSnapshot } from "../src/snapshot/psnap.js";
import { findObjectSymbol, parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";

export interface NamedBytes {
  name: string;
  bytes: Uint8Array;
}

export interface CheckerInput {
  /**
   * Stack dumps (any format `check` reads), native captures or snapshots (.psnap or JSON). Each
   * file, and each dump section of a kernel log, is one capture; several captures of one host are
   * a series, as for `patchsafe check CAP1 CAP2 …`: the verdict is the last one's and the report
   * gains the prediction and its timeline.
   */
  dumps: NamedBytes[];
  /** /proc/kallsyms or System.map (gzip is fine); default: the snapshot's own table, if any. */
  symbols?: NamedBytes | null;
  /** What the patch replaces: `[object:]name[,sympos]` or `0xLO-0xHI`, separated by spaces or newlines. */
  funcs: string;
  model?: DecideOptions["model"];
  revert?: boolean;
  partialOk?: boolean;
  strict?: boolean;
}

export interface CheckerOutput {
  /** The (last) capture's result. */
  result: CheckResult;
  /** A series: the prediction (also in report.prediction); null for one capture. */
  prediction: Prediction | null;
  report: JsonReport;
  /** The report's sections (renderReportBody), for the checker page. */
  body: string;
  /** The same report as a standalone page (toHtmlReport), for "save report". */
  page(): string;
}

const GZIP = [0x1f, 0x8b];

/** gunzips when the bytes start with the gzip magic (DecompressionStream: browsers and Node ≥ 18). */
export async function maybeGunzip(b: NamedBytes): Promise<NamedBytes> {
  if (b.bytes.length < 2 || b.bytes[0] !== GZIP[0] || b.bytes[1] !== GZIP[1]) return b;
  try {
    const stream = new Blob([b.bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
    return { name: b.name.replace(/\.gz$/, ""), bytes: new Uint8Array(await new Response(stream).arrayBuffer()) };
  } catch (e) {
    throw new PatchsafeError("E_INPUT", `cannot gunzip: ${(e as Error).message}`, { file: b.name });
  }
}

/** The captures (and a snapshot's symbol table) in a file. */
export function loadCaptures(dump: NamedBytes): { captures: Capture[]; symbols: SymbolTable | null } {
  if (isSnapshot(dump.bytes)) {
    const s = decodeSnapshot(dump.bytes, dump.name);
    return { captures: [s.capture], symbols: s.symbols };
  }
  const head = latin1(dump.bytes, 0, Math.min(dump.bytes.length, 4096));
  if (looksLikeSnapshotJson(head)) {
    const s = parseSnapshotJson(new TextDecoder().decode(dump.bytes), dump.name);
    return { captures: [s.capture], symbols: s.symbols };
  }
  return { captures: parseCaptures(dump.bytes, dump.name), symbols: null };
}

/** Parses the typed functions and ranges. */
export function parsePatchText(funcs: string): PatchSpec {
  const patch = emptyPatch();
  for (const tok of funcs.split(/[\s;]+/).filter((t) => t !== "")) {
    if (/^0x[0-9a-f]+-0x[0-9a-f]+$/i.test(tok)) patch.ranges.push(parseRangeArg(tok));
    else patch.funcs.push(parseFuncArg(tok));
  }
  if (patch.funcs.length === 0 && patch.ranges.length === 0) throw new PatchsafeError("E_USAGE", "type at least one function the patch replaces (e.g. worker_thread, or vmlinux:init_once,3)");
  return patch;
}

/** Runs the check over the given files; throws PatchsafeError for bad input (message names the file). */
export async function runChecker(input: CheckerInput, scanner: Scanner): Promise<CheckerOutput> {
  const patch = parsePatchText(input.funcs);
  if (input.dumps.length === 0) throw new PatchsafeError("E_USAGE", "pick or drop a stack dump or snapshot first");
  const series: Capture[] = [];
  let symbols: SymbolTable | null = null;
  for (const d of input.dumps) {
    const loaded = loadCaptures(await maybeGunzip(d));
    series.push(...loaded.captures);
    symbols ??= loaded.symbols;
  }
  const capture = series[series.length - 1];
  if (input.symbols) {
    const s = await maybeGunzip(input.symbols);
    const base = s.name.split(/[\\/]/).pop() ?? s.name;
    symbols = parseSymbolTable(latin1(s.bytes, 0, s.bytes.length), { file: s.name, source: /system\.map/i.test(base) ? "system.map" : "kallsyms" });
  }
  if (symbols === null) {
    capture.warnings.push({ code: "no-kallsyms", message: "no symbol table: frames are matched by object and name only, and sizes, duplicates and scheduler sections cannot be checked" });
  } else {
    for (const w of symbols.warnings) capture.warnings.push({ code: "symbols", message: w });
    if (symbols.hasAddresses) {
      for (const f of patch.funcs) {
        const found = findObjectSymbol(symbols, f.object, f.oldName, f.oldSympos);
        if (!found.ok && found.code === "E_SYMBOL_NOT_FOUND" && (f.object === "vmlinux" || symbols.objects.includes(f.object))) {
          throw new PatchsafeError(found.code, found.message);
        }
      }
    }
  }
  const model = input.model ?? "livepatch";
  const options: Partial<DecideOptions> = { model, direction: input.revert ? "revert" : "apply", partialOk: input.partialOk === true, strict: input.strict === true };
  let result: CheckResult;
  let prediction: Prediction | null = null;
  if (series.length > 1) {
    // As the CLI does for `check CAP1 CAP2 …` (src/cli/main.ts).
    const boots = new Set(series.map((c) => c.host.bootId).filter((b) => b !== null));
    if (boots.size > 1) throw new PatchsafeError("E_USAGE", `the files come from ${boots.size} different boots (boot ids differ): a series is one host`);
    assertSeriesOrder(series);
    if (series.some((c) => c.host.bootId === null)) {
      capture.warnings.push({ code: "series-one-host", message: "some inputs record no boot id: they are taken as captures of one host, in the order given" });
    }
    const results = series.map((c) => check({ capture: c, symbols, patch, scanner, options }));
    const kpatch = model === "kpatch" ? results : series.map((c) => check({ capture: c, symbols, patch, scanner, options: { ...options, model: "kpatch" } }));
    prediction = predict(results, series.map((c) => c.host.capturedAt), kpatch);
    boundSeriesVerdict(results);
    result = results[results.length - 1];
  } else {
    result = check({ capture, symbols, patch, scanner, options });
  }
  const report = toJsonReport(result, prediction);
  return { result, prediction, report, body: renderReportBody(report, { stacks: blockingStacks(result), prediction }), page: () => toHtmlReport(result, { prediction }) };
}
