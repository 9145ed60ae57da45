/**
 * The command line: argv → options → the pipeline → output. The only place that exits.
 *
 *   patchsafe                      inventory of the live host
 *   patchsafe check [INPUT…]       decide; no INPUT = capture the live host
 *   patchsafe capture [-o FILE]    snapshot the live host (.psnap, 0600); --every/--count: a series
 *   patchsafe convert, fleet, wait, synth (each has --help)
 *
 * Exit: 0 safe, 1 blocked, 3 undecided, 2 usage or input error.
 */
import { closeSync, mkdirSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { check, type CheckResult } from "../check.js";
import { assertSeriesOrder, boundSeriesVerdict, predict } from "../predict/predict.js";
import type { Prediction } from "../predict/types.js";
import { predictionText } from "../report/prediction.js";
import type { DecideOptions, SectionOfName } from "../decide/livepatch.js";
import { PatchsafeError } from "../errors.js";
import type { Capture } from "../model.js";
import { emptyPatch, parseAppliedFile, parseFuncArg, parsePatchFile, parseRangeArg, type PatchSpec } from "../patch/spec.js";
import { buildInventory, inventoryText } from "../report/inventory.js";
import { writeHtmlReport } from "../report/html.js";
import { writeJsonReport } from "../report/json.js";
import { terminalSafe } from "../report/escape.js";
import { toTextReport } from "../report/text.js";
import { findObjectSymbol, type SymbolTable } from "../symbols/table.js";
import { explainMissing } from "../patch/suggest.js";
import { readPatchModuleSpec } from "../patch/patchModule.js";
import { filterReport } from "../report/filter.js";
import { VERSION } from "../version.js";
import { FORMAT_NAMES, type FormatName, isFormatName } from "../ingest/detect.js";
import { readBinaryFile, readCaptureFiles, readSymbolFile, readTextFile } from "../node/io.js";
import { captureHostAfter } from "../node/capture.js";
import { loadedKpatchModules, readTraceable } from "../node/live.js";
import { readSnapshotFile, sniffSnapshot, writePrivateFileFrom } from "../node/snapshotFile.js";
import { redactedSectionOf } from "../snapshot/redact.js";
import type { SectionRows } from "../snapshot/model.js";
import { setSymbolCacheDisabled } from "../node/symbolCache.js";
import { loadWasmScannerSync, warmProcTokenizer } from "../node/wasm.js";
import { runCapture } from "./capture.js";
import { runConvert } from "./convert.js";
import { runShowPatch } from "./showPatch.js";
import { runFleet } from "./fleet.js";
import { runSynth } from "./synth.js";

export const EXIT = { safe: 0, blocked: 1, error: 2, undecided: 3 } as const;

const HELP = `patchsafe ${VERSION}: is it safe to apply a kernel live patch now, and who blocks it?

Usage:
  patchsafe                         inventory of the live host: what is on stacks now
  patchsafe check [INPUT…] [options]
                                    decide for a patch; no INPUT checks the live host,
                                    '-' reads standard input
  patchsafe wait [check options] [--timeout 60s] [--interval 2s]
                                    re-capture the live host until the check is safe (exit 0)
                                    or the time runs out (exit 1 or 3 with the last report)
  patchsafe capture [-o FILE] [--redact] [--json]
                                    snapshot the live host (.psnap, mode 0600): tasks, stacks,
                                    symbols, enabled patches, host facts
  patchsafe capture --every 2s --count 30 -o DIR
                                    a series of snapshots for prediction
  patchsafe convert INPUT… -o FILE  between every readable format and .psnap / JSON
  patchsafe show-patch FILE.ko [--json]
                                    what a patch module replaces (object, function, sympos, sizes)
  patchsafe fleet DIR|FILE… --func F [--jobs N] [--json]
                                    check many hosts' snapshots against one patch in parallel
  patchsafe synth --tasks N [--seed S] [--from CAPTURE] [--as proc|sysrq|psnap] [--shape grep|tail|header]
                 [--in [OBJ:]FUNC:SHARE]… -o FILE
                                    generate a large capture by resampling real stacks

Patch (check):
  --func [OBJECT:]NAME[,SYMPOS]     a function the patch replaces (repeatable)
  --range 0xLO-0xHI                 a raw half-open address range (needs --kallsyms)
  --patch FILE                      the patch as JSON: {name, replace, objects:[{name, funcs:[…]}]}
  --patch-module FILE.ko            the patch module itself (kpatch-built or livepatch): its
                                    replaced functions are read from the ELF file
  --applied-module FILE.ko          a patch module already enabled (repeatable, oldest first)
  --no-applied                      ignore the patch stack the live host or a snapshot recorded
  --replace                         the patch replaces every earlier one (kpatch.ko's load-time
                                    replace parameter)

Input (check):
  --kallsyms FILE                   /proc/kallsyms or System.map of the same boot
                                    (default for the live host: /proc/kallsyms)
  --no-cache                        parse --kallsyms FILE, not its cached table (also
                                    PATCHSAFE_NO_CACHE=1)
  --format NAME                     force the input format (default auto: detected per file and
                                    per dmesg section): auto, json, proc, dmesg, sysrq-t, sysrq-w,
                                    hung-task, crash, perf, bpftrace, bcc, bcc-folded, drgn

Decision (check):
  --model livepatch|kpatch|quiesce  consistency model: livepatch (per task, upstream), kpatch
                                    (kpatch.ko: every task at one instant), quiesce (freeze user
                                    tasks, park smpboot threads, then one global check)
  --revert                          check disabling the --patch (must be in the applied stack)
  --applied FILE                    a patch already enabled (repeatable, oldest first): JSON as
                                    --patch plus enabled, transition, forced, stack_order
  --partial-ok                      decide over the tasks that were read when the capture is partial
  --strict                          every warning that weakens "safe" makes it "undecided"
  --json                            one JSON object on stdout (schema 1)
  --html FILE                       also write one self-contained HTML page (no network; 0600)
  -v, -vv                           list every blocked and undecided task (not only the first
                                    10 of each group); -vv adds undecided tasks' stacks
  --tid N, --comm NAME, --state LETTERS
                                    report only these tasks (repeatable; the verdict still
                                    covers every task)

Several INPUTs are captures of one host a few seconds apart (same boot id): the verdict is
the last one's, and the report predicts whether a transition will complete.

On the live host the enabled livepatches (/sys/kernel/livepatch) and kpatch.ko's patch modules
(/sys/kernel/kpatch, kpatch 0.4+) are the applied stack unless --applied is given; a kpatch.ko
tree that cannot be read is an error (exit 2) without --applied.

Exit status: 0 safe, 1 blocked, 3 undecided, 2 usage or input error.
`;

class Output {
  out: string[] = [];
  err: string[] = [];
  /** Writes stdout as it is produced (large reports); absent: collected in `out`. */
  stream?: (chunk: string) => void;
}

function usage(msg: string): never {
  throw new PatchsafeError("E_USAGE", `${msg} (patchsafe --help)`);
}

function exitFor(r: CheckResult): number {
  return EXIT[r.verdict.verdict];
}


function runCheck(args: string[], o: Output): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      func: { type: "string", multiple: true },
      range: { type: "string", multiple: true },
      patch: { type: "string" },
      "patch-module": { type: "string" },
      "applied-module": { type: "string", multiple: true },
      replace: { type: "boolean" },
      "no-applied": { type: "boolean" },
      applied: { type: "string", multiple: true },
      kallsyms: { type: "string" },
      "no-cache": { type: "boolean" },
      model: { type: "string" },
      revert: { type: "boolean" },
      format: { type: "string" },
      "partial-ok": { type: "boolean" },
      strict: { type: "boolean" },
      json: { type: "boolean" },
      verbose: { type: "boolean", short: "v", multiple: true },
      tid: { type: "string", multiple: true },
      comm: { type: "string", multiple: true },
      state: { type: "string" },
      html: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    o.out.push(HELP);
    return 0;
  }
  setSymbolCacheDisabled(values["no-cache"] === true);
  const model = values.model ?? "livepatch";
  if (model !== "livepatch" && model !== "kpatch" && model !== "quiesce") usage(`--model ${model}: expected livepatch, kpatch or quiesce`);
  let applied = values.applied === undefined ? undefined : values.applied.map((f) => parseAppliedFile(readTextFile(f), f));
  if (values.revert && values.patch === undefined) usage("--revert needs --patch FILE naming the applied patch to disable");
  const format = values.format ?? "auto";
  if (!isFormatName(format)) usage(`--format ${values.format}: expected one of ${FORMAT_NAMES.join(", ")}`);

  if (values.patch !== undefined && values["patch-module"] !== undefined) usage("give --patch or --patch-module, not both");
  const patch: PatchSpec =
    values["patch-module"] !== undefined
      ? readPatchModuleSpec(readBinaryFile(values["patch-module"]), values["patch-module"])
      : values.patch !== undefined
        ? parsePatchFile(readTextFile(values.patch), values.patch)
        : emptyPatch();
  // kpatch.ko's replace is a load-time module parameter (kpatch-build's livepatch hook, .modinfo
  // livepatch=Y, replaces unless built --non-replace: the reader takes that as replace).
  if (values.replace) patch.replace = true;
  for (const f of values["applied-module"] ?? []) {
    const spec = readPatchModuleSpec(readBinaryFile(f), f);
    if (spec.name === null) throw new PatchsafeError("E_PATCH_MODULE", "the module's name could not be read", { file: f });
    applied = [...(applied ?? []), { name: spec.name, enabled: true, transition: false, replace: spec.replace, forced: false, stackOrder: null, funcs: spec.funcs }];
  }
  for (const f of values.func ?? []) patch.funcs.push(parseFuncArg(f));
  for (const r of values.range ?? []) patch.ranges.push(parseRangeArg(r));
  const inventoryOnly = patch.funcs.length === 0 && patch.ranges.length === 0;
  if (inventoryOnly && (values.revert || applied !== undefined)) usage("nothing to check: give --func, --range or --patch");

  let capture: Capture;
  /** Several captures of one host: the verdict is the last one's, and the series feeds prediction. */
  let series: Capture[] | null = null;
  let symbols: SymbolTable | null = null;
  /** A redacted snapshot's record of which functions lie in unpatchable sections (its table is not used). */
  let sectionOfName: SectionOfName | null = null;
  if (positionals.length === 0) {
    const kpatch = loadedKpatchModules();
    if (applied === undefined && kpatch.length > 0) {
      throw new PatchsafeError(
        "E_UNSUPPORTED",
        `this host runs kpatch.ko, but its patch modules could not be read (${kpatch.join("; ")}): the applied stack is unknown; describe it with --applied FILE`,
      );
    }
    // The symbols are read while the capture's helper process starts. The capture records
    // /sys/kernel/livepatch: check() uses it as the applied stack unless --applied says otherwise.
    const live = captureHostAfter(() => readSymbolFile(values.kallsyms ?? "/proc/kallsyms"));
    symbols = live.first;
    capture = live.report.capture;
  } else {
    // Each file, and each dump section of a dmesg, is one capture (SPEC §6). A snapshot brings
    // its own symbol table and applied patches, used unless --kallsyms / --applied say otherwise.
    let snapshotSymbols: SymbolTable | null = null;
    let snapshotSectionRows: SectionRows | null = null;
    // A /proc text dump and a symbol file: the tokenizer's optimizing compile is started first
    // and runs on another core while this thread reads the symbol file (warmProcTokenizer).
    // Each file's head is sniffed once.
    const snapshot = positionals.map((f) => f !== "-" && format === "auto" && isSnapshotFile(f));
    let early: SymbolTable | null = null;
    if (values.kallsyms !== undefined && (format === "auto" || format === "proc") && positionals.some((f, i) => f !== "-" && !snapshot[i])) {
      warmProcTokenizer();
      early = readSymbolFile(values.kallsyms);
    }
    const all = positionals.flatMap((f, i) => {
      if (snapshot[i]) {
        const snap = readSnapshotFile(f);
        if (snapshotSymbols === null) {
          snapshotSymbols = snap.symbols;
          snapshotSectionRows = snap.sectionRows;
        }
        return [snap.capture];
      }
      // What was detected shows in the report (its header and input.format), per capture.
      return readCaptureFiles(f, format as FormatName).captures;
    });
    if (all.length > 1) series = all;
    capture = all[all.length - 1];
    if (values.kallsyms === undefined && snapshotSymbols !== null) {
      const t: SymbolTable = snapshotSymbols;
      // A redacted table cannot place frames (nor scheduler sections): as good as none.
      if (t.hasAddresses) symbols = t;
      else {
        capture.warnings.push({ code: "redacted-symbols", message: "the snapshot's symbol table is redacted (no addresses): frames are matched by name, as without --kallsyms" });
        // Its section rows still say which functions cannot be live-patched at all.
        sectionOfName = redactedSectionOf(t, snapshotSectionRows);
      }
    }
    if (values.kallsyms !== undefined) symbols = early ?? readSymbolFile(values.kallsyms);
    else if (symbols === null) capture.warnings.push({ code: "no-kallsyms", message: "no --kallsyms: frames are matched by object and name only, and sizes, duplicates and scheduler sections cannot be checked" });
  }
  if (symbols !== null) for (const w of symbols.warnings) capture.warnings.push({ code: "symbols", message: w });
  // `check` without a patch: the default job over this capture.
  if (inventoryOnly) return inventoryOf(capture, symbols, values.json === true, process.stdout.isTTY === true, o);
  const options: Partial<DecideOptions> = { model, direction: values.revert ? "revert" : "apply", partialOk: values["partial-ok"] === true, strict: values.strict === true };
  if (symbols !== null && symbols.hasAddresses) {
    // The kernel's own error, plus what the user probably meant.
    for (const f of patch.funcs) {
      const found = findObjectSymbol(symbols, f.object, f.oldName, f.oldSympos);
      if (!found.ok && found.code === "E_SYMBOL_NOT_FOUND" && (f.object === "vmlinux" || symbols.objects.includes(f.object))) {
        throw new PatchsafeError(found.code, `${found.message}: ${explainMissing(symbols, f.object, f.oldName)}`);
      }
    }
  }
  const traceable = positionals.length === 0 ? readTraceable() : null;
  // --no-applied: ignore the patch stack the host (sysfs) or the snapshot recorded.
  if (values["no-applied"]) applied = [];
  const scanner = loadWasmScannerSync();
  let prediction: Prediction | null = null;
  let full: CheckResult;
  if (series !== null) {
    const boots = new Set(series.map((c) => c.host.bootId).filter((b) => b !== null));
    if (boots.size > 1) {
      throw new PatchsafeError("E_USAGE", `the inputs come from ${boots.size} different boots (boot ids differ): a series is one host; check several hosts with \`patchsafe fleet\``);
    }
    assertSeriesOrder(series);
    if (series.some((c) => c.host.bootId === null)) {
      capture.warnings.push({ code: "series-one-host", message: "some inputs record no boot id: they are taken as captures of one host, in the order given" });
    }
    const results = series.map((c) => check({ capture: c, symbols, patch, scanner, options, applied, sectionOfName }));
    const kpatch = model === "kpatch" ? results : series.map((c) => check({ capture: c, symbols, patch, scanner, options: { ...options, model: "kpatch" }, applied, sectionOfName }));
    prediction = predict(results, series.map((c) => c.host.capturedAt), kpatch);
    boundSeriesVerdict(results);
    full = results[results.length - 1];
  } else full = check({ capture, symbols, patch, scanner, options, applied, traceable, sectionOfName });
  const result = filterReport(full, values.tid, values.comm, values.state);
  if (values.html !== undefined) {
    // The page embeds the --json data (addresses, task names): written like a capture (SPEC §8),
    // and as it is made (a 1M-task page is ~60 MB).
    writePrivateFileFrom(values.html, positionals, (write) => writeHtmlReport(result, { prediction }, write));
    o.err.push(`patchsafe: wrote the HTML report to ${values.html} (mode 0600)\n`);
  }
  if (values.json) {
    // A 1M-task report is ~140 MB of JSON: streamed in blocks when stdout is ours.
    if (o.stream !== undefined) {
      o.stream(o.out.splice(0).join(""));
      writeJsonReport(result, prediction, o.stream);
    } else writeJsonReport(result, prediction, (chunk) => o.out.push(chunk));
  }
  else o.out.push(toTextReport(result, { verbosity: values.verbose?.length ?? 0 }) + (prediction === null ? "" : predictionText(prediction)));
  return exitFor(result);
}

/** Whether a file starts like a snapshot (.psnap magic or the snapshot JSON form). */
function isSnapshotFile(file: string): boolean {
  // Only regular files are sniffed: reading the head of a FIFO would consume what the parser needs.
  try {
    if (!statSync(file).isFile()) return false;
  } catch {
    return false;
  }
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return false; // the ordinary reader reports the error with the file name
  }
  try {
    const head = new Uint8Array(4096);
    return sniffSnapshot(head.subarray(0, readSync(fd, head, 0, head.length, 0))) !== null;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** The patch in transition on a capture, checked as the kernel is checking it now. */
function transitionCheckOf(capture: Capture, symbols: SymbolTable | null): { patch: string; result: CheckResult } | null {
  const lps = capture.livepatches ?? [];
  const p = lps.find((x) => x.transition);
  if (p === undefined) return null;
  const patch: PatchSpec = { name: p.name, replace: p.replace, funcs: p.funcs.map((f) => ({ ...f })), ranges: [] };
  const direction = p.enabled ? "apply" : "revert";
  const result = check({ capture, symbols, patch, scanner: loadWasmScannerSync(), options: { direction, partialOk: true }, applied: lps });
  return { patch: p.name, result };
}

/** The default job: what is on stacks now, what a patch must not touch, a stalled transition. */
function inventoryOf(capture: Capture, symbols: SymbolTable | null, json: boolean, tty: boolean, o: Output): number {
  const inv = buildInventory(capture, symbols, transitionCheckOf(capture, symbols));
  if (json) o.out.push(`${JSON.stringify({ schema: 1, host: capture.host, complete: capture.complete, completeness: capture.completeness, ...inv }, null, 2)}\n`);
  else o.out.push(inventoryText(capture, inv, tty ? 25 : Number.POSITIVE_INFINITY));
  return 0;
}

function liveSymbols(): SymbolTable | null {
  try {
    return readSymbolFile("/proc/kallsyms");
  } catch {
    return null; // the inventory still works by name without it
  }
}

function runInventory(args: string[], o: Output): number {
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" }, version: { type: "boolean" } } });
  if (values.help) {
    o.out.push(HELP);
    return 0;
  }
  if (values.version) {
    o.out.push(`patchsafe ${VERSION}\n`);
    return 0;
  }
  // /proc/kallsyms is read while the capture's helper process starts.
  const { report, first: symbols } = captureHostAfter(liveSymbols);
  return inventoryOf(report.capture, symbols, values.json === true, process.stdout.isTTY === true, o);
}

/** `30s`, `2m`, `500ms`, or plain seconds. */
function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (m === null) usage(`${flag} ${JSON.stringify(text)}: expected a duration such as 60s, 2m or 500ms`);
  const n = Number(m![1]);
  return m![2] === "ms" ? n : m![2] === "m" ? n * 60_000 : n * 1000;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * `wait`: for patch pipelines. Re-captures the live host until the check is safe (exit 0) or the
 * time runs out (the last status, 1 or 3, with the last report). Progress goes to stderr.
 */
function runWait(args: string[], o: Output): number {
  let timeout = 60_000;
  let interval = 2_000;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (name === "--timeout" || name === "--interval") {
      const v = eq > 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined) usage(`${name} needs a duration`);
      if (name === "--timeout") timeout = parseDuration(v, name);
      else interval = parseDuration(v, name);
    } else rest.push(a);
  }
  if (rest.some((a) => !a.startsWith("-") && !rest[rest.indexOf(a) - 1]?.startsWith("--"))) usage("wait checks the live host: it takes no INPUT");
  const deadline = Date.now() + timeout;
  let round = 0;
  for (;;) {
    round++;
    const attempt = new Output();
    const status = runCheck(rest, attempt);
    if (status === EXIT.safe || status === EXIT.error || Date.now() + interval > deadline) {
      o.out.push(...attempt.out);
      o.err.push(...attempt.err);
      if (status !== EXIT.safe && status !== EXIT.error) o.err.push(`patchsafe: not safe after ${round} capture(s) in ${Math.round(timeout / 1000)} s\n`);
      return status;
    }
    o.err.push(`patchsafe: capture ${round}: ${status === EXIT.blocked ? "blocked" : "undecided"}; retrying in ${interval / 1000} s\n`);
    if (process.stderr.isTTY) {
      process.stderr.write(o.err.join(""));
      o.err.length = 0;
    }
    sleepMs(interval);
  }
}

/**
 * `capture`: one snapshot (src/cli/capture.ts), or with `--every 2s --count 30 -o DIR` a series
 * for prediction: DIR/capture-001.psnap … (each records its real capture time).
 */
function runCaptureSeries(args: string[], o: Output): number {
  let every: number | null = null;
  let count: number | null = null;
  let dir: string | null = null;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--every") every = parseDuration(args[++i] ?? usage("--every needs a duration"), "--every");
    else if (a === "--count") count = Number(args[++i]);
    else if (a === "-o" || a === "--output") {
      dir = args[++i] ?? usage(`${a} needs a path`);
      rest.push("-o", dir);
    } else rest.push(a);
  }
  if (every === null && count === null) return runCapture(rest, o);
  if (every === null || count === null || !Number.isSafeInteger(count) || count < 1 || dir === null) usage("a capture series needs --every DURATION --count N -o DIR");
  mkdirSync(dir!, { recursive: true, mode: 0o700 });
  const base = rest.filter((x, i) => x !== "-o" && rest[i - 1] !== "-o");
  for (let k = 1; k <= count!; k++) {
    const started = Date.now();
    const status = runCapture([...base, "-o", join(dir!, `capture-${String(k).padStart(3, "0")}.psnap`)], o);
    if (status !== 0) return status;
    if (k < count!) sleepMs(Math.max(0, every! - (Date.now() - started)));
  }
  o.err.push(`patchsafe: ${count} captures in ${dir}: check them together with \`patchsafe check ${dir}/capture-*.psnap --func …\`\n`);
  return 0;
}


/** Runs the CLI and returns the exit status with what to print (tests call this in-process). */
/**
 * Runs a command; stdout is returned, or handed to `opts.stdout` as it is produced where a
 * command streams (check --json), and then only the rest is returned.
 */
export function run(argv: string[], opts: { stdout?: (chunk: string) => void } = {}): { status: number; stdout: string; stderr: string } {
  const o = new Output();
  o.stream = opts.stdout;
  let status: number;
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined) status = runInventory([], o);
    else if (cmd === "--help" || cmd === "-h" || cmd === "help") {
      o.out.push(HELP);
      status = 0;
    } else if (cmd === "--version" || cmd === "-V") {
      o.out.push(`patchsafe ${VERSION}\n`);
      status = 0;
    } else if (cmd === "check") status = runCheck(rest, o);
    else if (cmd === "capture") status = runCaptureSeries(rest, o);
    else if (cmd === "convert") status = runConvert(rest, o);
    else if (cmd === "show-patch") status = runShowPatch(rest, o);
    else if (cmd === "fleet") status = runFleet(rest, o);
    else if (cmd === "wait") status = runWait(rest, o);
    else if (cmd === "synth") status = runSynth(rest, o);
    else if (cmd === "inventory" || cmd.startsWith("-")) status = runInventory(cmd === "inventory" ? rest : argv, o);
    else usage(`unknown command ${JSON.stringify(cmd)}`);
  } catch (e) {
    status = EXIT.error;
    // Messages name input files and quote input text: escaped like every other line we print.
    if (e instanceof PatchsafeError) o.err.push(`patchsafe: ${terminalSafe(e.describe())}\n`);
    else if (e instanceof TypeError && "code" in e && String((e as { code: unknown }).code).startsWith("ERR_PARSE_ARGS")) {
      o.err.push(`patchsafe: ${e.message} (patchsafe --help)\n`);
    } else {
      o.err.push(`patchsafe: internal error: ${terminalSafe(e instanceof Error ? e.message : String(e))}\n`);
      if (process.env.PATCHSAFE_DEBUG && e instanceof Error) o.err.push(`${e.stack}\n`);
    }
  }
  return { status, stdout: o.out.join(""), stderr: o.err.join("") };
}

/**
 * Synchronous writes to fd 1 or 2 (a pipe may be non-blocking: EAGAIN waits; EPIPE stops
 * writing). Never through process.stdout / process.stderr: making those streams loads Node's
 * stream modules (~4 ms of every run) for output that is written in one piece anyway.
 */
function fdWriter(fd: 1 | 2): (chunk: string) => void {
  let closed = false;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  return (chunk) => {
    if (closed || chunk === "") return;
    const buf = Buffer.from(chunk, "utf8");
    let off = 0;
    while (off < buf.length) {
      try {
        off += writeSync(fd, buf, off);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "EAGAIN") Atomics.wait(pause, 0, 0, 2);
        else if (code === "EPIPE" || code === "EBADF") {
          // The reader is gone (or there is no fd 1/2): nothing more can be written.
          closed = true;
          return;
        } else throw e;
      }
    }
  };
}

export function main(): void {
  const stdout = fdWriter(1);
  const r = run(process.argv.slice(2), { stdout });
  if (r.stderr) fdWriter(2)(r.stderr);
  stdout(r.stdout);
  process.exitCode = r.status;
}
