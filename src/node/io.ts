/** File input for the CLI: streamed in 1 MiB chunks into the byte-level parsers. */
import { type BigIntStats, closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { PatchsafeError } from "../errors.js";
import { type CaptureParser, createCaptureParser, type FormatName } from "../ingest/detect.js";
import type { Capture } from "../model.js";
import { parseKallsymsBytes } from "../symbols/kallsymsFast.js";
import type { SymbolTable } from "../symbols/table.js";
import { cachedSymbolTable, type FileIdentity, symbolTableByIdentity } from "./symbolCache.js";
import { loadProcTokenizer, loadTokenizerModuleSync } from "./wasm.js";

const CHUNK = 1 << 20;

/** The size of a regular file, else undefined (stdin, a pipe, an unreadable path: the read reports that). */
function regularFileSize(file: string): number | undefined {
  if (file === "-") return undefined;
  try {
    const st = statSync(file);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

function ioError(file: string, e: unknown): PatchsafeError {
  const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "";
  const what = code === "ENOENT" ? "no such file" : code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EISDIR" ? "is a directory" : e instanceof Error ? e.message : String(e);
  return new PatchsafeError("E_IO", `cannot read: ${what}`, { file });
}

/** Calls onChunk with successive chunks of the file ('-' = stdin). The chunk is reused. */
export function streamFile(file: string, onChunk: (chunk: Uint8Array) => void): void {
  streamInto(file, null, onChunk);
}

/**
 * Reads the file ('-' = stdin) into `parser`: straight into the parser's own buffer where it
 * offers one (CaptureParser.readFrom: the /proc tokenizer's wasm memory, which saves a copy of
 * every byte and reads into memory the tokenizer then finds in cache), else in CHUNK pieces
 * through onChunk.
 */
function streamInto(file: string, parser: CaptureParser | null, onChunk: (chunk: Uint8Array) => void): void {
  let fd: number;
  try {
    fd = file === "-" ? 0 : openSync(file, "r");
  } catch (e) {
    throw ioError(file, e);
  }
  /** readSync into dst; 0 at the end of input. */
  const readInto = (dst: Uint8Array): number => {
    for (;;) {
      try {
        return readSync(fd, dst, 0, dst.length, null);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "EAGAIN") continue;
        if (code === "EOF") return 0;
        throw ioError(file, e);
      }
    }
  };
  let buf: Uint8Array | null = null;
  try {
    for (;;) {
      const direct = parser?.readFrom?.(readInto) ?? null;
      if (direct !== null) {
        if (direct === 0) break;
        continue;
      }
      buf ??= new Uint8Array(CHUNK);
      const n = readInto(buf);
      if (n === 0) break;
      onChunk(buf.subarray(0, n));
    }
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}

export type InputFormat = FormatName;

/**
 * Reads every capture of a file ('-' = stdin), streamed in 1 MiB chunks: the format is detected
 * from the first 64 KiB unless forced (FORMAT_NAMES; `proc` is /proc stack text, `json` a native
 * capture, `dmesg` any kernel-log task dump). A kernel log with several dumps gives one capture
 * per section; `detected` names each capture's format, in order.
 */
export function readCaptureFiles(file: string, format: InputFormat = "auto"): { captures: Capture[]; detected: string[] } {
  const parser = createCaptureParser(file, format, { procTokenizer: (name) => loadProcTokenizer("release", name), sizeHint: regularFileSize(file) });
  streamInto(file, parser, (chunk) => parser.push(chunk));
  const captures = parser.finish();
  return { captures, detected: captures.map((c) => c.source.format) };
}

/**
 * Reads a file that holds one capture (see readCaptureFiles); several dump sections are an error
 * naming them, so callers that handle only one capture never drop one silently.
 */
export function readCaptureFile(file: string, format: InputFormat = "auto"): { capture: Capture; detected: string } {
  const { captures, detected } = readCaptureFiles(file, format);
  if (captures.length > 1) {
    const where = captures.map((c) => `${c.source.format} at line ${c.source.firstLine ?? "?"}`).join(", ");
    throw new PatchsafeError("E_UNSUPPORTED", `the file holds ${captures.length} dumps (${where}); checking several captures of one file is not supported here yet`, { file, line: captures[1].source.firstLine ?? undefined });
  }
  return { capture: captures[0], detected: detected[0] };
}

export interface ReadSymbolsOptions {
  /**
   * Use the on-disk cache of built tables (src/node/symbolCache.ts, keyed by the file's content);
   * default true. PATCHSAFE_NO_CACHE=1 and `check --no-cache` turn it off too.
   */
  cache?: boolean;
}

/**
 * A kallsyms or System.map file as a symbol table. A regular file is looked up in the table cache
 * by its content first; /proc/kallsyms (size 0: the kernel makes it on each read, which costs
 * more than parsing it) and pipes are always parsed.
 */
export function readSymbolFile(file: string, opts: ReadSymbolsOptions = {}): SymbolTable {
  let bytes: Uint8Array;
  let cacheable = false;
  let identity: FileIdentity | null = null;
  let fd: number | null = null;
  const base = file.split("/").pop() ?? file;
  const source = /system\.map/i.test(base) ? "system.map" : "kallsyms";
  try {
    fd = openSync(file, "r");
    const readAt = Date.now();
    const st = fstatSync(fd, { bigint: true });
    cacheable = st.isFile() && st.size > 0n;
    // A file the symbol cache knows by its identity is not read at all (symbolTableByIdentity).
    if (cacheable && opts.cache !== false) {
      const known = symbolTableByIdentity({ dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, readAt }, source);
      if (known !== null) return known;
    }
    bytes = readFileSync(fd);
    // The file's identity for the symbol cache, when nothing changed it while it was read.
    const after = fstatSync(fd, { bigint: true });
    if (cacheable && BigInt(bytes.length) === st.size && sameFile(st, after)) identity = { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, readAt };
  } catch (e) {
    throw ioError(file, e);
  } finally {
    if (fd !== null) closeSync(fd);
  }
  // kallsyms through the wasm parser (same table; anything unusual goes to parseSymbolTable).
  const parse = (): SymbolTable => parseKallsymsBytes(loadTokenizerModuleSync(), bytes, { file, source });
  return cacheable && opts.cache !== false ? cachedSymbolTable(bytes, source, parse, undefined, identity) : parse();
}

function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

export function readTextFile(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw ioError(file, e);
  }
}

export function readBinaryFile(file: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    throw ioError(file, e);
  }
}
