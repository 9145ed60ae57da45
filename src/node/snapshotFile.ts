/**
 * Snapshot files in Node: read a .psnap or JSON snapshot whole (size checked before reading),
 * read any capture input for `convert`, and write output files the way SPEC §8 asks (mode 0600,
 * never through a symlink, never over an input, no temporary files).
 */
import { closeSync, constants as fsc, fchmodSync, fstatSync, lstatSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { crc32 as zlibCrc32 } from "node:zlib";
import { PatchsafeError } from "../errors.js";
import { nodeCrypto } from "./lazyBuiltins.js";
import { columnKernelSync } from "./wasm.js";
import type { Capture } from "../model.js";
import { looksLikeSnapshotJson, parseSnapshotJsonBytes } from "../snapshot/json.js";
import { decodeSnapshot, type DecodedSnapshot, isSnapshot, readSnapshotPrefix, SnapshotError, SymbolSectionCache } from "../snapshot/psnap.js";
import type { SymbolTable } from "../symbols/table.js";
import { readCaptureFile, type InputFormat } from "./io.js";

/** Largest snapshot file read: prefix + 1 MiB header + 2 GiB body. */
const MAX_SNAPSHOT_FILE = 32 + (1 << 20) + 0x7fffffff;

function ioError(file: string, e: unknown, verb = "read"): PatchsafeError {
  const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "";
  const what =
    code === "ENOENT" ? "no such file" : code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EISDIR" ? "is a directory" : code === "ELOOP" ? "is a symlink" : e instanceof Error ? e.message : String(e);
  return new PatchsafeError("E_IO", `cannot ${verb}: ${what}`, { file });
}

/**
 * A buffer one thread reuses for file after file (a fleet worker): the bytes of the previous file
 * are overwritten, so only readers whose results never point into the bytes may use it (the
 * snapshot decoders copy everything they keep). Files above `keep` bytes get a buffer of their own.
 */
export class ReadBuffer {
  buf: Uint8Array | null = null;
  constructor(readonly keep = 64 << 20) {}
  take(size: number): Uint8Array {
    if (size > this.keep) return new Uint8Array(size);
    if (this.buf === null || this.buf.length < size) this.buf = new Uint8Array(Math.max(size, Math.min(this.keep, size * 1.25)));
    return this.buf.subarray(0, size);
  }
}

/**
 * Runs `read` on an open regular file no larger than `max` (checked before anything is
 * allocated), closing it afterwards; I/O errors become E_IO naming the file.
 */
function withRegularFile<T>(file: string, max: number, read: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw ioError(file, e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new PatchsafeError("E_IO", "cannot read: not a regular file", { file });
    if (st.size > max) throw new PatchsafeError(SnapshotError.TOO_LARGE, `${st.size} bytes: larger than any snapshot (${max})`, { file });
    return read(fd, st.size);
  } catch (e) {
    if (e instanceof PatchsafeError) throw e;
    throw ioError(file, e);
  } finally {
    closeSync(fd);
  }
}

/** Reads a whole regular file, refusing one larger than `max` before allocating. */
export function readWholeFile(file: string, max = MAX_SNAPSHOT_FILE, into: ReadBuffer | null = null): Uint8Array {
  return withRegularFile(file, max, (fd, size) => {
    const buf = into === null ? new Uint8Array(size) : into.take(size);
    const got = readFully(fd, buf, 0, size);
    return got === buf.length ? buf : buf.subarray(0, got);
  });
}

/** True when the bytes are a .psnap or the start of a JSON snapshot. */
export function sniffSnapshot(head: Uint8Array): "psnap" | "json" | null {
  if (isSnapshot(head)) return "psnap";
  const text = new TextDecoder("utf-8").decode(head.subarray(0, 4096));
  return looksLikeSnapshotJson(text) ? "json" : null;
}

/** zlib's CRC-32 (native, ~10× the pure-TS one); the same checksum. */
const nativeCrc32 = typeof zlibCrc32 === "function" ? (b: Uint8Array): number => zlibCrc32(b) >>> 0 : undefined;

/** node:crypto's SHA-256 (native; the same digest as src/sha256.ts). */
export function nativeSha256(bytes: Uint8Array): Uint8Array {
  const d = nodeCrypto().createHash("sha256").update(bytes).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.length);
}

/** Byte equality through Buffer.equals (memcmp). */
function nativeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** A cache of decoded symbol sections for many snapshots read in one thread (fleet workers). */
export function newSymbolSectionCache(capacity = 4): SymbolSectionCache {
  return new SymbolSectionCache(capacity, nativeEqual);
}

/**
 * decodeSnapshot with Node's native CRC-32 (what every Node reader of .psnap bytes uses).
 * `keepBytes`: the caller never changes `bytes` afterwards, so the symbol names may stay a view
 * into them (DecodeOptions.keepBytes; readSnapshotFile passes it for a file in its own buffer).
 */
export function decodeSnapshotBytes(bytes: Uint8Array, file = "<snapshot>", cache: SymbolSectionCache | null = null, keepBytes = false, symbolsOmitted = false): DecodedSnapshot {
  return decodeSnapshot(bytes, file, { crc32: nativeCrc32, sha256: nativeSha256, cache, keepBytes, symbolsOmitted, columnKernel: columnKernelSync() });
}

/** What a reader with a section cache reads first: enough for the prefix and a typical header. */
const HEAD_BYTES = 64 << 10;

/**
 * Reads a .psnap with a section cache: its first bytes, then, when the header (format 1.3)
 * names a symbol section by a SHA-256 the cache has checked before, only the bytes before that
 * section (a 1000-task host of a fleet: ~20 KB instead of ~1.6 MB). null when the whole file
 * must be read (another format, a new section, a header beyond HEAD_BYTES, a size that differs
 * from the one the prefix declares: the full decode then names any damage).
 */
function readWithoutKnownSection(fd: number, size: number, file: string, cache: SymbolSectionCache, buffer: ReadBuffer | null): Uint8Array | null {
  const buf = buffer === null ? new Uint8Array(size) : buffer.take(size);
  const head = readFully(fd, buf, 0, Math.min(size, HEAD_BYTES));
  if (head < Math.min(size, HEAD_BYTES)) return null;
  const place = readSnapshotPrefix(buf.subarray(0, head), file, nativeCrc32);
  if (place === null || place.total !== size || !cache.holds(place.sha256, place.length)) return readRest(fd, buf, head, size);
  if (place.start > head && readFully(fd, buf, head, place.start) < place.start) return null;
  return buf.subarray(0, place.start);
}

/** Reads bytes [from, to) of the file into buf at the same offsets; returns how far it got. */
function readFully(fd: number, buf: Uint8Array, from: number, to: number): number {
  let off = from;
  while (off < to) {
    const n = readSync(fd, buf, off, to - off, off);
    if (n === 0) break;
    off += n;
  }
  return off;
}

/** The rest of a file whose first `head` bytes are in buf: the whole file, or null when it ends early. */
function readRest(fd: number, buf: Uint8Array, head: number, size: number): Uint8Array | null {
  return readFully(fd, buf, head, size) === size ? buf : null;
}

export interface ReadSnapshotOptions {
  /** Reuse symbol sections decoded before when their bytes are identical. */
  cache?: SymbolSectionCache | null;
  /** Read into this thread's reusable buffer (the decoded model never points into it). */
  buffer?: ReadBuffer | null;
}

/**
 * Reads a snapshot file, binary or JSON. Throws PatchsafeError: E_IO, an E_SNAPSHOT_* code, or
 * E_INPUT for a JSON snapshot that does not parse. Never returns a partial model.
 */
export function readSnapshotFile(file: string, opts: ReadSnapshotOptions = {}): DecodedSnapshot {
  const buffer = opts.buffer ?? null;
  const cache = opts.cache ?? null;
  const part = cache !== null ? readPart(file, cache, buffer) : null;
  if (part?.omitted === true) return decodeSnapshotBytes(part.bytes, file, cache, buffer === null, true);
  const bytes = part?.bytes ?? readWholeFile(file, MAX_SNAPSHOT_FILE, buffer);
  // A file in a buffer of its own is never changed again: the decoded names may point into it.
  if (isSnapshot(bytes)) return decodeSnapshotBytes(bytes, file, cache, buffer === null);
  const kind = sniffSnapshot(bytes);
  // patchsafe's own layout a line at a time; another layout whole (as one string: at most 512 MiB).
  if (kind === "json") return parseSnapshotJsonBytes(bytes, file);
  throw new PatchsafeError(SnapshotError.MAGIC, "not a patchsafe snapshot (neither .psnap nor a JSON snapshot)", { file });
}

/**
 * A file read for a reader with a section cache (readWithoutKnownSection): its bytes, and
 * whether they stop before a known symbol section. null: it changed size while being read (read
 * it again as any file).
 */
function readPart(file: string, cache: SymbolSectionCache, buffer: ReadBuffer | null): { bytes: Uint8Array; omitted: boolean } | null {
  return withRegularFile(file, MAX_SNAPSHOT_FILE, (fd, size) => {
    const bytes = readWithoutKnownSection(fd, size, file, cache, buffer);
    return bytes === null ? null : { bytes, omitted: bytes.length < size };
  });
}

function readHead(file: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw ioError(file, e);
  }
  try {
    const buf = new Uint8Array(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n);
  } catch (e) {
    throw ioError(file, e);
  } finally {
    closeSync(fd);
  }
}

export interface AnyCapture {
  capture: Capture;
  symbols: SymbolTable | null;
  /** The decoded snapshot when the input was one. */
  snapshot: DecodedSnapshot | null;
  detected: string;
}

/**
 * Reads any capture input: a .psnap, a JSON snapshot, or what readCaptureFile reads (/proc text,
 * native JSON capture; '-' is standard input).
 */
export function readAnyCapture(file: string, format: InputFormat = "auto"): AnyCapture {
  if (file !== "-" && format === "auto") {
    const kind = sniffSnapshot(readHead(file));
    if (kind !== null) {
      const snapshot = readSnapshotFile(file);
      return { capture: snapshot.capture, symbols: snapshot.symbols, snapshot, detected: kind === "psnap" ? "psnap" : "patchsafe-snapshot" };
    }
  }
  const { capture, detected } = readCaptureFile(file, format);
  return { capture, symbols: null, snapshot: null, detected };
}

/**
 * Writes `data` to `path` readable by its owner only (0600, also when the file existed), never
 * through a symlink (O_NOFOLLOW, and lstat first), never over a non-regular file, and never over
 * one of `inputs` (same device and inode). Writes in place: no temporary file to leave behind.
 */
export function writePrivateFile(path: string, data: Uint8Array | string, inputs: string[] = []): void {
  writePrivateFileFrom(path, inputs, (write) => write(data));
}

/**
 * writePrivateFile for data made in pieces: `produce` hands each piece to `write` (strings as
 * UTF-8), which writes it at once, so the whole never has to be in memory. Returns the bytes
 * written. The same refusals as writePrivateFile, before anything is truncated.
 */
export function writePrivateFileFrom(path: string, inputs: string[], produce: (write: (piece: Uint8Array | string) => void) => void): number {
  let existing: { dev: number; ino: number } | null = null;
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) throw new PatchsafeError("E_IO", "refusing to write through a symlink", { file: path });
    if (!st.isFile()) throw new PatchsafeError("E_IO", "refusing to write over a non-regular file", { file: path });
    existing = { dev: st.dev, ino: st.ino };
  } catch (e) {
    if (e instanceof PatchsafeError) throw e;
  }
  if (existing !== null) {
    for (const input of inputs) {
      if (input === "-") continue;
      try {
        const st = statSync(input);
        if (st.dev === existing.dev && st.ino === existing.ino) throw new PatchsafeError("E_IO", `refusing to write over the input ${input}`, { file: path });
      } catch (e) {
        if (e instanceof PatchsafeError) throw e;
      }
    }
  }
  let fd: number;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | (fsc.O_NOFOLLOW ?? 0), 0o600);
  } catch (e) {
    throw ioError(path, e, "write");
  }
  let written = 0;
  const enc = new TextEncoder();
  const write = (piece: Uint8Array | string): void => {
    const bytes = typeof piece === "string" ? enc.encode(piece) : piece;
    let off = 0;
    try {
      while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 24));
    } catch (e) {
      throw ioError(path, e, "write");
    }
    written += bytes.length;
  };
  try {
    try {
      fchmodSync(fd, 0o600);
    } catch (e) {
      throw ioError(path, e, "write");
    }
    produce(write);
  } finally {
    closeSync(fd);
  }
  return written;
}
