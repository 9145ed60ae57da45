/**
 * The binary snapshot (`.psnap`): one capture plus the symbol table it needs, so a later check
 * works offline, anywhere. Browser-clean: no `node:` import, no Buffer.
 *
 * Layout (little-endian):
 *
 *   0   8  magic  89 50 53 4E 41 50 0D 0A   "\x89PSNAP\r\n" (PNG-style: a text-mode copy or a
 *                                           7-bit channel breaks it visibly)
 *   8   2  format major   (a reader refuses a newer major: E_SNAPSHOT_VERSION)
 *  10   2  format minor   (additions an older reader of the same major ignores)
 *  12   4  header length H   (≤ 1 MiB)
 *  16   4  body length B     (≤ 2 GiB - 1)
 *  20   4  CRC-32 of the header bytes
 *  24   4  CRC-32 of the body bytes
 *  28   4  CRC-32 of bytes 0..27 (so a damaged length or version is not believed)
 *  32   H  header: a msgpack map (SnapshotHeader), readable without decoding the body
 *  32+H B  body: a msgpack map {capture, tasks, frames, symbols}
 *  The file ends exactly at 32 + H + B.
 *
 * The body is columnar. Tasks: one integer column per field (src/snapshot/columns.ts: zigzag
 * delta or run-length varints), comm bytes interned. Frames: the distinct frame rows as typed
 * arrays (symbol, object, build id, offset, size, flags, address halves), the distinct stacks as
 * lists of row ids, and one stack id per task; source lines are stored as "consecutive from L"
 * per task with explicit exceptions; since format 1.2 each distinct row also carries the symbol
 * row resolve gives it with the file's table (`symRow`). The symbol table: names in table
 * (kallsyms) order, since format 1.2 as one byte string of code units with a length per stored
 * name (before: one text, front-coded up to 1.0; `__pfx_` padding names derived, not stored), object, type,
 * address halves (absent when redacted), sizes (only when redacted: with addresses they are
 * recomputed exactly as for a kallsyms file), and for a redacted table the rows inside each
 * special section. Since format 1.1 the symbol section is the body's last value and the header's
 * `symbolsAt` gives its [offset, length] within the body, so a reader can recognise a section it
 * has decoded before by its bytes; since format 1.3 the header's `symbolsSha256` names it by its
 * SHA-256, so such a reader need not even read it (readSnapshotPrefix, DecodeOptions
 * symbolsOmitted): it checks the body's CRC-32 as that of the bytes it read followed by the
 * cached section's.
 *
 * Decoding never returns a partial model, and never allocates by a count it has not checked
 * against the bytes that carry it: every task costs at least one byte of the tid column, every
 * stack entry one byte, and the frame total may not exceed MAX_FRAMES_PER_BYTE × B. The worst
 * case memory is therefore a fixed multiple of the file size.
 */
import { Packr } from "msgpackr";
import { PatchsafeError } from "../errors.js";
import {
  type AppliedPatch,
  type Capture,
  type CaptureSource,
  emptyHostFacts,
  FrameColumns,
  frameLine as frameLineOf,
  FrameFlag,
  type HostFacts,
  newTask,
  type Reason,
  STACK_STATUS_CODE,
  type StackStatus,
  StringTable,
  type Task,
  TaskTable,
  type TriState,
} from "../model.js";
import { FrameStatus, setSymbolHints, type SymbolHints, symbolicRow } from "../symbols/resolve.js";
import { finishTable, nameBlobFromFrontCoding, rowHasName, type SymbolSource, type SymbolTable } from "../symbols/table.js";
import { VERSION } from "../version.js";
import { ColumnError, constantOf, decodeIdsInto, decodeIndexesInto, decodeInts, decodeIntsInto, decodeIntsWithin, activeColumnKernel, encodeInts, encodeNullable, type IntColumn, withColumnKernel, zigzag } from "./columns.js";
import type { ColumnKernel } from "./columnKernel.js";
import { sha256 as sha256Ts } from "../sha256.js";
import { crc32 } from "./crc32.js";
import { storedNameBlob } from "./names.js";
import { symbolSizes } from "./sizes.js";
import { hashComms, redactCapture, redactSymbols, traceableBits, traceableFromBits } from "./redact.js";
import {
  type EncodeOptions,
  SECTION_NAMES,
  type SectionRows,
  SNAPSHOT_FORMAT,
  SNAPSHOT_MAJOR,
  SNAPSHOT_MINOR,
  type SnapshotHeader,
} from "./model.js";

/**
 * The snapshot's own msgpackr instance, options fixed here and nowhere else:
 * - moreTypes: true — typed arrays are ext 0x74 with their element type and decode to the same
 *   type, aligned (msgpackr 1.x silently truncated non-byte typed arrays: 2.x is required).
 * - useRecords: false — plain msgpack maps, so any msgpack reader can walk the file (records
 *   are a msgpackr extension and save nothing on a body of a few big columns).
 * - bundleStrings: false — another msgpackr-only extension.
 * - structuredClone: false — no cycles or shared references in a snapshot.
 * - useToJSON: false — a class's toJSON() shape never leaks into a durable file.
 * - mapsAsObjects: true — maps decode to plain objects (keys are always strings here).
 * - copyBuffers: true — decoded byte strings are copies, not views into the file buffer (see
 *   viewPackr for the parts read without a copy).
 * - int64AsType: "number" — nothing 64-bit is written (addresses are u32 halves); a hostile
 *   64-bit value decodes as a lossy number that validation then rejects, never a BigInt.
 * Files are decoded whole with unpack() on an exact slice (length-prefixed and checksummed), so
 * the 64 MB maxIncompleteBufferSize of the streaming reader never applies.
 */
const PACKR_OPTIONS = {
  moreTypes: true,
  useRecords: false,
  bundleStrings: false,
  structuredClone: false,
  useToJSON: false,
  mapsAsObjects: true,
  copyBuffers: true,
  int64AsType: "number",
} as const;
const packr = new Packr(PACKR_OPTIONS);

/**
 * The same options but copyBuffers: false (byte strings decode as views into the input): for the
 * body's parts whose byte strings are only read while decoding (the integer columns), and the
 * symbol section, whose names are copied only when its bytes do not outlive the table
 * (DecodeOptions.keepBytes, or the section cache's own copy: then they stay a view).
 */
const viewPackr = new Packr({ ...PACKR_OPTIONS, copyBuffers: false });

/**
 * msgpackr's own byte array class (Node's Buffer, Uint8Array in browsers: what pack() returns).
 * It writes an instance of that class as msgpack bin and any other Uint8Array as a typed-array
 * extension (0x74), which every reader decodes into a fresh copy (msgpackr slices it, for
 * alignment) and never into a view. Byte strings are therefore packed as this class (binView):
 * a reader takes bin as a view into the file's bytes (viewPackr) and copies only what it keeps.
 * Both encodings are the same msgpack byte string to any other reader and decode to the same
 * model (files written in a browser always held bin; Node wrote the extension up to 0.1.0).
 */
const ByteArray = packr.pack(null).constructor as unknown as typeof Uint8Array;

/** `b` as msgpackr's byte array class: the same bytes, no copy. */
function binView(b: Uint8Array): Uint8Array {
  if (ByteArray === Uint8Array || b.constructor === ByteArray) return b;
  return (ByteArray as unknown as { from(a: ArrayBufferLike, off: number, len: number): Uint8Array }).from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * A copy of a body value (plain maps and arrays) with every plain Uint8Array as binView: the
 * value packs as bin instead of the typed-array extension. Other typed arrays keep their type.
 */
function withBin(x: unknown): unknown {
  if (x === null || typeof x !== "object") return x;
  if (x instanceof Uint8Array) return x.constructor === Uint8Array ? binView(x) : x;
  if (ArrayBuffer.isView(x)) return x;
  if (Array.isArray(x)) return x.map(withBin);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) out[k] = withBin(v);
  return out;
}

export const SNAPSHOT_MAGIC = Uint8Array.of(0x89, 0x50, 0x53, 0x4e, 0x41, 0x50, 0x0d, 0x0a);
const PREFIX = 32;
const MAX_HEADER = 1 << 20;
const MAX_BODY = 0x7fffffff;
/** Frames a body may expand to per body byte (a shared 64-entry stack costs ~2 bytes a task). */
const MAX_FRAMES_PER_BYTE = 64;
const STACK_STATUSES: StackStatus[] = ["ok", "empty", "unreadable", "truncated", "vanished"];

/** Error codes of snapshot reading (PatchsafeError.code; the CLI maps them to exit 2). */
export const SnapshotError = {
  /** Not a snapshot: the first 8 bytes are not the magic. */
  MAGIC: "E_SNAPSHOT_MAGIC",
  /** A newer major format than this build reads. */
  VERSION: "E_SNAPSHOT_VERSION",
  /** The file ends before the lengths its prefix declares. */
  TRUNCATED: "E_SNAPSHOT_TRUNCATED",
  /** The header or body bytes do not match their CRC-32. */
  CHECKSUM: "E_SNAPSHOT_CHECKSUM",
  /** A declared length or count beyond what the reader allocates. */
  TOO_LARGE: "E_SNAPSHOT_TOO_LARGE",
  /** Anything else malformed: damaged prefix, bad msgpack, inconsistent columns, bad values. */
  CORRUPT: "E_SNAPSHOT_CORRUPT",
} as const;

function fail(code: string, message: string, file: string): never {
  throw new PatchsafeError(code, message, { file });
}

/** Whether the bytes start with the snapshot magic. */
export function isSnapshot(bytes: Uint8Array): boolean {
  if (bytes.length < SNAPSHOT_MAGIC.length) return false;
  for (let i = 0; i < SNAPSHOT_MAGIC.length; i++) if (bytes[i] !== SNAPSHOT_MAGIC[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Symbol names in table order (format 1.2): the stored names' code units back to back as one
 * byte string (`names`; a Uint16Array when a code unit is above 0xff), their lengths as a typed
 * array (`nameLen`), and a bitset (`pad`, bit i & 7 of byte i >> 3) of the rows not stored at
 * all: a `__pfx_NAME` row directly followed by NAME (x86 function padding: about half of a
 * modern kallsyms), which the decoder derives from the next row. A decoder takes `names` as the
 * blob it looks names up in, with no string made and no varint read.
 */
function encodeNames(names: string[]): { pad: Uint8Array; nameLen: Uint8Array | Uint16Array | Uint32Array; names: Uint8Array | Uint16Array } {
  const n = names.length;
  const mark = new Uint8Array(n);
  // Backwards, so a mark never points at a marked row (a chain would cost the reader depth).
  for (let i = n - 2; i >= 0; i--) {
    const s = names[i];
    if (mark[i + 1] === 0 && s.length > 6 && s.startsWith("__pfx_") && s.length === names[i + 1].length + 6 && s.endsWith(names[i + 1])) mark[i] = 1;
  }
  const pad = new Uint8Array((n + 7) >> 3);
  let stored = 0;
  let total = 0;
  let maxLen = 0;
  let maxUnit = 0;
  for (let i = 0; i < n; i++) {
    if (mark[i] === 1) {
      pad[i >> 3] |= 1 << (i & 7);
      continue;
    }
    const s = names[i];
    stored++;
    total += s.length;
    if (s.length > maxLen) maxLen = s.length;
    for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) > maxUnit) maxUnit = s.charCodeAt(k);
  }
  const nameLen = maxLen <= 0xff ? new Uint8Array(stored) : maxLen <= 0xffff ? new Uint16Array(stored) : new Uint32Array(stored);
  const units = maxUnit <= 0xff ? new Uint8Array(total) : new Uint16Array(total);
  for (let i = 0, k = 0, at = 0; i < n; i++) {
    if (mark[i] === 1) continue;
    const s = names[i];
    nameLen[k++] = s.length;
    for (let j = 0; j < s.length; j++) units[at + j] = s.charCodeAt(j);
    at += s.length;
  }
  return { pad, nameLen, names: units };
}

function encodeSymbols(t: SymbolTable, sectionRows: SectionRows | null): Record<string, unknown> {
  const n = t.count;
  const hasAddr = t.hasAddresses;
  const names = encodeNames(t.names);
  const hi = new Float64Array(n);
  const lo = new Float64Array(n);
  if (hasAddr) {
    for (let i = 0; i < n; i++) {
      hi[i] = t.addrHi[i];
      lo[i] = t.addrLo[i];
    }
  }
  let rows: Record<string, IntColumn | null> | null = null;
  if (!hasAddr && sectionRows !== null) {
    rows = {};
    for (const s of SECTION_NAMES) rows[s] = sectionRows[s] === null ? null : encodeInts(sectionRows[s]!, "d");
  }
  return {
    n,
    source: t.source,
    coverage: t.coverage,
    objects: t.objects,
    object: encodeInts(t.object),
    type: encodeInts(t.type),
    pad: names.pad,
    nameLen: names.nameLen,
    names: names.names,
    addrHi: hasAddr ? encodeInts(hi) : null,
    addrLo: hasAddr ? encodeInts(lo) : null,
    // With addresses, sizes are recomputed on load exactly as for a kallsyms file; without them
    // they are data.
    size: hasAddr ? null : encodeInts(t.size),
    sectionRows: rows,
    warnings: t.warnings,
  };
}

export interface PreparedExport {
  capture: Capture;
  symbols: SymbolTable | null;
  /** For a table without addresses: rows inside each section (null when unknown). */
  sectionRows: SectionRows | null;
  redacted: boolean;
  commsHashed: boolean;
}

/** Applies --redact and comm hashing: what both encoders (binary, JSON) serialize. */
export function prepareExport(capture: Capture, symbols: SymbolTable | null, opts: EncodeOptions): PreparedExport {
  let cap = capture;
  let table = symbols;
  let rows = opts.sectionRows ?? null;
  if (opts.redact) {
    cap = redactCapture(cap);
    if (table !== null && table.hasAddresses) ({ table, sectionRows: rows } = redactSymbols(table));
  }
  if (opts.hashComms) cap = hashComms(cap);
  return {
    capture: cap,
    symbols: table,
    sectionRows: table !== null && !table.hasAddresses ? rows : null,
    redacted: opts.redact === true || opts.redacted === true,
    commsHashed: opts.hashComms === true || opts.commsHashed === true,
  };
}

/**
 * Encodes a capture and (optionally) its symbol table as a .psnap file. The capture is not
 * modified. Throws RangeError only for a model that breaks its own invariants.
 */
export function encodeSnapshot(original: Capture, originalSymbols: SymbolTable | null, opts: EncodeOptions = {}): Uint8Array {
  const prepared = prepareExport(original, originalSymbols, opts);
  const { capture, symbols } = prepared;
  const tasks = capture.tasks;
  const T = tasks.length;
  const f = capture.frames;

  // Distinct frame rows (ignoring the source line) and distinct stacks.
  const rowIds = new Map<string, number>();
  const rowOf: number[] = [];
  const stackIds = new Map<string, number>();
  const stackLen: number[] = [];
  const stackRows: number[] = [];
  const taskStack = new Float64Array(T);
  const frameLine: (number | null)[] = new Array(T);
  const lines: number[] = [];
  let frames = 0;
  // Tasks that share frame rows (Capture.sharedRows) share their stack id too: rows looked up once.
  const byRows = capture.sharedRows ? new Map<string, number>() : null;
  for (let ti = 0; ti < T; ti++) {
    const t = tasks.get(ti);
    if (t.frameCount > 0 && (t.frameStart < 0 || t.frameStart + t.frameCount > f.length)) {
      throw new RangeError(`task ${ti}: frames ${t.frameStart}..${t.frameStart + t.frameCount} outside the frame columns`);
    }
    const rowsKey = byRows === null ? "" : `${t.frameStart},${t.frameCount}`;
    let sid = byRows?.get(rowsKey);
    if (sid === undefined) {
      const ids: number[] = [];
      for (let k = 0; k < t.frameCount; k++) {
        const i = t.frameStart + k;
        const flags = f.flags[i] & ~FrameFlag.SHARED;
        let lo = f.addrLo[i];
        let hi = f.addrHi[i];
        if ((flags & FrameFlag.HAS_ADDRESS) === 0) {
          lo = 0;
          hi = 0;
        }
        const key = `${f.symbol[i]},${f.object[i]},${f.buildId[i]},${f.offset[i]},${f.size[i]},${flags},${lo},${hi}`;
        let id = rowIds.get(key);
        if (id === undefined) {
          id = rowOf.length;
          rowIds.set(key, id);
          rowOf.push(i);
        }
        ids.push(id);
      }
      const skey = ids.join(",");
      sid = stackIds.get(skey);
      if (sid === undefined) {
        sid = stackLen.length;
        stackIds.set(skey, sid);
        stackLen.push(ids.length);
        for (const id of ids) stackRows.push(id);
      }
      byRows?.set(rowsKey, sid);
    }
    frames += t.frameCount;
    taskStack[ti] = sid;
    // Source lines as this task saw them (shared rows hold the first task's lines).
    const first = t.frameCount > 0 ? frameLineOf(capture, t, t.frameStart) : 0;
    let consecutive = t.frameCount > 0;
    for (let k = 1; k < t.frameCount && consecutive; k++) if (frameLineOf(capture, t, t.frameStart + k) !== first + k) consecutive = false;
    if (consecutive) frameLine[ti] = first;
    else {
      frameLine[ti] = null;
      for (let k = 0; k < t.frameCount; k++) lines.push(frameLineOf(capture, t, t.frameStart + k));
    }
  }
  const R = rowOf.length;
  const col = {
    symbol: new Int32Array(R),
    object: new Int32Array(R),
    buildId: new Int32Array(R),
    offset: new Uint32Array(R),
    size: new Uint32Array(R),
    flags: new Uint16Array(R),
    addrLo: new Uint32Array(R),
    addrHi: new Uint32Array(R),
  };
  let anyAddr = false;
  rowOf.forEach((i, r) => {
    col.symbol[r] = f.symbol[i];
    col.object[r] = f.object[i];
    col.buildId[r] = f.buildId[i];
    col.offset[r] = f.offset[i];
    col.size[r] = f.size[i];
    const flags = f.flags[i] & ~FrameFlag.SHARED;
    col.flags[r] = flags;
    if (flags & FrameFlag.HAS_ADDRESS) {
      col.addrLo[r] = f.addrLo[i];
      col.addrHi[r] = f.addrHi[i];
      anyAddr = true;
    }
  });

  // What resolve makes of each row's symbol with this table (symbolicRow), so a reader resolves
  // the frames without building the table's name index; -1 where resolve does not look by name.
  let symRow: Int32Array | null = null;
  if (symbols !== null && symbols.hasAddresses) {
    symRow = new Int32Array(R).fill(-1);
    for (let r = 0; r < R; r++) {
      const fl = col.flags[r];
      if (fl & (FrameFlag.UNPARSED | FrameFlag.INLINE | FrameFlag.BARE_HEX) || col.symbol[r] < 0 || col.object[r] < 0) continue;
      const hasSize = (fl & FrameFlag.HAS_SIZE) !== 0;
      symRow[r] = symbolicRow(symbols, capture.strings.get(col.symbol[r]), capture.strings.get(col.object[r]), hasSize, hasSize ? col.size[r] : 0);
    }
  }

  // Comms: distinct byte strings, one id per task.
  const commIds = new Map<string, number>();
  const comms: Uint8Array[] = [];
  const commOf: (number | null)[] = new Array(T);
  const strings = capture.strings.values.slice();
  const stringIds = new Map<string, number>(strings.map((s, i) => [s, i]));
  const sid = (s: string | null): number | null => {
    if (s === null) return null;
    let id = stringIds.get(s);
    if (id === undefined) {
      id = strings.length;
      strings.push(s);
      stringIds.set(s, id);
    }
    return id;
  };
  tasks.forEach((t, ti) => {
    const c = t.comm;
    if (c === null) {
      commOf[ti] = null;
      return;
    }
    const key = Array.prototype.join.call(c, ",");
    let id = commIds.get(key);
    if (id === undefined) {
      id = comms.length;
      commIds.set(key, id);
      comms.push(c.slice());
    }
    commOf[ti] = id;
  });
  const tri = (v: boolean | null): number => (v === null ? 0 : v ? 2 : 1);
  // Each task's line as the step from where the previous task's frames end, and its first
  // frame's line relative to its own (1 + zigzag; 0: lines stored one by one).
  const lineStep = new Float64Array(T);
  const firstLine = new Float64Array(T);
  let lineEnd = 0;
  for (let ti = 0; ti < T; ti++) {
    const line = tasks.line[ti];
    lineStep[ti] = line - lineEnd;
    lineEnd = line + tasks.frameCount[ti];
    const fl = frameLine[ti];
    firstLine[ti] = fl === null ? 0 : 1 + zigzag(fl - line);
  }
  const body = {
    capture: {
      source: capture.source,
      host: capture.host,
      complete: capture.complete,
      completeness: capture.completeness,
      hidesSchedFrames: capture.hidesSchedFrames,
      excluded: capture.excluded,
      warnings: capture.warnings,
      livepatches: capture.livepatches,
      modules: capture.modules,
      strings,
      // available_filter_functions over the symbol rows (absent before format 1.4: not recorded).
      traceable: traceableBits(capture.traceable, symbols),
    },
    tasks: {
      n: T,
      pid: encodeNullable(tasks.map((t) => t.pid), "d"),
      tid: encodeNullable(tasks.map((t) => t.tid), "d"),
      ppid: encodeNullable(tasks.map((t) => t.ppid)),
      startTime: encodeNullable(tasks.map((t) => t.startTime)),
      cpu: encodeNullable(tasks.map((t) => t.cpu)),
      flags: encodeNullable(tasks.map((t) => t.flags)),
      state: encodeInts(tasks.map((t) => (t.state === null ? 0 : t.state.charCodeAt(0)))),
      patchState: encodeInts(tasks.map((t) => (t.patchState === null ? 0 : t.patchState + 2))),
      stackStatus: encodeInts(tasks.map((t) => STACK_STATUSES.indexOf(t.stackStatus))),
      errno: encodeNullable(tasks.map((t) => sid(t.errno))),
      running: encodeInts(tasks.map((t) => (t.running ? 1 : 0))),
      statusKthread: encodeInts(tasks.map((t) => tri(t.statusKthread))),
      endMarker: encodeInts(tasks.map((t) => (t.endMarker ? 1 : 0))),
      // Lines as steps (format 1.2): a /proc text dump's are one constant each.
      lineStep: encodeInts(lineStep),
      comms,
      comm: encodeNullable(commOf),
      stack: encodeInts(taskStack),
      firstLine: encodeInts(firstLine),
    },
    frames: {
      n: frames,
      rows: R,
      symbol: col.symbol,
      object: col.object,
      buildId: col.buildId,
      offset: col.offset,
      size: col.size,
      flags: col.flags,
      addrLo: anyAddr ? col.addrLo : null,
      addrHi: anyAddr ? col.addrHi : null,
      symRow,
      stacks: stackLen.length,
      stackLen: encodeInts(stackLen, "d"),
      stackRows: encodeInts(stackRows, "d"),
      lines: encodeInts(lines),
    },
    symbols: symbols === null ? null : encodeSymbols(symbols, prepared.sectionRows),
  };
  const host = capture.host;
  const header: SnapshotHeader = {
    format: SNAPSHOT_FORMAT,
    major: SNAPSHOT_MAJOR,
    minor: SNAPSHOT_MINOR,
    producer: opts.producer ?? `patchsafe ${VERSION}`,
    capturedAt: host.capturedAt,
    hostname: host.hostname,
    release: host.release,
    bootId: host.bootId,
    arch: host.arch,
    complete: capture.complete,
    tasks: T,
    frames,
    symbols: symbols === null ? null : symbols.count,
    redacted: prepared.redacted,
    commsHashed: prepared.commsHashed,
    source: { name: capture.source.name, format: capture.source.format },
  };
  // The symbol section is packed on its own and written as the body's last value, and the
  // header says where it is (symbolsAt: [offset, length] within the body). The body stays one
  // ordinary msgpack map, so a format 1.0 reader reads it as before; a 1.1 reader can skip a
  // section whose exact bytes it has decoded already (hosts of one kernel build, in a fleet).
  // pack() reuses its buffer: copy each result before the next call.
  const head = packr.pack(withBin({ ...body, symbols: null })).slice();
  if (head[head.length - 1] !== 0xc0) throw new RangeError("snapshot body: the symbol placeholder is not the last byte");
  let b: Uint8Array = head;
  let symbolsAt: [number, number] | null = null;
  // Since 1.3 the header also names the section by its SHA-256: a fleet reader that holds a
  // section verified against that digest skips reading it again (see readSnapshotPrefix).
  let symbolsSha256: Uint8Array | null = null;
  if (body.symbols !== null) {
    const sec = packr.pack(withBin(body.symbols)).slice();
    b = new Uint8Array(head.length - 1 + sec.length);
    b.set(head.subarray(0, head.length - 1));
    b.set(sec, head.length - 1);
    symbolsAt = [head.length - 1, sec.length];
    symbolsSha256 = binView((opts.sha256 ?? sha256Ts)(sec));
  }
  const h = packr.pack({ ...header, symbolsAt, symbolsSha256 }).slice();
  if (h.length > MAX_HEADER || b.length > MAX_BODY) throw new RangeError("snapshot too large for the format's length fields");
  const out = new Uint8Array(PREFIX + h.length + b.length);
  out.set(SNAPSHOT_MAGIC, 0);
  const dv = new DataView(out.buffer);
  dv.setUint16(8, SNAPSHOT_MAJOR, true);
  dv.setUint16(10, SNAPSHOT_MINOR, true);
  dv.setUint32(12, h.length, true);
  dv.setUint32(16, b.length, true);
  dv.setUint32(20, crc32(h), true);
  dv.setUint32(24, crc32(b), true);
  dv.setUint32(28, crc32(out, 0, 28), true);
  out.set(h, PREFIX);
  out.set(b, PREFIX + h.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Frame {
  hLen: number;
  bLen: number;
  major: number;
  minor: number;
}

/** Checks magic, prefix, version and lengths; the checksums are checked by the callers. */
function readPrefix(bytes: Uint8Array, file: string, crcOf: (b: Uint8Array) => number = (b) => crc32(b), short = false): Frame {
  const n = Math.min(bytes.length, SNAPSHOT_MAGIC.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) fail(SnapshotError.MAGIC, "not a patchsafe snapshot (wrong magic)", file);
  }
  if (bytes.length < PREFIX) fail(SnapshotError.TRUNCATED, `truncated snapshot: ${bytes.length} bytes, shorter than its ${PREFIX}-byte prefix`, file);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, PREFIX);
  if (crcOf(bytes.subarray(0, 28)) !== dv.getUint32(28, true)) fail(SnapshotError.CORRUPT, "damaged snapshot: the prefix (version, lengths, checksums) fails its CRC-32", file);
  const major = dv.getUint16(8, true);
  const minor = dv.getUint16(10, true);
  if (major > SNAPSHOT_MAJOR) {
    fail(SnapshotError.VERSION, `snapshot format ${major}.${minor} is newer than this patchsafe reads (≤ ${SNAPSHOT_MAJOR}.x): upgrade patchsafe`, file);
  }
  if (major === 0) fail(SnapshotError.CORRUPT, "snapshot format 0 does not exist", file);
  const hLen = dv.getUint32(12, true);
  const bLen = dv.getUint32(16, true);
  if (hLen > MAX_HEADER) fail(SnapshotError.TOO_LARGE, `snapshot header declares ${hLen} bytes (limit ${MAX_HEADER})`, file);
  if (bLen > MAX_BODY) fail(SnapshotError.TOO_LARGE, `snapshot body declares ${bLen} bytes (limit ${MAX_BODY})`, file);
  const total = PREFIX + hLen + bLen;
  // `short`: the caller left the symbol section out on purpose (decodeSnapshot checks the rest).
  if (short && bytes.length >= PREFIX + hLen && bytes.length < total) return { hLen, bLen, major, minor };
  if (bytes.length < total) fail(SnapshotError.TRUNCATED, `truncated snapshot: ${bytes.length} of ${total} bytes`, file);
  if (bytes.length > total) fail(SnapshotError.CORRUPT, `${bytes.length - total} bytes after the end of the snapshot`, file);
  return { hLen, bLen, major, minor };
}

type Obj = Record<string, unknown>;

/**
 * Array.prototype.map, but always a packed array: map's result is holey or packed depending on
 * whether V8 has optimized the caller, and code that later reads a capture's arrays (the rule
 * table's filters over completeness) then sees two maps and deoptimizes on every other snapshot.
 */
function mapPacked<T, U>(a: T[], fn: (x: T, i: number) => U): U[] {
  const out: U[] = [];
  for (let i = 0; i < a.length; i++) out.push(fn(a[i], i));
  return out;
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** Validation helpers that throw E_SNAPSHOT_CORRUPT naming the path. */
class V {
  constructor(readonly file: string) {}
  bad(path: string, what: string): never {
    return fail(SnapshotError.CORRUPT, `damaged snapshot: ${path}: ${what}`, this.file);
  }
  obj(v: unknown, path: string): Obj {
    return isObj(v) ? v : this.bad(path, "expected a map");
  }
  str(v: unknown, path: string): string {
    return typeof v === "string" ? v : this.bad(path, "expected a string");
  }
  strN(v: unknown, path: string): string | null {
    return v === null || v === undefined ? null : this.str(v, path);
  }
  boolN(v: unknown, path: string): boolean | null {
    if (v === null || v === undefined) return null;
    return typeof v === "boolean" ? v : this.bad(path, "expected a boolean");
  }
  bool(v: unknown, path: string): boolean {
    return typeof v === "boolean" ? v : this.bad(path, "expected a boolean");
  }
  int(v: unknown, path: string, max = Number.MAX_SAFE_INTEGER): number {
    return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= max ? v : this.bad(path, `expected an integer 0..${max}`);
  }
  intN(v: unknown, path: string): number | null {
    return v === null || v === undefined ? null : this.int(v, path);
  }
  tri(v: unknown, path: string): TriState {
    return v === true || v === false || v === "unknown" ? v : this.bad(path, 'expected true, false or "unknown"');
  }
  arr(v: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(v)) return this.bad(path, "expected an array");
    if (v.length > max) fail(SnapshotError.TOO_LARGE, `damaged snapshot: ${path}: ${v.length} entries (limit ${max})`, this.file);
    return v;
  }
  strs(v: unknown, path: string, max: number): string[] {
    return mapPacked(this.arr(v, path, max), (s, i) => this.str(s, `${path}[${i}]`));
  }
  reasons(v: unknown, path: string): Reason[] {
    return mapPacked(this.arr(v, path, 1 << 16), (r, i) => {
      const o = this.obj(r, `${path}[${i}]`);
      return { code: this.str(o.code, `${path}[${i}].code`), message: this.str(o.message, `${path}[${i}].message`) };
    });
  }
  typed<T extends ArrayBufferView>(v: unknown, ctor: { new (n: number): T; name: string }, n: number, path: string): T {
    if (!(v instanceof (ctor as unknown as typeof Uint8Array))) this.bad(path, `expected a ${ctor.name}`);
    if ((v as unknown as Uint8Array).length !== n) this.bad(path, `${(v as unknown as Uint8Array).length} entries where ${n} were expected`);
    return v as unknown as T;
  }
  col<R>(fn: () => R): R {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ColumnError) this.bad("column", e.message);
      throw e;
    }
  }
}

function host(v: V, o: Obj): HostFacts {
  const h = emptyHostFacts();
  h.bootId = v.strN(o.bootId, "host.bootId");
  h.release = v.strN(o.release, "host.release");
  h.arch = v.strN(o.arch, "host.arch");
  h.hostname = v.strN(o.hostname, "host.hostname");
  h.capturedAt = v.strN(o.capturedAt, "host.capturedAt");
  h.capSysAdmin = v.boolN(o.capSysAdmin, "host.capSysAdmin");
  h.initPidNamespace = v.boolN(o.initPidNamespace, "host.initPidNamespace");
  const c = v.obj(o.config, "host.config");
  // Written by every version (null = unknown): an absent one must not read as harmless.
  for (const k of ["livepatch", "reliableStacktrace", "unwinder"]) if (!(k in c)) v.bad(`host.config.${k}`, "missing");
  h.config.livepatch = v.boolN(c.livepatch, "host.config.livepatch");
  h.config.reliableStacktrace = v.boolN(c.reliableStacktrace, "host.config.reliableStacktrace");
  const u = c.unwinder;
  if (u !== null && u !== "orc" && u !== "frame-pointer" && u !== "other") v.bad("host.config.unwinder", "expected orc, frame-pointer, other or null");
  h.config.unwinder = u;
  return h;
}

/** Validates an AppliedPatch[] (shared with the JSON form); `bad` throws. */
export function validatePatches(v: { bad(path: string, what: string): never }, x: unknown, path: string): AppliedPatch[] {
  const obj = (o: unknown, p: string): Record<string, unknown> => (isObj(o) ? o : v.bad(p, "expected a map"));
  const str = (o: unknown, p: string): string => (typeof o === "string" ? o : v.bad(p, "expected a string"));
  const strN = (o: unknown, p: string): string | null => (o === null || o === undefined ? null : str(o, p));
  const bool = (o: unknown, p: string): boolean => (typeof o === "boolean" ? o : v.bad(p, "expected a boolean"));
  const int = (o: unknown, p: string): number => (typeof o === "number" && Number.isSafeInteger(o) && o >= 0 ? o : v.bad(p, "expected a non-negative integer"));
  const intN = (o: unknown, p: string): number | null => (o === null || o === undefined ? null : int(o, p));
  if (!Array.isArray(x)) return v.bad(path, "expected an array");
  return mapPacked(x, (p, i) => {
    const pp = `${path}[${i}]`;
    const o = obj(p, pp);
    if (!Array.isArray(o.funcs)) return v.bad(`${pp}.funcs`, "expected an array");
    const funcs = mapPacked(o.funcs as unknown[], (fn, j) => {
      const fp = `${pp}.funcs[${j}]`;
      const f = obj(fn, fp);
      return {
        object: str(f.object, `${fp}.object`),
        oldName: str(f.oldName, `${fp}.oldName`),
        oldSympos: int(f.oldSympos, `${fp}.oldSympos`),
        newName: strN(f.newName, `${fp}.newName`),
        newSize: intN(f.newSize, `${fp}.newSize`),
        force: bool(f.force, `${fp}.force`),
      };
    });
    return {
      name: str(o.name, `${pp}.name`),
      enabled: bool(o.enabled, `${pp}.enabled`),
      transition: bool(o.transition, `${pp}.transition`),
      replace: bool(o.replace, `${pp}.replace`),
      forced: bool(o.forced, `${pp}.forced`),
      stackOrder: intN(o.stackOrder, `${pp}.stackOrder`),
      funcs,
    };
  });
}

function unpackOrFail(bytes: Uint8Array, what: string, file: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch (e) {
    return fail(SnapshotError.CORRUPT, `damaged snapshot: the ${what} is not valid msgpack (${e instanceof Error ? e.message.split("\n")[0].slice(0, 100) : String(e)})`, file);
  }
}

function checkHeader(v: V, x: unknown): SnapshotHeader {
  const o = v.obj(x, "header");
  if (o.format !== SNAPSHOT_FORMAT) v.bad("header.format", `expected "${SNAPSHOT_FORMAT}"`);
  const src = v.obj(o.source, "header.source");
  return {
    format: SNAPSHOT_FORMAT,
    major: v.int(o.major, "header.major", 0xffff),
    minor: v.int(o.minor, "header.minor", 0xffff),
    producer: v.str(o.producer, "header.producer"),
    capturedAt: v.strN(o.capturedAt, "header.capturedAt"),
    hostname: v.strN(o.hostname, "header.hostname"),
    release: v.strN(o.release, "header.release"),
    bootId: v.strN(o.bootId, "header.bootId"),
    arch: v.strN(o.arch, "header.arch"),
    complete: v.tri(o.complete, "header.complete"),
    tasks: v.int(o.tasks, "header.tasks"),
    frames: v.int(o.frames, "header.frames"),
    symbols: v.intN(o.symbols, "header.symbols"),
    redacted: v.bool(o.redacted, "header.redacted"),
    commsHashed: v.bool(o.commsHashed, "header.commsHashed"),
    source: { name: v.str(src.name, "header.source.name"), format: v.str(src.format, "header.source.format") },
  };
}

/** Where a snapshot's symbol section lies and the digest its header states (format 1.3). */
export interface SymbolSectionPlace {
  /** File offset of the section's first byte; it runs to the end of the file. */
  start: number;
  length: number;
  /** The file's whole length. */
  total: number;
  sha256: Uint8Array;
}

/**
 * From the first bytes of a file (`head`: at least its prefix and header), where its symbol
 * section lies and the SHA-256 its header states, or null when `head` does not hold all of the
 * header or the file states no digest (before 1.3, no symbol table, anything malformed: the
 * whole file is then read and decodeSnapshot names the error). Prefix and header are checked
 * against their CRC-32s; nothing here is trusted beyond choosing how much of the file to read.
 */
export function readSnapshotPrefix(head: Uint8Array, file = "<snapshot>", crcOf: (b: Uint8Array) => number = (b) => crc32(b)): SymbolSectionPlace | null {
  if (head.length < PREFIX || !isSnapshot(head)) return null;
  try {
    const p = readPrefix(head, file, crcOf, true);
    const dv = new DataView(head.buffer, head.byteOffset, PREFIX);
    const h = head.subarray(PREFIX, PREFIX + p.hLen);
    if (crcOf(h) !== dv.getUint32(20, true)) return null;
    const raw = packr.unpack(h) as Obj;
    const at = raw.symbolsAt;
    const digest = raw.symbolsSha256;
    if (!Array.isArray(at) || at.length !== 2 || !(digest instanceof Uint8Array) || digest.length !== 32) return null;
    const [off, len] = at as unknown[];
    if (typeof off !== "number" || typeof len !== "number" || !Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 1 || len < 1 || off + len !== p.bLen) return null;
    return { start: PREFIX + p.hLen + off, length: len, total: PREFIX + p.hLen + p.bLen, sha256: Uint8Array.prototype.slice.call(digest) };
  } catch {
    return null;
  }
}

/** Reads and verifies only the prefix and header (cheap: fleet listings, `capture` summaries). */
export function readSnapshotHeader(bytes: Uint8Array, file = "<snapshot>"): SnapshotHeader {
  const p = readPrefix(bytes, file);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, PREFIX);
  const h = bytes.subarray(PREFIX, PREFIX + p.hLen);
  if (crc32(h) !== dv.getUint32(20, true)) fail(SnapshotError.CHECKSUM, "damaged snapshot: the header fails its CRC-32", file);
  return checkHeader(new V(file), unpackOrFail(h, "header", file));
}

export interface DecodedSnapshot {
  header: SnapshotHeader;
  capture: Capture;
  /** null when the snapshot carries no symbol table. */
  symbols: SymbolTable | null;
  /** For a table without addresses (redacted): rows inside each section; null otherwise. */
  sectionRows: SectionRows | null;
  /**
   * Distinct-stack id per task: tasks with equal ids have identical frame rows (symbol, object,
   * offset, size, flags, address), so per-stack work (resolve, rule matching on frames) can be
   * done once per id. Ids are dense, 0..max.
   */
  taskStack: Int32Array;
}

/** Code units the names of a symbol section may expand to, per body byte (front coding). */
const MAX_NAME_CHARS_PER_BYTE = 256;

interface DecodedSymbols {
  table: SymbolTable;
  sectionRows: SectionRows | null;
}

/** Format 1.0/1.1 names: front-coded text (a string) with padding marks as a run-length column. */
function frontCodedNames(v: V, o: Obj, n: number, bodyLen: number): ReturnType<typeof nameBlobFromFrontCoding> {
  const pfx = new Uint8Array(n);
  v.col(() => decodeIntsInto(o.pfx, pfx, 0, 255, "symbols.pfx"));
  let stored = 0;
  for (let i = 0; i < n; i++) if (pfx[i] === 0) stored++;
  const { pre, len } = v.col(() => ({ pre: decodeInts(o.pre, stored, "symbols.pre"), len: decodeInts(o.len, stored, "symbols.len") }));
  const text = v.str(o.text, "symbols.text");
  return nameBlobFromFrontCoding(n, pfx, pre, len, text, MAX_NAME_CHARS_PER_BYTE * bodyLen + 4096);
}

/** Format 1.2 names: the stored code units as one byte string, lengths as a typed array, padding marks as a bitset. */
function storedNames(v: V, o: Obj, n: number, borrowed: ArrayBufferLike | null): ReturnType<typeof storedNameBlob> {
  const pad = o.pad;
  if (!(pad instanceof Uint8Array)) return v.bad("symbols.pad", "expected bytes");
  if (pad.length !== (n + 7) >> 3) v.bad("symbols.pad", `${pad.length} bytes for ${n} rows`);
  if (n % 8 !== 0 && pad[pad.length - 1] >> n % 8 !== 0) v.bad("symbols.pad", "bits past the last row");
  const len = o.nameLen;
  if (!(len instanceof Uint8Array || len instanceof Uint16Array || len instanceof Uint32Array)) return v.bad("symbols.nameLen", "expected an unsigned typed array");
  const chars = o.names;
  if (!(chars instanceof Uint8Array || chars instanceof Uint16Array)) return v.bad("symbols.names", "expected bytes or a Uint16Array");
  // A view into bytes the caller may change: a copy. A Buffer (what msgpackr gives for bytes in
  // Node) as a plain Uint8Array: one shape for the lookups, whatever the runtime.
  const units =
    borrowed !== null && chars.buffer === borrowed
      ? Uint8Array.prototype.slice.call(chars)
      : chars instanceof Uint8Array && chars.constructor !== Uint8Array
        ? new Uint8Array(chars.buffer, chars.byteOffset, chars.length)
        : chars;
  return storedNameBlob(n, pad, len, units);
}

/**
 * `borrowed`: the buffer of bytes the caller may change after the call (null: none): names that
 * are a view into it are copied.
 */
function decodeSymbols(v: V, x: unknown, bodyLen: number, borrowed: ArrayBufferLike | null = null): DecodedSymbols {
  const o = v.obj(x, "symbols");
  const n = v.int(o.n, "symbols.n");
  if (n > bodyLen) fail(SnapshotError.TOO_LARGE, `damaged snapshot: symbols.n declares ${n} symbols in a ${bodyLen}-byte body`, v.file);
  const source = o.source;
  if (source !== "kallsyms" && source !== "system.map") v.bad("symbols.source", "expected kallsyms or system.map");
  const coverage = o.coverage;
  if (coverage !== "full" && coverage !== "subset" && coverage !== "names-only") v.bad("symbols.coverage", "expected full, subset or names-only");
  const objects = v.strs(o.objects, "symbols.objects", n + 1);
  if (objects.length === 0) v.bad("symbols.objects", "empty");
  const blob = o.names !== undefined ? storedNames(v, o, n, borrowed) : frontCodedNames(v, o, n, bodyLen);
  if ("error" in blob) {
    if (blob.tooLarge) fail(SnapshotError.TOO_LARGE, `damaged snapshot: ${blob.error}`, v.file);
    v.bad(blob.error.split(":")[0], blob.error.slice(blob.error.indexOf(":") + 2));
  }
  const objectCol = new Uint32Array(n);
  const typeCol = new Uint8Array(n);
  const addrLo = new Uint32Array(n);
  const addrHi = new Uint32Array(n);
  const hasAddr = o.addrHi !== null && o.addrHi !== undefined;
  if (hasAddr !== (o.addrLo !== null && o.addrLo !== undefined)) v.bad("symbols.addrHi", "address halves must both be present or both absent");
  const nObj = objects.length;
  v.col(() => {
    decodeIntsInto(o.object, objectCol, 0, nObj - 1, "symbols.object");
    decodeIntsInto(o.type, typeCol, 0x21, 0x7e, "symbols.type");
    if (hasAddr) {
      decodeIntsInto(o.addrHi, addrHi, 0, 0xffffffff, "symbols.addrHi");
      decodeIntsInto(o.addrLo, addrLo, 0, 0xffffffff, "symbols.addrLo");
    }
  });
  // With addresses, sizes are computed as for a kallsyms file (here: one pass, no link column).
  let size: Float64Array | null = hasAddr ? symbolSizes(addrLo, addrHi, objectCol, nObj) : null;
  if (!hasAddr) {
    if (o.size === null || o.size === undefined) v.bad("symbols.size", "a table without addresses must carry sizes");
    size = v.col(() => decodeInts(o.size, n, "symbols.size"));
    for (let i = 0; i < n; i++) if (size![i] < 0) v.bad(`symbols.size[${i}]`, "negative size");
  }
  const warnings = v.strs(o.warnings, "symbols.warnings", 1 << 16);
  let sectionRows: SectionRows | null = null;
  if (!hasAddr && o.sectionRows !== null && o.sectionRows !== undefined) {
    const sr = v.obj(o.sectionRows, "symbols.sectionRows");
    sectionRows = { sched: null, lock: null, entry: null, noinstr: null, cpuidle: null, init: null };
    for (const s of SECTION_NAMES) {
      const c = sr[s];
      if (c === null || c === undefined) continue;
      const cn = isObj(c) && typeof c.n === "number" ? c.n : -1;
      const rows = v.col(() => decodeInts(c, v.int(cn, `symbols.sectionRows.${s}.n`, n), `symbols.sectionRows.${s}`));
      const u = new Uint32Array(rows.length);
      rows.forEach((r, k) => {
        if (r < 0 || r >= n) v.bad(`symbols.sectionRows.${s}`, "row out of range");
        u[k] = r;
      });
      sectionRows[s] = u;
    }
  }
  // Sizes, names, the name index, sympos and section bounds: src/symbols/table.ts, each only as
  // far as a check reads it.
  const table = finishTable({ source, names: blob, object: objectCol, objects, type: typeCol, addrLo, addrHi, size });
  table.warnings = warnings;
  if (!hasAddr) {
    // No addresses: sizes are data, section bounds are row sets, address facts are meaningless.
    table.hasAddresses = false;
    table.coverage = "names-only";
    table.text = null;
    table.sections = { sched: null, lock: null, entry: null, noinstr: null, cpuidle: null, init: null };
  } else table.coverage = coverage as SymbolTable["coverage"];
  return { table, sectionRows };
}

/**
 * frames.symRow (format 1.2): per frame row, what resolve's symbolicRow() gave with the file's
 * own table when it was written (-1: not looked up by name), as SymbolHints keyed by (name id,
 * object id, printed size). Each resolved row is checked against the table (its name, object
 * and, when printed, size); rows of one key must agree. An answer of "unresolved", "ambiguous" or
 * "size mismatch" is taken as given: it only makes a task undecided.
 */
function symbolHintsOf(
  v: V,
  x: unknown,
  rows: { symbol: Int32Array; object: Int32Array; size: Uint32Array; flags: Uint16Array },
  R: number,
  strings: string[],
  table: SymbolTable | null,
): SymbolHints {
  const symRow = v.typed(x, Int32Array, R, "frames.symRow");
  if (table === null || !table.hasAddresses) v.bad("frames.symRow", "resolved rows without a symbol table with addresses");
  // Distinct keys, chained per name id: rows of one function differ in offsets, not in the key.
  const head = new Int32Array(strings.length).fill(-1);
  const next = new Int32Array(R);
  const name = new Int32Array(R);
  const object = new Int32Array(R);
  const size = new Float64Array(R);
  const row = new Int32Array(R);
  let m = 0;
  for (let r = 0; r < R; r++) {
    const h = symRow[r];
    if (h === -1) continue;
    const fl = rows.flags[r];
    const sym = rows.symbol[r];
    const obj = rows.object[r];
    if (fl & (FrameFlag.UNPARSED | FrameFlag.INLINE | FrameFlag.BARE_HEX) || sym < 0 || obj < 0) v.bad(`frames.symRow[${r}]`, "a resolved row for a frame resolve does not look up by name");
    const hasSize = (fl & FrameFlag.HAS_SIZE) !== 0;
    const sizeKey = hasSize ? rows.size[r] : -1;
    let e = head[sym];
    while (e >= 0 && (object[e] !== obj || size[e] !== sizeKey)) e = next[e];
    if (e >= 0) {
      if (row[e] !== h) v.bad(`frames.symRow[${r}]`, "rows of one symbol resolve differently");
      continue;
    }
    if (h >= 0) {
      if (h >= table.count) v.bad(`frames.symRow[${r}]`, "symbol row out of range");
      if (table.objects[table.object[h]] !== strings[obj] || !rowHasName(table, h, strings[sym])) v.bad(`frames.symRow[${r}]`, "the symbol row names another symbol");
      if (hasSize && table.size[h] !== rows.size[r]) v.bad(`frames.symRow[${r}]`, "the symbol row's size differs from the printed size");
    } else if (h !== -FrameStatus.UNRESOLVED && h !== -FrameStatus.AMBIGUOUS && h !== -FrameStatus.SIZE_MISMATCH) v.bad(`frames.symRow[${r}]`, "not a row or a resolve status");
    name[m] = sym;
    object[m] = obj;
    size[m] = sizeKey;
    row[m] = h;
    next[m] = head[sym];
    head[sym] = m++;
  }
  return { name: name.subarray(0, m), object: object.subarray(0, m), size: size.subarray(0, m), row: row.subarray(0, m) };
}

/** Byte-wise equality (the Node reader passes a native one). */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface CachedSection extends DecodedSymbols {
  bytes: Uint8Array;
  crc: number;
  /** SHA-256 of `bytes`, once computed (a 1.3 header stated it, or a file asked by digest). */
  digest: Uint8Array | null;
}

/**
 * Decoded symbol sections, reused across decodeSnapshot calls: the hosts of a fleet often share a
 * kernel build, and decoding its 100k-symbol table is most of a small host's cost. Found by
 * content (length, then every byte), or since format 1.3 by the SHA-256 the header states, but
 * only for an entry whose bytes were hashed and matched that digest here: never by a release
 * string, a CRC or a digest no one checked. A hit also skips the section's CRC: the bytes are
 * those that passed it before. Tables from a cache are shared by every snapshot that hit it:
 * read-only.
 */
export class SymbolSectionCache {
  private entries: CachedSection[] = [];
  hits = 0;
  misses = 0;
  constructor(
    readonly capacity = 4,
    private readonly equal: (a: Uint8Array, b: Uint8Array) => boolean = bytesEqual,
  ) {}
  find(bytes: Uint8Array): CachedSection | null {
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i];
      if (e.bytes.length === bytes.length && this.equal(e.bytes, bytes)) return this.hit(i);
    }
    this.misses++;
    return null;
  }
  /** The section of `length` bytes whose SHA-256 was checked to be `digest`, or null (not counted as a miss). */
  findDigest(digest: Uint8Array, length: number): CachedSection | null {
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i];
      if (e.digest !== null && e.bytes.length === length && bytesEqual(e.digest, digest)) return this.hit(i);
    }
    return null;
  }
  /** Whether findDigest(digest, length) would find a section (nothing counted or reordered). */
  holds(digest: Uint8Array, length: number): boolean {
    return this.entries.some((e) => e.digest !== null && e.bytes.length === length && bytesEqual(e.digest, digest));
  }
  private hit(i: number): CachedSection {
    const e = this.entries[i];
    if (i > 0) {
      this.entries.splice(i, 1);
      this.entries.unshift(e);
    }
    this.hits++;
    return e;
  }
  /** `owned`: `bytes` is a copy no one else changes (the table may point into it), kept as is. `digest`: checked against `bytes`. */
  add(bytes: Uint8Array, crc: number, d: DecodedSymbols, owned = false, digest: Uint8Array | null = null): void {
    if (this.capacity <= 0) return;
    this.entries.unshift({ bytes: owned ? bytes : bytes.slice(), crc, table: d.table, sectionRows: d.sectionRows, digest });
    if (this.entries.length > this.capacity) this.entries.length = this.capacity;
  }
  get size(): number {
    return this.entries.length;
  }
}

export interface DecodeOptions {
  /** CRC-32 of a whole byte array, the same function as crc32() but faster (Node: zlib.crc32). */
  crc32?: (bytes: Uint8Array) => number;
  /** Symbol sections decoded before, reused when the bytes are identical (fleet workers). */
  cache?: SymbolSectionCache | null;
  /** SHA-256 (default src/sha256.ts; Node: node:crypto's), for a 1.3 header's symbolsSha256. */
  sha256?: (bytes: Uint8Array) => Uint8Array;
  /**
   * `bytes` end where the symbol section starts (readSnapshotPrefix said so): the section is the
   * one `cache` holds under the digest the header states (E_SNAPSHOT_CORRUPT if it holds none).
   */
  symbolsOmitted?: boolean;
  /**
   * The caller never changes `bytes` after the call (a file read into a buffer of its own): the
   * decoded symbol names may then stay a view into them instead of a copy. Default false (a
   * reused read buffer, or bytes the caller edits).
   */
  keepBytes?: boolean;
  /**
   * Wasm column kernels (src/snapshot/columnKernel.ts; Node: src/node/wasm.ts gives one): the
   * integer columns and symbol sizes decoded there. Without one, the TypeScript kernels.
   */
  columnKernel?: ColumnKernel | null;
}

/** msgpack fixstr "symbols": the key right before the symbol section of a 1.1 body. */
const SYMBOLS_KEY = Uint8Array.of(0xa7, 0x73, 0x79, 0x6d, 0x62, 0x6f, 0x6c, 0x73);

/** The body offset of the symbol section the header points at, when it is plausible. */
function symbolsOffset(body: Uint8Array, hint: unknown): number | null {
  if (!Array.isArray(hint) || hint.length !== 2) return null;
  const [off, len] = hint as unknown[];
  if (typeof off !== "number" || typeof len !== "number" || !Number.isSafeInteger(off) || !Number.isSafeInteger(len)) return null;
  const map = mapHeader(body);
  if (map === null || off < map.at + SYMBOLS_KEY.length || len < 1 || off + len !== body.length) return null;
  for (let k = 0; k < SYMBOLS_KEY.length; k++) if (body[off - SYMBOLS_KEY.length + k] !== SYMBOLS_KEY[k]) return null;
  return off;
}

/** The body's msgpack map header: entry count and where the first key starts. */
function mapHeader(body: Uint8Array): { entries: number; at: number } | null {
  const b0 = body[0];
  if ((b0 & 0xf0) === 0x80) return { entries: b0 & 0x0f, at: 1 };
  if (b0 === 0xde && body.length >= 3) return { entries: (body[1] << 8) | body[2], at: 3 };
  return null; // map32 would mean 65536+ keys: not a snapshot body
}

/**
 * The body's entries before the symbol section, decoded on their own: exactly the map's other
 * keys and values, then the key "symbols" ending at the section. null when the bytes are not
 * that shape (the caller then decodes the whole body, as a 1.0 reader would). Byte strings
 * decode as views into `body` (no copy of the ~100 KB columns of a 100k-task body): nothing the
 * decoder returns keeps one (comms are copied into the task table, typed arrays are always
 * copies), so the caller's bytes may change after the call.
 */
function bodyBeforeSymbols(body: Uint8Array, off: number): Obj | null {
  const map = mapHeader(body);
  if (map === null || map.entries === 0 || map.entries > 64) return null;
  const entries = map.entries;
  let values: unknown[];
  try {
    values = viewPackr.unpackMultiple(body.subarray(map.at, off)) as unknown[];
  } catch {
    return null;
  }
  if (!Array.isArray(values) || values.length !== 2 * entries - 1 || values[values.length - 1] !== "symbols") return null;
  const out: Obj = {};
  for (let i = 0; i + 1 < values.length; i += 2) {
    const key = values[i];
    if (typeof key !== "string" || key === "symbols" || key === "__proto__" || Object.prototype.hasOwnProperty.call(out, key)) return null;
    out[key] = values[i + 1];
  }
  return out;
}

/** GF(2) matrix (32 columns) times a 32-bit vector. */
function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i];
  return sum >>> 0;
}

function gf2Square(sq: Uint32Array, mat: Uint32Array): void {
  for (let i = 0; i < 32; i++) sq[i] = gf2Times(mat, mat[i]);
}

/**
 * The operator that appends `len` zero bytes to a CRC-32 register (zlib's crc32_combine, with
 * the operators it applies to the CRC multiplied into one matrix instead).
 */
function zerosOperator(len: number): Uint32Array {
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0xedb88320;
  for (let i = 1, row = 1; i < 32; i++, row <<= 1) odd[i] = row >>> 0;
  gf2Square(even, odd);
  gf2Square(odd, even);
  let p = new Uint32Array(32);
  for (let i = 0; i < 32; i++) p[i] = (1 << i) >>> 0;
  const apply = (op: Uint32Array): void => {
    const next = new Uint32Array(32);
    for (let i = 0; i < 32; i++) next[i] = gf2Times(op, p[i]);
    p = next;
  };
  do {
    gf2Square(even, odd);
    if (len % 2 === 1) apply(even);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2 === 1) apply(odd);
    len = Math.floor(len / 2);
  } while (len !== 0);
  return p;
}

/** The last length's operator: the hosts of a fleet have sections of one length (one kernel build). */
let zerosLen = -1;
let zerosOp: Uint32Array = new Uint32Array(32);

/** zlib's crc32_combine: the CRC-32 of A‖B from crc(A), crc(B) and B's length. */
export function crc32Combine(crcA: number, crcB: number, lenB: number): number {
  if (lenB <= 0) return crcA >>> 0;
  if (lenB !== zerosLen) {
    zerosOp = zerosOperator(lenB);
    zerosLen = lenB;
  }
  return (gf2Times(zerosOp, crcA >>> 0) ^ crcB) >>> 0;
}

/**
 * Scratch space for the task columns that hold more than one value, reused by every decode in
 * this thread (decoding is synchronous and never nested): a 100k-task snapshot otherwise
 * allocates a short-lived typed array per such column, which is what makes V8 collect. A slot is
 * allocated the first time a column needs it (a /proc text dump needs none: its columns are
 * constants, and pids, tids and stack ids are decoded straight into the task table). Kept up to
 * 256k tasks (2 MB a slot).
 */
const SCRATCH_MAX = 1 << 18;
const scratchSlots: Float64Array[] = [];
/** Slots of the task columns (one per column that can use one). */
const SLOT = { ppid: 0, startTime: 1, cpu: 2, flags: 3, state: 4, patchState: 5, stackStatus: 6, errno: 7, running: 8, statusKthread: 9, endMarker: 10, comm: 11, line: 12, frameLine: 13 } as const;
function scratch(slot: number, n: number): Float64Array | undefined {
  if (n > SCRATCH_MAX) return undefined;
  let a = scratchSlots[slot];
  if (a === undefined || a.length < n) a = scratchSlots[slot] = new Float64Array(Math.min(SCRATCH_MAX, Math.max(1024, 2 ** Math.ceil(Math.log2(n)))));
  return a;
}

/** A decoded task column: its one value when every task has it, else the values. */
type TaskCol = number | Float64Array;

/** Decodes and range-checks a task column (one check for a constant column). */
function taskCol(v: V, c: unknown, T: number, what: string, min: number, max: number, message: string, slot: number): TaskCol {
  const k = constantOf(c, T);
  if (k !== null) {
    if (!(k >= min && k <= max)) v.bad(`tasks.${what}[0]`, message);
    return k;
  }
  // The wasm kernel checks the range as it decodes; else (or when a value is out of it) the
  // TypeScript kernel decodes the column and the loop below names the first bad value.
  const checked = v.col(() => decodeIntsWithin(c, T, `tasks.${what}`, scratch(slot, T), min, max));
  if (checked !== null) return checked;
  const a = v.col(() => decodeInts(c, T, `tasks.${what}`, scratch(slot, T)));
  for (let t = 0; t < a.length; t++) if (!(a[t] >= min && a[t] <= max)) v.bad(`tasks.${what}[${t}]`, message);
  return a;
}

/** A column as values (a constant written out into its scratch slot). */
function expandCol(c: TaskCol, T: number, slot: number): Float64Array {
  if (typeof c !== "number") return c;
  const into = scratch(slot, T);
  const out = into !== undefined ? into.subarray(0, T) : new Float64Array(T);
  return out.fill(c);
}

/**
 * A column read as `a[t & mask]`: the values with mask -1, or a constant as one value with mask
 * 0 (one loop for both shapes, and no column written out).
 */
function indexed(c: TaskCol): { a: Float64Array; mask: number } {
  return typeof c === "number" ? { a: Float64Array.of(c), mask: 0 } : { a: c, mask: -1 };
}

function isLetter(ch: number): boolean {
  return ch === 0 || (ch >= 65 && ch <= 90) || (ch >= 97 && ch <= 122);
}

function checkStates(v: V, c: TaskCol): void {
  if (typeof c === "number") {
    if (!isLetter(c)) v.bad("tasks.state[0]", "not a state letter");
    return;
  }
  for (let t = 0; t < c.length; t++) if (!isLetter(c[t])) v.bad(`tasks.state[${t}]`, "not a state letter");
}

const SHARE_LINES = 1;
const SHARE_ZERO = 2;

/** What the last placeTasks() counted: frames referenced, lines read from `frames.lines`. */
let placedFrames = 0;
let placedLines = 0;

/** Stack status code of the model (TaskTable.stackStatusCode) per code of the file. */
const STATUS_CODE = Uint8Array.from(STACK_STATUSES, (s) => STACK_STATUS_CODE[s]);

/**
 * One pass over the tasks: checks their lines and frame counts, and writes each task's frame
 * count, line and rows into `tasks` (already holding T blank rows) and `frames`. Tasks share
 * rows (Capture.sharedRows): a task whose frames sit on lines line, line+1, … points at its
 * stack's one copy of the rows, marked FrameFlag.SHARED (frameLine() derives each task's lines);
 * tasks whose frames are all on line 0 share unmarked rows; any other task owns its rows.
 *
 * With format 1.2 lines (`steps`), `line` holds each task's step from where the previous task's
 * frames end, and `frameLine` the first frame's line relative to the task's as 1 + zigzag (0:
 * lines stored one by one, in `lines`); before, the lines themselves (`frameLine`: first frame
 * line + 1, or 0). Rows are copied once per shared block, and for other tasks only up to the N
 * frames the body declares (checked as the tasks are read), so a hostile file cannot make the
 * rows outgrow its size. The caller checks the totals (placedFrames, placedLines): the loops are
 * functions that end with their loop, so the code V8 compiles for them while they run stays
 * valid for the next decode (see columns.ts).
 */
function placeTasks(
  v: V,
  tasks: TaskTable,
  frames: FrameColumns,
  rows: FrameRows,
  steps: boolean,
  stack: Int32Array,
  stackLen: Float64Array,
  stackStart: Float64Array,
  stackRows: Float64Array,
  lineCol: TaskCol,
  frameLineCol: TaskCol,
  lines: Float64Array,
  N: number,
): void {
  const S = stackLen.length;
  const { a: lineA, mask: lineM } = indexed(lineCol);
  // Per stack: the start of its shared block of each kind (-1: none yet).
  const blockLines = new Int32Array(S).fill(-1);
  const blockZero = new Int32Array(S).fill(-1);
  placedFrames = 0;
  placedLines = 0;
  placedEnd = 0;
  let t = 0;
  // The shape of a /proc text dump (format 1.2 steps, every task's first frame on the task's own
  // line, no line stored one by one) first: the tasks it fits cost a few reads and writes each.
  if (steps && frameLineCol === 1 && lines.length === 0) t = placeOwnLines(tasks, frames, rows, stack, stackLen, stackStart, stackRows, lineA, lineM, blockLines);
  if (t < stack.length) placeAny(v, t, tasks, frames, rows, steps, stack, stackLen, stackStart, stackRows, lineA, lineM, frameLineCol, lines, N, blockLines, blockZero);
}

/** Where placeOwnLines stopped: the end of the last task's lines (placedFrames: the frames so far). */
let placedEnd = 0;
const NO_LINES = new Float64Array(0);

/**
 * placeAny for tasks whose first frame is on their own line (firstLine 1 + zigzag 0) and no line
 * stored one by one, while each task is one placeAny shares through its stack's marked block
 * (frames, line > 0) or one without frames; returns the first task it did not place (placeAny
 * goes on from there, from placedFrames and placedEnd). Rows are copied once per stack, so the
 * frame total is checked by the caller.
 */
function placeOwnLines(
  tasks: TaskTable,
  frames: FrameColumns,
  rows: FrameRows,
  stack: Int32Array,
  stackLen: Float64Array,
  stackStart: Float64Array,
  stackRows: Float64Array,
  lineA: Float64Array,
  lineM: number,
  blockLines: Int32Array,
): number {
  const T = stack.length;
  const frameStart = tasks.frameStart;
  const frameCount = tasks.frameCount;
  const taskLine = tasks.line;
  // In wasm when the decode in progress has a column kernel (the same loop; the rows of a
  // stack's first task are still copied here).
  const inWasm =
    activeColumnKernel()?.ownLines({
      stack,
      stackLen,
      line: lineA,
      mask: lineM,
      block: blockLines,
      framesLength: () => frames.length,
      copyBlock: (s, ln) => copyRows(frames, rows, stackRows, stackStart[s], stackLen[s], FrameFlag.SHARED, ln, NO_LINES, 0),
      frameStart,
      frameCount,
      taskLine,
    }) ?? null;
  if (inWasm !== null) {
    placedFrames = inWasm.total;
    placedEnd = inWasm.end;
    return inWasm.t;
  }
  let total = 0;
  let end = 0;
  let t = 0;
  for (; t < T; t++) {
    const s = stack[t];
    const n = stackLen[s];
    const ln = end + lineA[t & lineM];
    // placeAny's checks and its choice of a shared block: line and lines in range, and a task
    // with frames on a line above 0 (else placeAny decides).
    if (!(ln >= 0 && ln + n <= 0x100000000 && ln <= 0xffffffff && (n === 0 || ln > 0))) break;
    let start: number;
    if (n === 0) start = frames.length;
    else {
      start = blockLines[s];
      if (start < 0) start = blockLines[s] = copyRows(frames, rows, stackRows, stackStart[s], n, FrameFlag.SHARED, ln, NO_LINES, 0);
    }
    total += n;
    end = ln + n;
    frameStart[t] = start;
    frameCount[t] = n;
    taskLine[t] = ln;
  }
  placedFrames = total;
  placedEnd = end;
  return t;
}

/** Every shape of lines, from task t0 on (placedFrames and placedEnd: the state before it). */
function placeAny(
  v: V,
  t0: number,
  tasks: TaskTable,
  frames: FrameColumns,
  rows: FrameRows,
  steps: boolean,
  stack: Int32Array,
  stackLen: Float64Array,
  stackStart: Float64Array,
  stackRows: Float64Array,
  lineA: Float64Array,
  lineM: number,
  frameLineCol: TaskCol,
  lines: Float64Array,
  N: number,
  blockLines: Int32Array,
  blockZero: Int32Array,
): void {
  const T = stack.length;
  // The first frame's line, relative to the task's line (steps) or absolute: NaN for a task
  // whose lines are stored one by one (the column's 0).
  const { a: firstA, mask: firstM } = indexed(firstLines(frameLineCol, steps));
  const frameStart = tasks.frameStart;
  const frameCount = tasks.frameCount;
  const taskLine = tasks.line;
  const L = lines.length;
  let total = placedFrames;
  let li = 0;
  let end = placedEnd;
  for (let t = t0; t < T; t++) {
    const s = stack[t];
    const n = stackLen[s];
    total += n;
    if (total > N) v.bad("frames.n", `tasks reference more than the ${N} frames the body declares`);
    let ln = lineA[t & lineM];
    let first = firstA[t & firstM];
    if (steps) {
      ln += end;
      if (!(ln >= 0 && ln <= 0xffffffff)) v.bad(`tasks.lineStep[${t}]`, "line out of range");
      end = ln + n;
      first += ln;
      if (first < 0 || first > 0xffffffff) v.bad(`tasks.firstLine[${t}]`, "line out of range");
    }
    let m: number;
    if (first !== first) {
      // Lines stored one by one: shared (unmarked) when all are 0.
      if (li + n > L) v.bad("frames.lines", `fewer lines (${L}) than frames on lines of their own`);
      let zero = n > 0;
      for (let k = 0; k < n && zero; k++) if (lines[li + k] !== 0) zero = false;
      m = zero ? SHARE_ZERO : 0;
    } else {
      // Lines first, first + 1, …
      if (n > 0 && first + n - 1 > 0xffffffff) v.bad(`tasks.frameLine[${t}]`, "out of range");
      m = n > 0 && first === ln && ln > 0 ? SHARE_LINES : n === 1 && first === 0 ? SHARE_ZERO : 0;
    }
    const blocks = m === SHARE_LINES ? blockLines : m === SHARE_ZERO ? blockZero : null;
    let start = blocks === null ? -1 : blocks[s];
    if (start < 0) {
      start = copyRows(frames, rows, stackRows, stackStart[s], n, m === SHARE_LINES ? FrameFlag.SHARED : 0, first, lines, li);
      if (blocks !== null) blocks[s] = start;
    }
    if (first !== first) li += n;
    frameStart[t] = start;
    frameCount[t] = n;
    taskLine[t] = ln;
  }
  placedFrames = total;
  placedLines = li;
}


/**
 * The first-line column as placeTasks reads it: 1 + zigzag of the first frame's line relative
 * to the task's (steps) or the first line + 1, as the line (relative or absolute), NaN for 0
 * (lines stored one by one). A column of values is rewritten in place (its scratch slot).
 */
function firstLines(c: TaskCol, steps: boolean): TaskCol {
  const one = (x: number): number => {
    if (x === 0) return Number.NaN;
    if (!steps) return x - 1;
    const z = x - 1;
    const h = Math.floor(z / 2);
    return h * 2 === z ? h : -(h + 1);
  };
  if (typeof c === "number") return one(c);
  for (let t = 0; t < c.length; t++) c[t] = one(c[t]);
  return c;
}

/**
 * Appends one block of a stack's rows (stackRows[k0 .. k0 + n)) to `frames`, flags | mark, on
 * lines first, first + 1, … or (first NaN) lines[li ..]; returns the block's first row.
 */
function copyRows(frames: FrameColumns, rows: FrameRows, stackRows: Float64Array, k0: number, n: number, mark: number, first: number, lines: Float64Array, li: number): number {
  const start = frames.appendRows(n);
  const hasAddrCols = rows.addrLo !== null && rows.addrHi !== null;
  for (let k = 0, fi = start; k < n; k++, fi++) {
    const r = stackRows[k0 + k];
    frames.symbol[fi] = rows.symbol[r];
    frames.object[fi] = rows.object[r];
    frames.buildId[fi] = rows.buildId[r];
    frames.offset[fi] = rows.offset[r];
    frames.size[fi] = rows.size[r];
    const flags = rows.flags[r];
    frames.flags[fi] = flags | mark;
    if (hasAddrCols && flags & FrameFlag.HAS_ADDRESS) {
      frames.addrLo[fi] = rows.addrLo![r];
      frames.addrHi[fi] = rows.addrHi![r];
    }
    frames.line[fi] = first !== first ? lines[li + k] : first + k;
  }
  return start;
}

/**
 * Decodes a .psnap file. Throws PatchsafeError with one of the SnapshotError codes; never returns
 * a partial model. Tasks with the same stack share frame rows (Capture.sharedRows) wherever their
 * source lines allow it (see frameLine in src/model.ts).
 */
export function decodeSnapshot(bytes: Uint8Array, file = "<snapshot>", opts: DecodeOptions = {}): DecodedSnapshot {
  return withColumnKernel(opts.columnKernel ?? null, () => decodeSnapshotWith(bytes, file, opts));
}

function decodeSnapshotWith(bytes: Uint8Array, file: string, opts: DecodeOptions): DecodedSnapshot {
  const crcOf = opts.crc32 ?? ((b: Uint8Array) => crc32(b));
  const omitted = opts.symbolsOmitted === true;
  const p = readPrefix(bytes, file, crcOf, omitted);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, PREFIX);
  const hBytes = bytes.subarray(PREFIX, PREFIX + p.hLen);
  const bBytes = bytes.subarray(PREFIX + p.hLen, PREFIX + p.hLen + p.bLen);
  if (crcOf(hBytes) !== dv.getUint32(20, true)) fail(SnapshotError.CHECKSUM, "damaged snapshot: the header fails its CRC-32", file);
  const v = new V(file);
  const rawHeader = unpackOrFail(hBytes, "header", file) as Obj;
  const header = checkHeader(v, rawHeader);
  const B = p.bLen;
  const digest = rawHeader.symbolsSha256;
  if (digest !== undefined && digest !== null && !(digest instanceof Uint8Array && digest.length === 32)) v.bad("header.symbolsSha256", "expected 32 bytes");
  // (Each part below is a function of its own: one function of all of them was a large
  // optimizing compile in every fleet worker, paid again on each deoptimization.)
  const { body, sym } = omitted
    ? readBodyWithoutSymbols(v, bBytes, B, rawHeader.symbolsAt, (digest as Uint8Array | null | undefined) ?? null, dv.getUint32(24, true), opts, crcOf)
    : readBody(v, bBytes, rawHeader.symbolsAt, (digest as Uint8Array | null | undefined) ?? null, dv.getUint32(24, true), opts, crcOf);
  const c = v.obj(body.capture, "capture");
  const meta = captureMeta(v, c, B);
  const strings = meta.strings;

  // Tasks: one integer column per field (taskColumns), then frame rows and stacks.
  const tc = v.obj(body.tasks, "tasks");
  const T = v.int(tc.n, "tasks.n");
  if (T > B) fail(SnapshotError.TOO_LARGE, `damaged snapshot: tasks.n declares ${T} tasks in a ${B}-byte body`, file);
  if (T !== header.tasks) v.bad("tasks.n", "differs from the header");
  const cols = taskColumns(v, tc, T, strings.length);
  const fc = v.obj(body.frames, "frames");
  const R = v.int(fc.rows, "frames.rows", B);
  const S = v.int(fc.stacks, "frames.stacks", B);
  const N = v.int(fc.n, "frames.n");
  if (N > MAX_FRAMES_PER_BYTE * B) fail(SnapshotError.TOO_LARGE, `damaged snapshot: frames.n declares ${N} frames in a ${B}-byte body`, file);
  if (N !== header.frames) v.bad("frames.n", "differs from the header");
  const rows = frameRows(v, fc, R, strings.length, header.redacted);
  const hints = fc.symRow === null || fc.symRow === undefined ? null : symbolHintsOf(v, fc.symRow, rows, R, strings, sym?.table ?? null);
  const { stackLen, stackRows, stackStart } = stacksOf(v, fc, S, R, B);
  // Each task's stack id (returned: taskStack).
  const stack = stackIds(v, tc.stack, T, S);
  // Frames on lines of their own (not consecutive from the task's): at most the N frames.
  const nLines = isObj(fc.lines) && typeof fc.lines.n === "number" ? fc.lines.n : -1;
  if (!(nLines >= 0 && nLines <= N)) v.bad("frames.lines", `${nLines} lines for ${N} frames`);
  const lines = v.col(() => decodeInts(fc.lines, nLines, "frames.lines"));
  for (let k = 0; k < lines.length; k++) if (lines[k] < 0 || lines[k] > 0xffffffff) v.bad("frames.lines", "line out of range");

  // The task table and its frame rows, written column by column (nothing is returned before
  // every check below has passed).
  const tasks = new TaskTable(T);
  tasks.appendBlank(T);
  idColumn(v, tc.pid, T, tasks.pid, "pid");
  idColumn(v, tc.tid, T, tasks.tid, "tid");
  const frames = new FrameColumns(Math.max(1, Math.min(N, 2 * stackStart[S])));
  placeTasks(v, tasks, frames, rows, cols.v12Lines, stack, stackLen, stackStart, stackRows, cols.line, cols.frameLine, lines, N);
  if (placedFrames !== N) v.bad("frames.n", `tasks reference ${placedFrames} frames, the body declares ${N}`);
  if (placedLines !== lines.length) v.bad("frames.lines", `${lines.length} lines for ${placedLines} frames on lines of their own`);
  const ss = cols.stackStatus;
  if (typeof ss === "number") {
    if (STATUS_CODE[ss] !== STACK_STATUS_CODE.ok) tasks.stackStatusCode.fill(STATUS_CODE[ss], 0, T);
  } else for (let t = 0; t < T; t++) tasks.stackStatusCode[t] = STATUS_CODE[ss[t]];
  rareFacts(tasks, cols, T, strings);

  if ((sym === null ? null : sym.table.count) !== header.symbols) v.bad("symbols.n", "differs from the header");
  const capture: Capture = {
    source: meta.source,
    host: host(v, v.obj(c.host, "capture.host")),
    complete: v.tri(c.complete, "capture.complete"),
    completeness: v.reasons(c.completeness, "capture.completeness"),
    hidesSchedFrames: v.bool(c.hidesSchedFrames, "capture.hidesSchedFrames"),
    tasks,
    frames,
    sharedRows: true,
    strings: meta.st,
    excluded: meta.excluded,
    warnings: v.reasons(c.warnings, "capture.warnings"),
    livepatches: meta.livepatches,
    modules: meta.modules,
    traceable: null,
  };
  if (c.traceable !== null && c.traceable !== undefined) {
    // A bitset over the symbol rows: without the table it means nothing (a damaged file).
    const table = sym === null ? v.bad("capture.traceable", "a traceable bitset without a symbol table") : sym.table;
    capture.traceable = traceableFromBits(v.typed(c.traceable, Uint8Array, (table.count + 7) >> 3, "capture.traceable").slice(), table);
  }
  if (hints !== null) setSymbolHints(meta.st, sym!.table, hints);
  return { header, capture, symbols: sym === null ? null : sym.table, sectionRows: sym === null ? null : sym.sectionRows, taskStack: stack };
}

/**
 * The body's checksum and entries, and its symbol section: since format 1.1 checked and decoded
 * on its own (from the cache on a hit: its CRC too), else as part of the whole body.
 */
function readBody(
  v: V,
  bBytes: Uint8Array,
  symbolsAt: unknown,
  digest: Uint8Array | null,
  bodyCrc: number,
  opts: DecodeOptions,
  crcOf: (b: Uint8Array) => number,
): { body: Obj; sym: DecodedSymbols | null } {
  const file = v.file;
  const B = bBytes.length;
  const symOff = symbolsOffset(bBytes, symbolsAt);
  let body: Obj | null = null;
  let sym: DecodedSymbols | null = null;
  if (symOff !== null) {
    const section = bBytes.subarray(symOff);
    const hit = opts.cache?.find(section) ?? null;
    // A cached section takes a digest only once its bytes were hashed and matched it: a header
    // stating another digest for the same bytes is damaged (or forged), not believed.
    if (hit !== null && digest !== null) {
      if (hit.digest === null && bytesEqual(sha256Of(opts, hit.bytes), digest)) hit.digest = digest.slice();
      if (hit.digest === null || !bytesEqual(hit.digest, digest)) fail(SnapshotError.CHECKSUM, "damaged snapshot: the symbol section does not match the SHA-256 its header states", file);
    }
    const symCrc = hit !== null ? hit.crc : crcOf(section);
    if (crc32Combine(crcOf(bBytes.subarray(0, symOff)), symCrc, section.length) !== bodyCrc) {
      fail(SnapshotError.CHECKSUM, "damaged snapshot: the body fails its CRC-32", file);
    }
    body = bodyBeforeSymbols(bBytes, symOff);
    if (body !== null) {
      if (hit !== null) sym = hit;
      else {
        // Byte strings decode as views into the section's bytes; the table's names stay one when
        // those bytes outlive it (the cache's own copy, or the caller's bytes when it keeps them
        // unchanged: keepBytes), else they are copied (nothing else of the section is kept).
        const cache = opts.cache !== null && opts.cache !== undefined && opts.cache.capacity > 0 ? opts.cache : null;
        // The digest is what later files are found by (readBodyWithoutSymbols): checked here, once
        // per distinct section, before anything can be found by it.
        if (cache !== null && digest !== null && !bytesEqual(sha256Of(opts, section), digest)) {
          fail(SnapshotError.CHECKSUM, "damaged snapshot: the symbol section does not match the SHA-256 its header states", file);
        }
        const src = cache !== null ? section.slice() : section;
        const keep = cache !== null || opts.keepBytes === true;
        let x: unknown;
        try {
          x = viewPackr.unpack(src);
        } catch {
          body = null; // the whole body decides (and names the error)
        }
        if (body !== null) {
          sym = decodeSymbols(v, x, B, keep ? null : src.buffer);
          cache?.add(src, symCrc, sym, true, digest === null ? null : digest.slice());
        }
      }
    }
  } else if (crcOf(bBytes) !== bodyCrc) fail(SnapshotError.CHECKSUM, "damaged snapshot: the body fails its CRC-32", file);
  if (body === null) {
    body = v.obj(unpackOrFail(bBytes, "body", file), "body");
    sym = body.symbols === null || body.symbols === undefined ? null : decodeSymbols(v, body.symbols, B);
  }
  return { body, sym };
}

function sha256Of(opts: DecodeOptions, bytes: Uint8Array): Uint8Array {
  return (opts.sha256 ?? sha256Ts)(bytes);
}

/**
 * readBody for bytes that end where the symbol section starts (DecodeOptions.symbolsOmitted):
 * the section is the cached one whose bytes were checked against the digest the header states,
 * and the body's CRC-32 is checked as that of the bytes read followed by the cached section's.
 * Every byte the model is decoded from is thus covered by a checksum; the bytes not read are
 * not used.
 */
function readBodyWithoutSymbols(
  v: V,
  before: Uint8Array,
  B: number,
  symbolsAt: unknown,
  digest: Uint8Array | null,
  bodyCrc: number,
  opts: DecodeOptions,
  crcOf: (b: Uint8Array) => number,
): { body: Obj; sym: DecodedSymbols | null } {
  const file = v.file;
  const at = Array.isArray(symbolsAt) && symbolsAt.length === 2 ? (symbolsAt as unknown[]) : null;
  const off = at !== null && typeof at[0] === "number" ? at[0] : -1;
  const len = at !== null && typeof at[1] === "number" ? at[1] : -1;
  if (digest === null || off !== before.length || off + len !== B) v.bad("header.symbolsAt", "the bytes given do not end where the header's symbol section starts");
  const hit = opts.cache?.findDigest(digest, len) ?? null;
  if (hit === null) v.bad("header.symbolsSha256", "no symbol section with this digest was decoded before (read the whole file)");
  if (crc32Combine(crcOf(before), hit.crc, len) !== bodyCrc) fail(SnapshotError.CHECKSUM, "damaged snapshot: the body fails its CRC-32", file);
  // symbolsOffset's checks, on the bytes before the section: the key "symbols" right before it.
  const map = mapHeader(before);
  let ok = map !== null && off >= map.at + SYMBOLS_KEY.length;
  for (let k = 0; ok && k < SYMBOLS_KEY.length; k++) ok = before[off - SYMBOLS_KEY.length + k] === SYMBOLS_KEY[k];
  const body = ok ? bodyBeforeSymbols(before, off) : null;
  if (body === null) v.bad("body", "the entries before the symbol section do not decode on their own");
  return { body, sym: hit };
}

/** The capture's source, string table, excluded threads, enabled patches and modules. */
function captureMeta(
  v: V,
  c: Obj,
  B: number,
): { source: CaptureSource; strings: string[]; st: StringTable; excluded: Capture["excluded"]; livepatches: AppliedPatch[] | null; modules: string[] | null } {
  const so = v.obj(c.source, "capture.source");
  const source: CaptureSource = {
    name: v.str(so.name, "capture.source.name"),
    format: v.str(so.format, "capture.source.format"),
    section: v.int(so.section, "capture.source.section"),
    firstLine: v.intN(so.firstLine, "capture.source.firstLine"),
    lastLine: v.intN(so.lastLine, "capture.source.lastLine"),
  };
  const strings = v.strs(c.strings, "capture.strings", B);
  const st = new StringTable();
  for (let i = 0; i < strings.length; i++) st.intern(strings[i]);
  if (st.values.length !== strings.length) v.bad("capture.strings", "duplicate strings");
  const excluded = mapPacked(v.arr(c.excluded, "capture.excluded", B), (e, i) => {
    const o = v.obj(e, `capture.excluded[${i}]`);
    return { pid: v.int(o.pid, `capture.excluded[${i}].pid`), tid: v.int(o.tid, `capture.excluded[${i}].tid`), reason: v.str(o.reason, `capture.excluded[${i}].reason`) };
  });
  const livepatches = c.livepatches === null || c.livepatches === undefined ? null : validatePatches(v, c.livepatches, "capture.livepatches");
  const modules = c.modules === null || c.modules === undefined ? null : v.strs(c.modules, "capture.modules", B);
  return { source, strings, st, excluded, livepatches, modules };
}

interface TaskColumns {
  comms: Uint8Array[];
  ppid: TaskCol;
  startTime: TaskCol;
  cpu: TaskCol;
  flags: TaskCol;
  state: TaskCol;
  patchState: TaskCol;
  stackStatus: TaskCol;
  errno: TaskCol;
  running: TaskCol;
  statusKthread: TaskCol;
  endMarker: TaskCol;
  comm: TaskCol;
  /** Format 1.2 lines: `line` holds steps, `frameLine` first lines relative to the task's (taskRows). */
  v12Lines: boolean;
  line: TaskCol;
  frameLine: TaskCol;
}

/**
 * The task columns (nullable ones hold v + 1, 0 = null), each checked on its own; a column with
 * one value for every task (most of them: facts nobody captured) is one check and no array.
 * Pids, tids and stack ids are decoded later, straight into the task table (idColumn) and the
 * stack id array.
 */
function taskColumns(v: V, tc: Obj, T: number, nStrings: number): TaskColumns {
  const comms = mapPacked(v.arr(tc.comms, "tasks.comms", T), (x, i) => (x instanceof Uint8Array ? x : v.bad(`tasks.comms[${i}]`, "expected bytes")));
  const MAXS = Number.MAX_SAFE_INTEGER;
  const state = taskCol(v, tc.state, T, "state", 0, 122, "not a state letter", SLOT.state);
  checkStates(v, state);
  // Lines: since format 1.2 as the step from where the previous task's frames end (`lineStep`)
  // and the first frame's line relative to the task's (`firstLine`), both constant for a /proc
  // text dump; before, as the lines themselves (`line`, `frameLine`: first frame line + 1).
  const v12Lines = tc.lineStep !== undefined || tc.firstLine !== undefined;
  return {
    comms,
    ppid: taskCol(v, tc.ppid, T, "ppid", 0, MAXS, "negative value", SLOT.ppid),
    startTime: taskCol(v, tc.startTime, T, "startTime", 0, MAXS, "negative value", SLOT.startTime),
    cpu: taskCol(v, tc.cpu, T, "cpu", 0, MAXS, "negative value", SLOT.cpu),
    flags: taskCol(v, tc.flags, T, "flags", 0, 0x100000000, "out of range", SLOT.flags),
    state,
    patchState: taskCol(v, tc.patchState, T, "patchState", 0, 3, "out of range", SLOT.patchState),
    stackStatus: taskCol(v, tc.stackStatus, T, "stackStatus", 0, STACK_STATUSES.length - 1, "out of range", SLOT.stackStatus),
    errno: taskCol(v, tc.errno, T, "errno", 0, nStrings, "string id out of range", SLOT.errno),
    running: taskCol(v, tc.running, T, "running", -MAXS, MAXS, "out of range", SLOT.running),
    statusKthread: taskCol(v, tc.statusKthread, T, "statusKthread", -MAXS, MAXS, "out of range", SLOT.statusKthread),
    endMarker: taskCol(v, tc.endMarker, T, "endMarker", -MAXS, MAXS, "out of range", SLOT.endMarker),
    comm: taskCol(v, tc.comm, T, "comm", 0, comms.length, "comm id out of range", SLOT.comm),
    v12Lines,
    line: v12Lines ? taskCol(v, tc.lineStep, T, "lineStep", -0xffffffff, 0xffffffff, "out of range", SLOT.line) : taskCol(v, tc.line, T, "line", 0, 0xffffffff, "out of range", SLOT.line),
    frameLine: v12Lines ? taskCol(v, tc.firstLine, T, "firstLine", 0, MAXS, "negative value", SLOT.frameLine) : taskCol(v, tc.frameLine, T, "frameLine", 0, MAXS, "negative value", SLOT.frameLine),
  };
}

type FrameRows = { symbol: Int32Array; object: Int32Array; buildId: Int32Array; offset: Uint32Array; size: Uint32Array; flags: Uint16Array; addrLo: Uint32Array | null; addrHi: Uint32Array | null };

/** The distinct frame rows, their string ids and flags checked. */
function frameRows(v: V, fc: Obj, R: number, nStr: number, redacted: boolean): FrameRows {
  const rows = {
    symbol: v.typed(fc.symbol, Int32Array, R, "frames.symbol"),
    object: v.typed(fc.object, Int32Array, R, "frames.object"),
    buildId: v.typed(fc.buildId, Int32Array, R, "frames.buildId"),
    offset: v.typed(fc.offset, Uint32Array, R, "frames.offset"),
    size: v.typed(fc.size, Uint32Array, R, "frames.size"),
    flags: v.typed(fc.flags, Uint16Array, R, "frames.flags"),
    addrLo: fc.addrLo === null ? null : v.typed(fc.addrLo, Uint32Array, R, "frames.addrLo"),
    addrHi: fc.addrHi === null ? null : v.typed(fc.addrHi, Uint32Array, R, "frames.addrHi"),
  };
  if ((rows.addrLo === null) !== (rows.addrHi === null)) v.bad("frames.addrLo", "address halves must both be present or both absent");
  for (let r = 0; r < R; r++) {
    // FrameFlag.SHARED describes rows in memory, never a file: the decoder sets it itself.
    rows.flags[r] &= ~FrameFlag.SHARED;
    const fl = rows.flags[r];
    if (fl & FrameFlag.SYMBOLIC && (rows.symbol[r] < 0 || rows.symbol[r] >= nStr || rows.object[r] < 0 || rows.object[r] >= nStr)) v.bad(`frames.symbol[${r}]`, "string id out of range");
    if (rows.symbol[r] < -1 || rows.symbol[r] >= nStr || rows.object[r] < -1 || rows.object[r] >= nStr || rows.buildId[r] < -1 || rows.buildId[r] >= nStr) v.bad(`frames[${r}]`, "string id out of range");
    if (fl & FrameFlag.HAS_ADDRESS && rows.addrLo === null) v.bad(`frames.flags[${r}]`, "an address flag without an address column");
    if (redacted && fl & FrameFlag.HAS_ADDRESS) v.bad(`frames.flags[${r}]`, "an address in a redacted snapshot");
  }
  return rows;
}

/**
 * The distinct stacks: each one's length, rows (checked against R) and first entry. Their total
 * length is bounded like the frame count (a run-length column can declare any length in a few
 * bytes: it must not become an allocation).
 */
function stacksOf(v: V, fc: Obj, S: number, R: number, B: number): { stackLen: Float64Array; stackRows: Float64Array; stackStart: Float64Array } {
  const { stackLen, stackRows } = v.col(() => {
    const stackLen = decodeInts(fc.stackLen, S, "frames.stackLen");
    let total = 0;
    for (let s = 0; s < S; s++) {
      if (stackLen[s] < 0) throw new ColumnError("frames.stackLen: negative length");
      total += stackLen[s];
    }
    if (total > MAX_FRAMES_PER_BYTE * B) fail(SnapshotError.TOO_LARGE, `damaged snapshot: frames.stackLen declares ${total} stack entries in a ${B}-byte body`, v.file);
    const srn = isObj(fc.stackRows) && typeof fc.stackRows.n === "number" ? fc.stackRows.n : -1;
    if (total !== srn) throw new ColumnError(`frames.stackRows: ${srn} entries for stacks totalling ${total}`);
    return { stackLen, stackRows: decodeInts(fc.stackRows, total, "frames.stackRows") };
  });
  const stackStart = new Float64Array(S + 1);
  for (let s = 0; s < S; s++) stackStart[s + 1] = stackStart[s] + stackLen[s];
  for (let k = 0; k < stackRows.length; k++) if (stackRows[k] < 0 || stackRows[k] >= R) v.bad("frames.stackRows", "row id out of range");
  return { stackLen, stackRows, stackStart };
}

/** Each task's stack id as an Int32Array, every id checked against the S stacks (one pass). */
function stackIds(v: V, c: unknown, T: number, S: number): Int32Array {
  const stack = new Int32Array(T);
  v.col(() => decodeIndexesInto(c, stack, S - 1, "tasks.stack"));
  return stack;
}

/**
 * A pid or tid column (v + 1, 0 = null) decoded straight into the task table's column (null as
 * NaN), each value checked.
 */
function idColumn(v: V, c: unknown, T: number, out: Float64Array, what: string): void {
  v.col(() => decodeIdsInto(c, out, T, `tasks.${what}`));
}

/** The facts most snapshots hold for no task (/proc text) or for every task (live captures). */
function rareFacts(tasks: TaskTable, cols: TaskColumns, T: number, strings: string[]): void {
  if (cols.state !== 0 || cols.patchState !== 0 || cols.running !== 0 || cols.statusKthread !== 0 || cols.endMarker !== 0) {
    const state = expandCol(cols.state, T, SLOT.state);
    const patchState = expandCol(cols.patchState, T, SLOT.patchState);
    const running = expandCol(cols.running, T, SLOT.running);
    const statusKthread = expandCol(cols.statusKthread, T, SLOT.statusKthread);
    const endMarker = expandCol(cols.endMarker, T, SLOT.endMarker);
    for (let t = 0; t < T; t++) {
      const ch = state[t];
      const ps = patchState[t];
      const sk = statusKthread[t];
      if (ch !== 0 || ps !== 0 || running[t] !== 0 || sk !== 0 || endMarker[t] !== 0) {
        tasks.setFacts(t, ch === 0 ? null : String.fromCharCode(ch), ps === 0 ? null : ((ps - 2) as -1 | 0 | 1), running[t] !== 0, sk === 0 ? null : sk === 2, endMarker[t] !== 0);
      }
    }
  }
  if (cols.flags !== 0 || cols.ppid !== 0 || cols.startTime !== 0 || cols.cpu !== 0) {
    const flags = expandCol(cols.flags, T, SLOT.flags);
    const ppid = expandCol(cols.ppid, T, SLOT.ppid);
    const startTime = expandCol(cols.startTime, T, SLOT.startTime);
    const cpu = expandCol(cols.cpu, T, SLOT.cpu);
    for (let t = 0; t < T; t++) {
      if (flags[t] !== 0 || ppid[t] !== 0 || startTime[t] !== 0 || cpu[t] !== 0) {
        tasks.setNumbers(t, ppid[t] === 0 ? null : ppid[t] - 1, cpu[t] === 0 ? null : cpu[t] - 1, startTime[t] === 0 ? null : startTime[t] - 1, flags[t] === 0 ? null : flags[t] - 1);
      }
    }
  }
  if (cols.errno !== 0) {
    const errno = expandCol(cols.errno, T, SLOT.errno);
    for (let t = 0; t < T; t++) if (errno[t] !== 0) tasks.setErrno(t, strings[errno[t] - 1]);
  }
  if (cols.comm !== 0) {
    const comm = expandCol(cols.comm, T, SLOT.comm);
    const comms = cols.comms;
    for (let t = 0; t < T; t++) if (comm[t] !== 0) tasks.setComm(t, comms[comm[t] - 1]);
  }
}

export type { SymbolSource };
