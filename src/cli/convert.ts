/**
 * `patchsafe convert INPUT… -o FILE|DIR [--json|--psnap] [--kallsyms FILE] [--redact] [--hash-comms]`:
 * between every readable capture format (/proc text, native JSON capture, JSON snapshot, .psnap)
 * and the snapshot forms. The output format follows -o's extension (.json: JSON, else .psnap)
 * unless --json/--psnap says. Several INPUTs need -o DIR (one output per input, named after it).
 * Throws PatchsafeError for usage and input errors (exit 2).
 */
import { statSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { PatchsafeError } from "../errors.js";
import { FORMAT_NAMES, isFormatName } from "../ingest/detect.js";
import { readSymbolFile } from "../node/io.js";
import { nativeSha256, readAnyCapture, writePrivateFileFrom } from "../node/snapshotFile.js";
import { snapshotJsonWriter } from "../snapshot/json.js";
import { encodeSnapshot } from "../snapshot/psnap.js";
import type { SymbolTable } from "../symbols/table.js";
import { humanSize } from "./capture.js";

export const CONVERT_HELP = `Usage: patchsafe convert INPUT… -o FILE|DIR [--json|--psnap] [--kallsyms FILE] [--redact] [--hash-comms]
  Convert captures (/proc stack text, patchsafe JSON capture, JSON snapshot, .psnap) to a
  snapshot (.psnap, or the JSON form with --json or an -o ending in .json). Output mode 0600.
  --kallsyms FILE   attach this symbol table (replaces a snapshot's own)
  --format F        force the input format of text inputs (auto, proc, json, dmesg, …)
  --redact          drop every absolute address; --hash-comms: hash user task names
`;

function usage(msg: string): never {
  throw new PatchsafeError("E_USAGE", `${msg} (patchsafe convert --help)`);
}

export function runConvert(args: string[], o: { out: string[]; err: string[] }): number {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
      psnap: { type: "boolean" },
      kallsyms: { type: "string" },
      format: { type: "string" },
      redact: { type: "boolean" },
      "hash-comms": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    o.out.push(CONVERT_HELP);
    return 0;
  }
  if (positionals.length === 0) usage("convert needs at least one INPUT");
  if (values.output === undefined) usage("convert needs -o FILE (or -o DIR for several inputs)");
  if (values.json && values.psnap) usage("--json and --psnap exclude each other");
  const format = values.format ?? "auto";
  if (!isFormatName(format)) usage(`--format ${values.format}: expected one of ${FORMAT_NAMES.join(", ")}`);
  let isDir = false;
  try {
    isDir = statSync(values.output).isDirectory();
  } catch {
    isDir = false;
  }
  if (positionals.length > 1 && !isDir) usage("several INPUTs need -o DIR (an existing directory): one snapshot per input");
  const extra: SymbolTable | null = values.kallsyms === undefined ? null : readSymbolFile(values.kallsyms);
  const inputs = [...positionals, ...(values.kallsyms === undefined ? [] : [values.kallsyms])];
  for (const input of positionals) {
    const json = values.json === true || (!values.psnap && !isDir && /\.json$/i.test(values.output));
    const out = isDir ? join(values.output, `${basename(input === "-" ? "stdin" : input).replace(/\.(psnap|json|txt)$/i, "")}.${json ? "json" : "psnap"}`) : values.output;
    const any = readAnyCapture(input, format);
    const symbols = extra ?? any.symbols;
    const snap = any.snapshot;
    const opts = {
      redact: values.redact === true,
      redacted: snap?.header.redacted === true,
      hashComms: values["hash-comms"] === true,
      commsHashed: snap?.header.commsHashed === true,
      sectionRows: extra === null ? (snap?.sectionRows ?? null) : null,
    };
    // Made (or, for the JSON form, checked: it is written as it is made, a million tasks being
    // ~400 MB of it) before the file is touched.
    const data = json ? snapshotJsonWriter(any.capture, symbols, opts) : encodeSnapshot(any.capture, symbols, { ...opts, sha256: nativeSha256 });
    const size = writePrivateFileFrom(out, inputs, (write) => (typeof data === "function" ? data(write) : write(data)));
    o.err.push(
      `patchsafe: ${input} (${any.detected}, ${any.capture.tasks.length} task(s)) → ${out} (${json ? "JSON" : "psnap"}, ${humanSize(size)}, mode 0600${symbols === null ? ", no symbol table: a check will match by name only" : `, ${symbols.count} symbols`}${opts.redact || opts.redacted ? ", redacted" : ""})\n`,
    );
  }
  return 0;
}
