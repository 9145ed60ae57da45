/**
 * `patchsafe capture [-o FILE] [--json] [--redact] [--hash-comms] [--kallsyms FILE] [--timeout MS]`:
 * snapshot the live host (as root): every thread's stack and facts, the enabled livepatches,
 * the modules, the host facts and the symbol table, in one .psnap (or JSON) file written 0600.
 * Prints what it captured on stderr. Throws PatchsafeError for usage and I/O errors (exit 2).
 */
import { parseArgs } from "node:util";
import { PatchsafeError } from "../errors.js";
import { type Capture, framesInTasks } from "../model.js";
import { captureHostAfter } from "../node/capture.js";
import { readSymbolFile } from "../node/io.js";
import { nativeSha256, writePrivateFileFrom } from "../node/snapshotFile.js";
import { snapshotJsonWriter } from "../snapshot/json.js";
import { encodeSnapshot } from "../snapshot/psnap.js";
import type { SymbolTable } from "../symbols/table.js";

export const CAPTURE_HELP = `Usage: patchsafe capture [-o FILE] [--json] [--redact] [--hash-comms] [--kallsyms FILE] [--timeout MS]
  Snapshot the live host (run as root): tasks, stacks, enabled livepatches, modules, host facts
  and the symbol table, so 'patchsafe check FILE' works later, anywhere.
  -o FILE          output (default patchsafe-HOST-TIME.psnap, or .json with --json); mode 0600
  --json           write the JSON form (schema/snapshot.schema.json) instead of .psnap
  --redact         drop every absolute address (frames, symbol table): sizes and order stay
  --hash-comms     replace user tasks' names by salted hashes (kernel threads keep theirs)
  --kallsyms FILE  symbol table to include (default /proc/kallsyms)
  --no-symbols     include no symbol table
  --timeout MS     deadline per /proc file read (default 2000)
`;

function usage(msg: string): never {
  throw new PatchsafeError("E_USAGE", `${msg} (patchsafe capture --help)`);
}

/** Human-readable byte count. */
export function humanSize(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/** Default output name: patchsafe-HOST-YYYYMMDDTHHMMSSZ.psnap (host name reduced to [A-Za-z0-9._-]). */
export function defaultSnapshotName(cap: Capture, json: boolean): string {
  const host = (cap.host.hostname ?? "host").replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 64) || "host";
  const t = (cap.host.capturedAt ?? new Date().toISOString()).replace(/[-:]/g, "").replace(/\.\d+/, "");
  return `patchsafe-${host}-${t}.${json ? "json" : "psnap"}`;
}

export function runCapture(args: string[], o: { out: string[]; err: string[] }): number {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
      redact: { type: "boolean" },
      "hash-comms": { type: "boolean" },
      kallsyms: { type: "string" },
      "no-symbols": { type: "boolean" },
      timeout: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    o.out.push(CAPTURE_HELP);
    return 0;
  }
  if (positionals.length > 0) usage(`capture takes no INPUT (it reads the live host): ${JSON.stringify(positionals[0])}`);
  const timeout = values.timeout === undefined ? 2000 : Number(values.timeout);
  if (!Number.isSafeInteger(timeout) || timeout < 1) usage("--timeout must be a positive number of milliseconds");
  if (values["no-symbols"] && values.kallsyms !== undefined) usage("--kallsyms and --no-symbols exclude each other");

  // The symbols are read first, while the capture's helper process starts.
  const readSymbols = (): { symbols: SymbolTable | null; symbolNote: string; error: PatchsafeError | null } => {
    if (values["no-symbols"]) return { symbols: null, symbolNote: "no symbol table (--no-symbols): a later check matches by name only", error: null };
    const file = values.kallsyms ?? "/proc/kallsyms";
    try {
      const symbols = readSymbolFile(file);
      return { symbols, symbolNote: `${symbols.count} symbols from ${file}${values.redact ? " (addresses dropped)" : ""}`, error: null };
    } catch (e) {
      if (!(e instanceof PatchsafeError)) throw e;
      if (values.kallsyms !== undefined) throw e;
      return { symbols: null, symbolNote: `no symbol table: ${e.describe()}`, error: e };
    }
  };
  const { report, first } = captureHostAfter(readSymbols, { readTimeoutMs: timeout });
  const cap = report.capture;
  const { symbols, symbolNote } = first;
  if (first.error !== null) cap.warnings.push({ code: "no-kallsyms", message: `the snapshot holds no symbol table: ${first.error.message}` });
  const opts = { redact: values.redact === true, hashComms: values["hash-comms"] === true };
  const out = values.output ?? defaultSnapshotName(cap, values.json === true);
  const inputs = values.kallsyms === undefined ? [] : [values.kallsyms];
  // Made (or checked, for the JSON form written as it is made) before the file is touched.
  const data = values.json ? snapshotJsonWriter(cap, symbols, opts) : encodeSnapshot(cap, symbols, { ...opts, sha256: nativeSha256 });
  const size = writePrivateFileFrom(out, inputs, (write) => (typeof data === "function" ? data(write) : write(data)));

  const frames = framesInTasks(cap);
  const lines = [`patchsafe: captured ${cap.tasks.length} thread(s), ${frames} frame(s) on ${cap.host.hostname ?? "this host"} (${cap.host.release ?? "unknown kernel"})`];
  for (const [code, n] of [...report.unreadable].sort()) {
    const why =
      code === "EPERM" || code === "EACCES"
        ? "permission denied (on some hosts the threads of pid 1 are unreadable even to root)"
        : code === "ETIMEDOUT"
          ? `no answer within ${timeout} ms (a task stuck in exec holds the lock the read needs)`
          : code;
    lines.push(`  ${n} thread stack(s) unreadable: ${why}`);
  }
  const unreadableTids = cap.tasks.filter((t) => t.stackStatus === "unreadable").slice(0, 10);
  if (unreadableTids.length > 0) lines.push(`    e.g. ${unreadableTids.map((t) => `${t.pid}/${t.tid} (${t.errno})`).join(", ")}`);
  if (report.vanished > 0) lines.push(`  ${report.vanished} thread(s) exited during the walk`);
  if (cap.excluded.length > 0) lines.push(`  ${cap.excluded.length} thread(s) of patchsafe itself left out`);
  lines.push(`  complete: ${cap.complete}${cap.completeness.length > 0 ? ` (${cap.completeness.map((r) => r.code).join(", ")})` : ""}`);
  lines.push(`  applied patches (livepatch, kpatch.ko): ${cap.livepatches === null ? "not readable" : cap.livepatches.length === 0 ? "none enabled" : cap.livepatches.map((p) => `${p.name}${p.transition ? " (in transition)" : ""}`).join(", ")}`);
  lines.push(`  modules: ${cap.modules === null ? "not readable" : cap.modules.length}`);
  lines.push(`  symbols: ${symbolNote}`);
  if (report.reader === "direct") lines.push("  warning: files were read without a deadline (no helper process)");
  if (opts.hashComms) lines.push("  user task names hashed");
  lines.push(`wrote ${out}: ${humanSize(size)}${values.json ? " (JSON)" : ""}, mode 0600 (a snapshot reveals what runs on the host${opts.redact ? "" : " and its kernel addresses; --redact drops them"})`);
  o.err.push(`${lines.join("\n")}\n`);
  return 0;
}
