/**
 * `patchsafe synth`: large, realistic captures for benchmarks and pipeline tests, made by
 * resampling real stacks (this host's, or a given capture's) with a chosen share of tasks in
 * chosen functions. Deterministic for a seed. It reports the share of distinct frame lines,
 * since resampling a small host flatters any cache.
 *
 *   patchsafe synth --tasks N [--seed S] [--from CAPTURE] [--as proc|sysrq|psnap]
 *                   [--shape grep|tail|header] [--in [OBJ:]FUNC:SHARE]… [--kallsyms FILE] -o FILE
 *
 * The dump is written in ~1 MiB pieces (a 1M-task dump is a few hundred MB), mode 0600, never
 * through a symlink.
 */
import { closeSync, constants as fsc, lstatSync, openSync, writeSync } from "node:fs";
import { nativeSha256, writePrivateFile } from "../node/snapshotFile.js";
import { parseArgs } from "node:util";
import { PatchsafeError } from "../errors.js";
import { generateProcDumpTo, type GenerateStats, type ShareSpec } from "../generate/procDump.js";
import { encodeLatin1 } from "../ingest/bytes.js";
import { ProcTextParser } from "../ingest/procText.js";
import { VMLINUX, type Capture } from "../model.js";
import { readCaptureFile, readSymbolFile } from "../node/io.js";
import { captureLive } from "../node/capture.js";
import { encodeSnapshot } from "../snapshot/psnap.js";
import type { SymbolTable } from "../symbols/table.js";

export const SYNTH_HELP = `patchsafe synth --tasks N [options] -o FILE
  generate a capture by resampling real stacks (deterministic for a seed)

  --tasks N                  number of tasks (threads)
  --seed S                   PRNG seed (default 1)
  --from CAPTURE             resample this capture's stacks (default: capture this host)
  --as proc|sysrq|psnap      output: /proc stack text (default), the kernel log of
                             'echo t > /proc/sysrq-trigger' (x86_64 6.16), or a .psnap
  --shape grep|tail|header   /proc text shape: grep -H (default), tail -n +1, or
                             '== /proc/PID/task/TID comm' headers (carries comms)
  --in [OBJ:]FUNC:SHARE      put SHARE (0.2 or 20%) of the tasks in FUNC (repeatable)
  --kallsyms FILE            symbol table: sizes for inserted frames; stored in a psnap
  -o FILE                    output file (mode 0600)
`;

function usage(msg: string): never {
  throw new PatchsafeError("E_USAGE", `${msg} (patchsafe synth --help)`);
}

/** `[OBJ:]FUNC:SHARE` with SHARE a fraction or a percentage. */
export function parseShareArg(arg: string): ShareSpec {
  const colon = arg.lastIndexOf(":");
  if (colon <= 0) usage(`--in ${JSON.stringify(arg)}: expected [OBJECT:]FUNC:SHARE, e.g. worker_thread:0.2 or worker_thread:20%`);
  const func = arg.slice(0, colon);
  const shareText = arg.slice(colon + 1);
  const pct = shareText.endsWith("%");
  const share = Number(pct ? shareText.slice(0, -1) : shareText) / (pct ? 100 : 1);
  if (shareText === "" || shareText === "%" || !Number.isFinite(share) || share < 0 || share > 1) {
    usage(`--in ${JSON.stringify(arg)}: the share must be in [0, 1] or [0%, 100%]`);
  }
  const m = /^(?:([A-Za-z0-9_.-]+):)?([A-Za-z0-9_.$]+)$/.exec(func);
  if (m === null) usage(`--in ${JSON.stringify(arg)}: expected [OBJECT:]FUNC:SHARE`);
  return { object: m[1] ?? VMLINUX, name: m[2], share };
}

function openPrivate(path: string): number {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink() || !st.isFile()) throw new PatchsafeError("E_IO", "refusing to write through a symlink or over a non-regular file", { file: path });
  } catch (e) {
    if (e instanceof PatchsafeError) throw e;
  }
  try {
    return openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | (fsc.O_NOFOLLOW ?? 0), 0o600);
  } catch (e) {
    throw new PatchsafeError("E_IO", `cannot write: ${e instanceof Error ? e.message : String(e)}`, { file: path });
  }
}

function writeAll(fd: number, data: string | Uint8Array): void {
  if (typeof data === "string") {
    writeSync(fd, data, null, "latin1");
    return;
  }
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

/** Runs `synth` (args after the command word); returns the exit status. */
export function runSynth(args: string[], o: { out: string[]; err: string[] }): number {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      tasks: { type: "string" },
      seed: { type: "string" },
      from: { type: "string" },
      as: { type: "string" },
      shape: { type: "string" },
      in: { type: "string", multiple: true },
      kallsyms: { type: "string" },
      output: { type: "string", short: "o" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    o.out.push(SYNTH_HELP);
    return 0;
  }
  if (positionals.length > 0) usage(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const tasks = Number(values.tasks);
  if (values.tasks === undefined || !/^\d+$/.test(values.tasks) || !Number.isSafeInteger(tasks) || tasks < 1) usage("synth needs --tasks N (a positive integer)");
  const seed = values.seed === undefined ? 1 : Number(values.seed);
  if (values.seed !== undefined && !/^-?\d+$/.test(values.seed)) usage("--seed must be an integer");
  const as = values.as ?? "proc";
  if (as !== "proc" && as !== "sysrq" && as !== "psnap") usage(`--as ${as}: expected proc, sysrq or psnap`);
  if (as === "sysrq" && values.shape !== undefined) usage("--shape is a /proc text shape: it does not apply to --as sysrq");
  const textShape = values.shape ?? "grep";
  if (textShape !== "grep" && textShape !== "tail" && textShape !== "header") usage(`--shape ${textShape}: expected grep, tail or header`);
  const shape = as === "sysrq" ? "sysrq" : textShape;
  if (values.output === undefined) usage("synth needs -o FILE");
  const specs = (values.in ?? []).map(parseShareArg);
  if (specs.reduce((n, s) => n + s.share, 0) > 1 + 1e-9) usage("the --in shares add up to more than 1");

  const symbols: SymbolTable | null = values.kallsyms === undefined ? null : readSymbolFile(values.kallsyms);
  const source: Capture = values.from === undefined ? captureLive() : readCaptureFile(values.from).capture;
  const opts = { tasks, seed, shape, in: specs, symbols } as const;

  let stats: GenerateStats;
  let bytes = 0;
  // Refuse symlinks, non-regular files and the --from input itself before truncating anything.
  writePrivateFile(values.output, "", values.from === undefined ? [] : [values.from]);
  const fd = openPrivate(values.output);
  try {
    if (as === "proc" || as === "sysrq") {
      stats = generate(source, opts, (piece) => {
        writeAll(fd, piece);
        bytes += piece.length;
      });
    } else {
      // psnap: parse the generated text as patchsafe would, then encode the capture.
      const parser = new ProcTextParser(values.output);
      stats = generate(source, opts, (piece) => parser.push(encodeLatin1(piece)));
      const cap = parser.finish();
      const snap = encodeSnapshot(cap, symbols, { sha256: nativeSha256 });
      writeAll(fd, snap);
      bytes = snap.length;
    }
  } finally {
    closeSync(fd);
  }
  const shares = specs.map((s, i) => `${s.name} ${(stats.inShare[i] * 100).toFixed(2)}% (asked ${(s.share * 100).toFixed(2)}%)`);
  o.err.push(
    `patchsafe: wrote ${tasks} tasks, ${stats.frames} frames (${(bytes / 1048576).toFixed(1)} MiB, ${as}) to ${values.output}; ` +
      `${(stats.distinctFrameShare * 100).toFixed(2)}% of frame lines are distinct${shares.length > 0 ? `; in: ${shares.join(", ")}` : ""}\n`,
  );
  return 0;
}

function generate(source: Capture, opts: Parameters<typeof generateProcDumpTo>[1], write: (piece: string) => void): GenerateStats {
  try {
    return generateProcDumpTo(source, opts, write);
  } catch (e) {
    if (e instanceof RangeError || (e instanceof Error && e.message.startsWith("the source capture"))) throw new PatchsafeError("E_INPUT", e.message);
    throw e;
  }
}
