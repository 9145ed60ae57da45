/** File input for the CLI: streamed in 1 MiB chunks into the byte-level parsers. */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { PatchsafeError } from "../errors.js";
import { looksLikeNativeJson, parseNativeJson } from "../ingest/nativeJson.js";
import { ProcTextParser } from "../ingest/procText.js";
import type { Capture } from "../model.js";
import { parseSymbolTable, type SymbolTable } from "../symbols/table.js";

const CHUNK = 1 << 20;

function ioError(file: string, e: unknown): PatchsafeError {
  const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "";
  const what = code === "ENOENT" ? "no such file" : code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EISDIR" ? "is a directory" : e instanceof Error ? e.message : String(e);
  return new PatchsafeError("E_IO", `cannot read: ${what}`, { file });
}

/** Calls onChunk with successive chunks of the file ('-' = stdin). The chunk is reused. */
export function streamFile(file: string, onChunk: (chunk: Uint8Array) => void): void {
  let fd: number;
  try {
    fd = file === "-" ? 0 : openSync(file, "r");
  } catch (e) {
    throw ioError(file, e);
  }
  const buf = new Uint8Array(CHUNK);
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, CHUNK, null);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "EAGAIN") continue;
        if (code === "EOF") break;
        throw ioError(file, e);
      }
      if (n === 0) break;
      onChunk(buf.subarray(0, n));
    }
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}

export type InputFormat = "auto" | "proc" | "json";

/**
 * Reads one capture file, detecting its format unless forced: a document whose first
 * non-blank byte is `{` is a native JSON capture; anything else is /proc stack text.
 */
export function readCaptureFile(file: string, format: InputFormat = "auto"): { capture: Capture; detected: string } {
  let mode: "undecided" | "proc" | "json" = format === "auto" ? "undecided" : format;
  const jsonChunks: Uint8Array[] = [];
  const parser = new ProcTextParser(file);
  streamFile(file, (chunk) => {
    if (mode === "undecided") {
      let i = 0;
      while (i < chunk.length && (chunk[i] === 0x20 || chunk[i] === 0x0a || chunk[i] === 0x0d || chunk[i] === 0x09)) i++;
      if (i === chunk.length) {
        parser.push(chunk);
        jsonChunks.push(chunk.slice());
        return;
      }
      mode = chunk[i] === 0x7b ? "json" : "proc";
    }
    if (mode === "json") jsonChunks.push(chunk.slice());
    else parser.push(chunk);
  });
  if (mode === "json") {
    const total = jsonChunks.reduce((n, c) => n + c.length, 0);
    const all = new Uint8Array(total);
    let o = 0;
    for (const c of jsonChunks) {
      all.set(c, o);
      o += c.length;
    }
    const text = new TextDecoder("utf-8").decode(all);
    if (format === "auto" && !looksLikeNativeJson(text.slice(0, 4096))) {
      throw new PatchsafeError("E_INPUT", 'a JSON document that is not a patchsafe capture (no "format": "patchsafe-capture")', { file, line: 1 });
    }
    return { capture: parseNativeJson(text, file), detected: "patchsafe-capture" };
  }
  const capture = parser.finish();
  if (capture.tasks.length === 0) {
    throw new PatchsafeError("E_INPUT", "no task stack found (expected /proc stack lines such as `[<0>] schedule+0x3d/0xa0`, or a patchsafe capture)", { file });
  }
  return { capture, detected: "proc-text" };
}

export function readSymbolFile(file: string): SymbolTable {
  let text: string;
  try {
    text = readFileSync(file, "latin1");
  } catch (e) {
    throw ioError(file, e);
  }
  const base = file.split("/").pop() ?? file;
  return parseSymbolTable(text, { file, source: /system\.map/i.test(base) ? "system.map" : "kallsyms" });
}

export function readTextFile(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw ioError(file, e);
  }
}
