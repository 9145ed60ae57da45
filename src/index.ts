/**
 * patchsafe's library API (re-exports only). Runs in Node and browsers: nothing here imports
 * `node:` modules. Node helpers (live capture, file reading, the sync wasm loader) are in
 * `patchsafe/node`.
 *
 *   const scanner = await loadWasmScannerFromUrl(scanWasmUrl("release"));   // or loadWasmScannerSync() from patchsafe/node
 *   const capture = parseProcText(dumpBytes, "dump.txt");
 *   const symbols = parseSymbolTable(kallsymsText);
 *   const result = check({ capture, symbols, patch: { ...emptyPatch(), funcs: [parseFuncArg("worker_thread")] }, scanner });
 *   result.verdict.verdict;   // "safe" | "blocked" | "undecided"
 *
 * Tasks, outcomes and blockers are columns (TaskTable, Outcomes, Blockers: a million tasks are
 * typed arrays, not a million objects); `get(i)`, iteration and `toArray()` give objects.
 */
export { check, DEFAULT_OPTIONS, scanInputFor, type CheckRequest, type CheckResult } from "./check.js";
export { decideLivepatch, LIVEPATCH_RULES, type DecideOptions, type Rule } from "./decide/livepatch.js";
export { type Blocker, Blockers, type HostVerdict, Outcomes, type Remedy, TASK_KINDS, TASK_STATUSES, type TaskOutcome, type Verdict } from "./decide/verdict.js";
export { isPatchsafeError, PatchsafeError, type ErrorCode } from "./errors.js";
export { generateProcDump, generateProcDumpTo } from "./generate/procDump.js";
export { captureToNativeJson, frameText, parseNativeJson } from "./ingest/nativeJson.js";
export { parseProcText, ProcTextParser } from "./ingest/procText.js";
export { createCaptureParser, detectFormat, FORMAT_NAMES, type FormatName, type IngestOptions, parseCaptures } from "./ingest/detect.js";
export { compileTokenizerModule, ProcTokenizer } from "./ingest/procTokenizer.js";
export { type Capture, FrameColumns, FrameFlag, frameLine, framesInTasks, type HostFacts, type Task, TaskTable } from "./model.js";
export { buildRanges, type RangeTable } from "./patch/ranges.js";
export { emptyPatch, parseFuncArg, parsePatchFile, parseRangeArg, type PatchSpec } from "./patch/spec.js";
export { escapeComm } from "./report/escape.js";
export { blockingStacks, enhanceReport, renderHtmlPage, renderReportBody, REPORT_CSS, toHtmlReport, type HtmlReportOptions, type StackFrameSample, type StackSample } from "./report/html.js";
export { buildInventory, inventoryText } from "./report/inventory.js";
export { toJsonReport, writeJsonReport, type JsonReport } from "./report/json.js";
export { toTextReport } from "./report/text.js";
export * from "./scan/index.js";
export * from "./snapshot/index.js";
export { resolveFrames } from "./symbols/resolve.js";
export { findObjectSymbol, parseSymbolTable, type SymbolTable } from "./symbols/table.js";
export { parseKallsymsBytes } from "./symbols/kallsymsFast.js";
export { VERSION } from "./version.js";
