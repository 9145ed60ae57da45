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
  /** A stack dump (any format `check` reads), a native capture, or a snapshot (.psnap or JSON). */
  dump: NamedBytes;
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
  result: CheckResult;
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

/** The capture (and the snapshot's symbol table, if it is a snapshot) in a file. */
export function loadCapture(dump: NamedBytes): { capture: Capture; symbols: SymbolTable | null } {
  if (isSnapshot(dump.bytes)) {
    const s = decodeSnapshot(dump.bytes, dump.name);
    return { capture: s.capture, symbols: s.symbols };
  }
  const head = latin1(dump.bytes, 0, Math.min(dump.bytes.length, 4096));
  if (looksLikeSnapshotJson(head)) {
    const s = parseSnapshotJson(new TextDecoder().decode(dump.bytes), dump.name);
    return { capture: s.capture, symbols: s.symbols };
  }
  const captures = parseCaptures(dump.bytes, dump.name);
  if (captures.length > 1) {
    const where = captures.map((c) => `${c.source.format} at line ${c.source.firstLine ?? "?"}`).join(", ");
    throw new PatchsafeError("E_UNSUPPORTED", `the file holds ${captures.length} dumps (${where}); this page checks one capture at a time`, { file: dump.name });
  }
  return { capture: captures[0], symbols: null };
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
  const dump = await maybeGunzip(input.dump);
  const loaded = loadCapture(dump);
  const capture = loaded.capture;
  let symbols = loaded.symbols;
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
  const options: Partial<DecideOptions> = { model: input.model ?? "livepatch", direction: input.revert ? "revert" : "apply", partialOk: input.partialOk === true, strict: input.strict === true };
  const result = check({ capture, symbols, patch, scanner, options });
  const report = toJsonReport(result);
  return { result, report, body: renderReportBody(report, { stacks: blockingStacks(result) }), page: () => toHtmlReport(result) };
}
