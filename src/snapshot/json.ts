/**
 * The JSON form of a snapshot (`"format": "patchsafe-snapshot"`), for people and other tools:
 * the same model as the .psnap, described by schema/snapshot.schema.json. Differences from the
 * older native capture JSON (src/ingest/nativeJson.ts, still read as before): a header, source
 * lines, applied livepatches, modules and the symbol table.
 *
 * - comm: a string whose code points U+0000–U+00FF are the raw bytes (JSON escapes the rest).
 * - frames: the kernel's token (`"schedule+0x3d/0xa0"`, `"? foo+0x10/0x40 [mod]"`, `"0xffff…"`)
 *   or an object {text, address?, regs?, inline?, line?}; {unparsed: true} for a line that
 *   could not be read; {bare: true} for a bare-address frame whose address was redacted.
 *   Source lines: a task's `frameLine` L means its frames were lines L, L+1, …; when it is null
 *   each frame object carries its own `line`.
 * - addresses are hex strings (JSON parsers lose precision above 2^53).
 * - symbols: columns in table (kallsyms) order; `addresses` null when redacted, then `sizes`
 *   and `sectionRows` carry what the addresses gave.
 */
import { taskFactsJson } from "../ingest/nativeJson.js";
import { PatchsafeError } from "../errors.js";
import { jsonErrorOffset, lineAt } from "../ingest/jsonPosition.js";
import { encodeLatin1 } from "../ingest/bytes.js";
import { CaptureBuilder, TokenKind } from "../ingest/builder.js";
import { frameText } from "../ingest/nativeJson.js";
import { type Capture, emptyHostFacts, FrameColumns, FrameFlag, frameLine, MAX_COMM_BYTES, framesInTasks, hex64, type Reason, type StackStatus, type Task, TaskTable, type TriState, u64 } from "../model.js";
import { finishTable, type SymbolTable } from "../symbols/table.js";
import { type DecodedSnapshot, prepareExport, validatePatches } from "./psnap.js";
import { traceableBits, traceableFromBits } from "./redact.js";
import { type EncodeOptions, SECTION_NAMES, type SectionRows, SNAPSHOT_FORMAT, SNAPSHOT_MAJOR, SNAPSHOT_MINOR, type SnapshotHeader } from "./model.js";
import { VERSION } from "../version.js";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JObj = { [k: string]: Json };

const STACK_STATUSES: StackStatus[] = ["ok", "empty", "unreadable", "truncated", "vanished"];

/** Cheap sniff: a JSON object naming the snapshot format near its start. */
export function looksLikeSnapshotJson(head: string): boolean {
  return /^\s*\{/.test(head) && head.includes(`"${SNAPSHOT_FORMAT}"`);
}

/** Serializes capture + symbols as the JSON form (deterministic key order, one line per task). */
export function snapshotToJson(original: Capture, originalSymbols: SymbolTable | null, opts: EncodeOptions = {}): string {
  const parts: string[] = [];
  snapshotJsonWriter(original, originalSymbols, opts)((piece) => parts.push(piece));
  return parts.join("");
}

/**
 * snapshotToJson's text in pieces of about 1 MiB, in order: the returned function hands them to
 * `write`. A million-task snapshot is ~400 MB of JSON, which as one string (and an object per
 * task first) took 3.5 GB. Tasks that share rows (Capture.sharedRows) share their frames' JSON,
 * made once per span. What can fail on the input (prepareExport's checks) fails here, before
 * anything is written; the returned function does not throw but for `write`'s own errors.
 */
export function snapshotJsonWriter(original: Capture, originalSymbols: SymbolTable | null, opts: EncodeOptions = {}): (write: (piece: string) => void) => void {
  const prepared = prepareExport(original, originalSymbols, opts);
  return (write) => emitSnapshotJson(prepared, opts, write);
}

function emitSnapshotJson(prepared: ReturnType<typeof prepareExport>, opts: EncodeOptions, write: (piece: string) => void): void {
  const { capture: cap, symbols, sectionRows, redacted, commsHashed } = prepared;
  const f = cap.frames;
  const framesJson = (t: Task, consecutive: boolean): string => {
    const list: Json[] = [];
    for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
      const flags = f.flags[i];
      const o: JObj = {};
      if (flags & FrameFlag.UNPARSED) o.unparsed = true;
      else if (flags & FrameFlag.BARE_HEX && !(flags & FrameFlag.HAS_ADDRESS)) {
        o.bare = true;
        if (flags & FrameFlag.GUESS) o.guess = true;
      } else {
        o.text = frameText(cap, i);
        if (flags & FrameFlag.HAS_ADDRESS && !(flags & FrameFlag.BARE_HEX)) o.address = hex64(u64(f.addrLo[i], f.addrHi[i]));
      }
      if (flags & FrameFlag.REGS) o.regs = true;
      if (flags & FrameFlag.INLINE) o.inline = true;
      if (!consecutive) o.line = frameLine(cap, t, i);
      const keys = Object.keys(o);
      list.push(keys.length === 1 && keys[0] === "text" ? (o.text as string) : o);
    }
    return JSON.stringify(list);
  };
  // Frames JSON per first row of a span whose tasks all saw it on consecutive lines (a shared
  // span's lines are always consecutive: frameLine); keyed by row, checked by count.
  const bySpan = new Map<number, { count: number; json: string }>();
  const host = cap.host;
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
    complete: cap.complete,
    tasks: cap.tasks.length,
    frames: framesInTasks(cap),
    symbols: symbols === null ? null : symbols.count,
    redacted,
    commsHashed,
    source: { name: cap.source.name, format: cap.source.format },
  };
  const capture = {
    source: cap.source,
    host: cap.host,
    complete: cap.complete,
    completeness: cap.completeness,
    hidesSchedFrames: cap.hidesSchedFrames,
    excluded: cap.excluded,
    warnings: cap.warnings,
    livepatches: cap.livepatches,
    modules: cap.modules,
    // available_filter_functions as a bitset over the symbol rows, in hex (absent: not recorded).
    ...(() => {
      const bits = traceableBits(cap.traceable, symbols);
      return bits === null ? {} : { traceable: Array.from(bits, (b) => b.toString(16).padStart(2, "0")).join("") };
    })(),
  } as unknown as JObj;
  // Tasks one per line: diffable, and big snapshots stay greppable.
  const head = JSON.stringify({ format: SNAPSHOT_FORMAT, version: SNAPSHOT_MAJOR, minor: SNAPSHOT_MINOR, header, capture } as unknown as JObj, null, 1);
  let buf = `${head.slice(0, head.lastIndexOf("}")).trimEnd()},\n "tasks": [\n`;
  const n = cap.tasks.length;
  for (let k = 0; k < n; k++) {
    const t = cap.tasks.get(k);
    // Lines as this task saw them: rows may be shared (Capture.sharedRows).
    const first = t.frameCount > 0 ? frameLine(cap, t, t.frameStart) : 0;
    let consecutive = t.frameCount > 0;
    for (let j = 1; j < t.frameCount && consecutive; j++) if (frameLine(cap, t, t.frameStart + j) !== first + j) consecutive = false;
    let list: string;
    if (consecutive) {
      const memo = bySpan.get(t.frameStart);
      if (memo !== undefined && memo.count === t.frameCount) list = memo.json;
      else bySpan.set(t.frameStart, { count: t.frameCount, json: (list = framesJson(t, true)) });
    } else list = framesJson(t, false);
    // The object's keys in the order they always had: the task's facts, line, frameLine, frames.
    const facts = JSON.stringify({ ...taskFactsJson(t), line: t.line, frameLine: consecutive ? first : null });
    buf += `  ${facts.slice(0, -1)},"frames":${list}}${k + 1 < n ? "," : ""}\n`;
    if (buf.length >= 1 << 20) {
      write(buf);
      buf = "";
    }
  }
  write(`${buf} ],\n "symbols": `);
  writeSymbolsJson(symbols, sectionRows, write);
  write("\n}\n");
}

/** The symbols member's value (JSON.stringify's text of it), the long columns in pieces. */
function writeSymbolsJson(t: SymbolTable | null, sectionRows: SectionRows | null, write: (piece: string) => void): void {
  if (t === null) {
    write("null");
    return;
  }
  const sym: JObj = {
    source: t.source,
    coverage: t.coverage,
    objects: t.objects,
    object: Array.from(t.object),
    types: Array.from(t.type, (c) => String.fromCharCode(c)).join(""),
    names: t.names,
    addresses: t.hasAddresses ? Array.from({ length: t.count }, (_, i) => hex64(u64(t.addrLo[i], t.addrHi[i]))) : null,
    sizes: t.hasAddresses ? null : Array.from(t.size),
    sectionRows:
      t.hasAddresses || sectionRows === null ? null : Object.fromEntries(SECTION_NAMES.map((s) => [s, sectionRows[s] === null ? null : Array.from(sectionRows[s]!)])),
    warnings: t.warnings,
  };
  write(JSON.stringify(sym));
}

export function parseSnapshotJson(text: string, file = "<input>"): DecodedSnapshot {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (e) {
    // Named by line, as the capture JSON's errors are (JSON.parse gives at most an offset).
    const at = jsonErrorOffset(text);
    throw new PatchsafeError("E_INPUT", `not valid JSON: ${(e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 120)}`, { file, line: at === null ? undefined : lineAt(text, at) });
  }
  const tasks = doc !== null && typeof doc === "object" && !Array.isArray(doc) ? doc.tasks : undefined;
  return snapshotFromDoc(doc, Array.isArray(tasks) ? tasks : null, file);
}

/**
 * The JSON form from its bytes: a document laid out as snapshotJsonWriter writes it (the head,
 * one task per line, the symbols) is read a line at a time, so neither the text nor the whole
 * document is ever held (a million tasks are ~400 MB of JSON, beyond V8's longest string at
 * ~1.3M); any other layout is parsed whole, as parseSnapshotJson does. Same model, same errors
 * (a task line that is not JSON names its line).
 */
export function parseSnapshotJsonBytes(bytes: Uint8Array, file = "<input>", maxWhole = 512 * 2 ** 20 - 64): DecodedSnapshot {
  const lines = snapshotJsonLines(bytes, file);
  if (lines !== null) return snapshotFromDoc(lines.head, lines.tasks, file);
  if (bytes.length > maxWhole) {
    throw new PatchsafeError("E_SNAPSHOT_TOO_LARGE", `a JSON snapshot of ${(bytes.length / 2 ** 20).toFixed(0)} MiB, not laid out one task per line as patchsafe writes it, is larger than the 512 MiB a JSON document can be read whole in`, { file });
  }
  return parseSnapshotJson(new TextDecoder("utf-8").decode(bytes), file);
}

/** `"tasks": [` on a line of its own, as snapshotJsonWriter writes it after the head. */
const TASKS_LINE = ' "tasks": [';
const SYMBOLS_START = ' "symbols": ';

/**
 * The head (with `symbols` in it) and the tasks, one JSON.parse per task line, of a document in
 * snapshotJsonWriter's layout; null when the bytes are not laid out so (then nothing was parsed
 * that matters: the caller parses the whole).
 */
function snapshotJsonLines(bytes: Uint8Array, file: string): { head: Json; tasks: Iterable<Json> } | null {
  const dec = new TextDecoder("utf-8", { fatal: false });
  const n = bytes.length;
  const lineEnd = (from: number): number => {
    const e = bytes.indexOf(0x0a, from);
    return e < 0 ? n : e;
  };
  // The head: every line up to the tasks line (the line before it ends with the comma that
  // separates the capture from the tasks).
  let at = 0;
  let tasksAt = -1;
  for (let lineNo = 0; at < n && lineNo < 100_000; lineNo++) {
    const e = lineEnd(at);
    if (e - at === TASKS_LINE.length && dec.decode(bytes.subarray(at, e)) === TASKS_LINE) {
      tasksAt = at;
      break;
    }
    at = e + 1;
  }
  if (tasksAt < 0) return null;
  const headText = dec.decode(bytes.subarray(0, tasksAt)).trimEnd();
  if (!headText.endsWith(",")) return null;
  let head: Json;
  try {
    head = JSON.parse(`${headText.slice(0, -1)}}`) as Json;
  } catch {
    return null;
  }
  if (head === null || typeof head !== "object" || Array.isArray(head) || "tasks" in head || "symbols" in head) return null;
  // The tasks' lines, and where the symbols start: checked before any task is decoded.
  const first = lineEnd(tasksAt) + 1;
  let end = first;
  let line = 1;
  for (let i = 0; i < tasksAt; i++) if (bytes[i] === 0x0a) line++;
  const firstLine = line + 1;
  for (;;) {
    if (end >= n) return null;
    const e = lineEnd(end);
    if (bytes[end] === 0x20 && bytes[end + 1] === 0x5d) {
      // ` ],` then ` "symbols": …` on the next line, then `}`.
      if (dec.decode(bytes.subarray(end, e)) !== " ],") return null;
      const symAt = e + 1;
      const symEnd = lineEnd(symAt);
      const symLine = dec.decode(bytes.subarray(symAt, symEnd));
      if (!symLine.startsWith(SYMBOLS_START)) return null;
      if (dec.decode(bytes.subarray(symEnd)).trim() !== "}") return null;
      try {
        (head as JObj).symbols = JSON.parse(symLine.slice(SYMBOLS_START.length)) as Json;
      } catch {
        return null;
      }
      break;
    }
    end = e + 1;
  }
  const tasksEnd = end;
  function* tasks(): Generator<Json> {
    let p = first;
    let ln = firstLine;
    while (p < tasksEnd) {
      const e = lineEnd(p);
      let text = dec.decode(bytes.subarray(p, e)).trim();
      if (text.endsWith(",")) text = text.slice(0, -1);
      let t: Json;
      try {
        t = JSON.parse(text) as Json;
      } catch (err) {
        throw new PatchsafeError("E_INPUT", `a task that is not valid JSON: ${(err instanceof Error ? err.message : String(err)).split("\n")[0].slice(0, 120)}`, { file, line: ln });
      }
      yield t;
      p = e + 1;
      ln++;
    }
  }
  return { head, tasks: tasks() };
}

/** The model from a parsed head (format, header, capture, symbols) and its tasks (null: not an array). */
function snapshotFromDoc(doc: Json, taskList: Iterable<Json> | null, file: string): DecodedSnapshot {
  const bad = (path: string, what: string): never => {
    throw new PatchsafeError("E_INPUT", `${path}: ${what}`, { file });
  };
  const obj = (v: Json | undefined, path: string): JObj => (v !== null && typeof v === "object" && !Array.isArray(v) ? v : bad(path, "expected an object"));
  const arr = (v: Json | undefined, path: string): Json[] => (Array.isArray(v) ? v : bad(path, "expected an array"));
  const str = (v: Json | undefined, path: string): string => (typeof v === "string" ? v : bad(path, "expected a string"));
  const strN = (v: Json | undefined, path: string): string | null => (v === null || v === undefined ? null : str(v, path));
  const bool = (v: Json | undefined, path: string): boolean => (typeof v === "boolean" ? v : bad(path, "expected a boolean"));
  const boolN = (v: Json | undefined, path: string): boolean | null => (v === null || v === undefined ? null : bool(v, path));
  const int = (v: Json | undefined, path: string): number => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : bad(path, "expected a non-negative integer"));
  const intN = (v: Json | undefined, path: string): number | null => (v === null || v === undefined ? null : int(v, path));
  const tri = (v: Json | undefined, path: string): TriState => (v === true || v === false || v === "unknown" ? v : bad(path, 'expected true, false or "unknown"'));
  const reasons = (v: Json | undefined, path: string): Reason[] =>
    mapPacked(arr(v, path), (r, i) => {
      const o = obj(r, `${path}[${i}]`);
      return { code: str(o.code, `${path}[${i}].code`), message: str(o.message, `${path}[${i}].message`) };
    });

  const d = obj(doc, "$");
  if (d.format !== SNAPSHOT_FORMAT) bad("$.format", `expected "${SNAPSHOT_FORMAT}"`);
  const major = int(d.version, "$.version");
  if (major > SNAPSHOT_MAJOR) {
    throw new PatchsafeError("E_SNAPSHOT_VERSION", `snapshot format ${major} is newer than this patchsafe reads (≤ ${SNAPSHOT_MAJOR}): upgrade patchsafe`, { file });
  }
  const h = obj(d.header, "$.header");
  const hs = obj(h.source, "$.header.source");
  const header: SnapshotHeader = {
    format: SNAPSHOT_FORMAT,
    major: int(h.major, "$.header.major"),
    minor: int(h.minor, "$.header.minor"),
    producer: str(h.producer, "$.header.producer"),
    capturedAt: strN(h.capturedAt, "$.header.capturedAt"),
    hostname: strN(h.hostname, "$.header.hostname"),
    release: strN(h.release, "$.header.release"),
    bootId: strN(h.bootId, "$.header.bootId"),
    arch: strN(h.arch, "$.header.arch"),
    complete: tri(h.complete, "$.header.complete"),
    tasks: int(h.tasks, "$.header.tasks"),
    frames: int(h.frames, "$.header.frames"),
    symbols: intN(h.symbols, "$.header.symbols"),
    redacted: bool(h.redacted, "$.header.redacted"),
    commsHashed: bool(h.commsHashed, "$.header.commsHashed"),
    source: { name: str(hs.name, "$.header.source.name"), format: str(hs.format, "$.header.source.format") },
  };

  const c = obj(d.capture, "$.capture");
  const so = obj(c.source, "$.capture.source");
  const ho = obj(c.host, "$.capture.host");
  const host = emptyHostFacts();
  host.bootId = strN(ho.bootId, "$.capture.host.bootId");
  host.release = strN(ho.release, "$.capture.host.release");
  host.arch = strN(ho.arch, "$.capture.host.arch");
  host.hostname = strN(ho.hostname, "$.capture.host.hostname");
  host.capturedAt = strN(ho.capturedAt, "$.capture.host.capturedAt");
  host.capSysAdmin = boolN(ho.capSysAdmin, "$.capture.host.capSysAdmin");
  host.initPidNamespace = boolN(ho.initPidNamespace, "$.capture.host.initPidNamespace");
  const co = obj(ho.config, "$.capture.host.config");
  // Required (null = unknown), as the schema says: a fact left out must not read as a fact known
  // to be harmless. An absent reliableStacktrace was "not false", i.e. reliable, with no warning;
  // an absent livepatch hid a kernel without CONFIG_LIVEPATCH.
  for (const k of ["livepatch", "reliableStacktrace", "unwinder"]) if (!(k in co)) bad(`$.capture.host.config.${k}`, "missing (null when unknown)");
  host.config.livepatch = boolN(co.livepatch, "$.capture.host.config.livepatch");
  host.config.reliableStacktrace = boolN(co.reliableStacktrace, "$.capture.host.config.reliableStacktrace");
  const u = co.unwinder ?? null;
  if (u !== null && u !== "orc" && u !== "frame-pointer" && u !== "other") bad("$.capture.host.config.unwinder", "expected orc, frame-pointer, other or null");
  host.config.unwinder = u as HostUnwinder;

  const b = new CaptureBuilder();
  if (taskList === null) bad("$.tasks", "expected an array");
  let ti = -1;
  for (const tj of taskList!) {
    ti++;
    const p = `$.tasks[${ti}]`;
    const t = obj(tj, p);
    const commStr = strN(t.comm, `${p}.comm`);
    if (commStr !== null && commStr.length > MAX_COMM_BYTES) bad(`${p}.comm`, `${commStr.length} bytes: a task name is at most ${MAX_COMM_BYTES}`);
    if (commStr !== null) for (let i = 0; i < commStr.length; i++) if (commStr.charCodeAt(i) > 0xff) bad(`${p}.comm`, "code points above U+00FF cannot be comm bytes");
    const state = strN(t.state, `${p}.state`);
    if (state !== null && !/^[A-Za-z]$/.test(state)) bad(`${p}.state`, "expected one state letter");
    // Required (null = unknown): 0 or 1 on any task says a transition is in progress, which
    // keeps the verdict from being safe; an absent one read as null dropped that.
    // So are the other facts (null = unknown): an absent state hid a task in state R (running).
    for (const k of ["pid", "tid", "comm", "state", "flags", "ppid", "startTime", "cpu", "patchState", "errno", "statusKthread", "frameLine"]) if (!(k in t)) bad(`${p}.${k}`, "missing (null when unknown)");
    const ps = t.patchState ?? null;
    if (ps !== null && ps !== -1 && ps !== 0 && ps !== 1) bad(`${p}.patchState`, "expected -1, 0, 1 or null");
    const status = str(t.stackStatus, `${p}.stackStatus`) as StackStatus;
    if (!STACK_STATUSES.includes(status)) bad(`${p}.stackStatus`, `expected one of ${STACK_STATUSES.join(", ")}`);
    const line = int(t.line, `${p}.line`);
    const frameLine = intN(t.frameLine, `${p}.frameLine`);
    const task: Partial<Task> = {
      pid: intN(t.pid, `${p}.pid`),
      tid: intN(t.tid, `${p}.tid`),
      comm: commStr === null ? null : encodeLatin1(commStr),
      state,
      flags: intN(t.flags, `${p}.flags`),
      ppid: intN(t.ppid, `${p}.ppid`),
      startTime: intN(t.startTime, `${p}.startTime`),
      cpu: intN(t.cpu, `${p}.cpu`),
      patchState: ps as Task["patchState"],
      stackStatus: status,
      errno: strN(t.errno, `${p}.errno`),
      running: bool(t.running, `${p}.running`),
      statusKthread: boolN(t.statusKthread, `${p}.statusKthread`),
      endMarker: bool(t.endMarker, `${p}.endMarker`),
    };
    const started = b.startTask(task, line);
    arr(t.frames, `${p}.frames`).forEach((fj, k) => {
      const fp = `${p}.frames[${k}]`;
      const o: JObj = typeof fj === "string" ? { text: fj } : obj(fj, fp);
      const fline = frameLine !== null ? frameLine + k : int(o.line, `${fp}.line`);
      let extra = 0;
      if (o.regs === true) extra |= FrameFlag.REGS;
      if (o.inline === true) extra |= FrameFlag.INLINE;
      if (o.unparsed === true) {
        b.addUnparsed(fline);
        b.frames.flags[b.frames.length - 1] |= extra;
        return;
      }
      if (o.bare === true) {
        const i = b.frames.push();
        b.frames.flags[i] = FrameFlag.BARE_HEX | extra | (o.guess === true ? FrameFlag.GUESS : 0);
        b.frames.line[i] = fline;
        return;
      }
      const text = str(o.text, `${fp}.text`);
      let addr: bigint | null = null;
      if (o.address !== undefined && o.address !== null) {
        if (typeof o.address !== "string" || !/^0x[0-9a-fA-F]{1,16}$/.test(o.address)) bad(`${fp}.address`, "expected a hex string 0x…");
        addr = BigInt(o.address as string);
      }
      const bytes = encodeLatin1(text);
      const kind = b.addToken(bytes, 0, bytes.length, fline, addr !== null, addr === null ? 0 : Number(addr & 0xffffffffn), addr === null ? 0 : Number(addr >> 32n), extra);
      if (kind !== TokenKind.Frame) bad(fp, `not a frame token: ${JSON.stringify(text)}`);
    });
    // The file's status wins over endTask()'s "empty" for a task without frames.
    b.endTask(undefined, (t) => {
      t.stackStatus = status;
    });
  }
  // One task per line: a lost or added line must not pass as a smaller or larger host.
  if (ti + 1 !== header.tasks) {
    throw new PatchsafeError("E_SNAPSHOT_CORRUPT", `$.header.tasks: the header says ${header.tasks} task(s), the file holds ${ti + 1}`, { file });
  }
  const capture = b.finish({
    name: str(so.name, "$.capture.source.name"),
    format: str(so.format, "$.capture.source.format"),
    section: int(so.section, "$.capture.source.section"),
    firstLine: intN(so.firstLine, "$.capture.source.firstLine"),
    lastLine: intN(so.lastLine, "$.capture.source.lastLine"),
  });
  capture.host = host;
  capture.complete = tri(c.complete, "$.capture.complete");
  capture.completeness = reasons(c.completeness, "$.capture.completeness");
  capture.hidesSchedFrames = bool(c.hidesSchedFrames, "$.capture.hidesSchedFrames");
  capture.warnings = reasons(c.warnings, "$.capture.warnings");
  capture.excluded = mapPacked(arr(c.excluded, "$.capture.excluded"), (e, i) => {
    const o = obj(e, `$.capture.excluded[${i}]`);
    return { pid: int(o.pid, `$.capture.excluded[${i}].pid`), tid: int(o.tid, `$.capture.excluded[${i}].tid`), reason: str(o.reason, `$.capture.excluded[${i}].reason`) };
  });
  capture.livepatches = c.livepatches === null || c.livepatches === undefined ? null : validatePatches({ bad }, c.livepatches, "$.capture.livepatches");
  capture.modules = c.modules === null || c.modules === undefined ? null : mapPacked(arr(c.modules, "$.capture.modules"), (m, i) => str(m, `$.capture.modules[${i}]`));

  let symbols: SymbolTable | null = null;
  let sectionRows: SectionRows | null = null;
  if (d.symbols !== null && d.symbols !== undefined) {
    const s = obj(d.symbols, "$.symbols");
    const source = s.source;
    if (source !== "kallsyms" && source !== "system.map") bad("$.symbols.source", "expected kallsyms or system.map");
    const coverage = s.coverage;
    if (coverage !== "full" && coverage !== "subset" && coverage !== "names-only") bad("$.symbols.coverage", "expected full, subset or names-only");
    const objects = mapPacked(arr(s.objects, "$.symbols.objects"), (o, i) => str(o, `$.symbols.objects[${i}]`));
    const names = arr(s.names, "$.symbols.names").map((n, i) => {
      const v = str(n, `$.symbols.names[${i}]`);
      return v.length > 0 ? v : bad(`$.symbols.names[${i}]`, "empty name");
    });
    const n = names.length;
    const objCol = arr(s.object, "$.symbols.object");
    if (objCol.length !== n) bad("$.symbols.object", `${objCol.length} entries for ${n} names`);
    const object = new Uint32Array(n);
    objCol.forEach((o, i) => {
      const v = int(o, `$.symbols.object[${i}]`);
      object[i] = v < objects.length ? v : bad(`$.symbols.object[${i}]`, "object index out of range");
    });
    const types = str(s.types, "$.symbols.types");
    if (types.length !== n || !/^[\x21-\x7e]*$/.test(types)) bad("$.symbols.types", `expected ${n} type letters`);
    const type = Uint8Array.from(types, (ch) => ch.charCodeAt(0));
    const addrLo = new Uint32Array(n);
    const addrHi = new Uint32Array(n);
    const addresses = s.addresses === null || s.addresses === undefined ? null : arr(s.addresses, "$.symbols.addresses");
    if (addresses !== null) {
      if (addresses.length !== n) bad("$.symbols.addresses", `${addresses.length} entries for ${n} names`);
      addresses.forEach((a, i) => {
        if (typeof a !== "string" || !/^0x[0-9a-fA-F]{1,16}$/.test(a)) bad(`$.symbols.addresses[${i}]`, "expected a hex string 0x…");
        const v = BigInt(a as string);
        addrLo[i] = Number(v & 0xffffffffn);
        addrHi[i] = Number(v >> 32n);
      });
    }
    symbols = finishTable({ source: source as SymbolTable["source"], names, object, objects, type, addrLo, addrHi });
    symbols.warnings = mapPacked(arr(s.warnings, "$.symbols.warnings"), (w, i) => str(w, `$.symbols.warnings[${i}]`));
    if (addresses === null) {
      const sizes = arr(s.sizes, "$.symbols.sizes");
      if (sizes.length !== n) bad("$.symbols.sizes", `${sizes.length} entries for ${n} names`);
      sizes.forEach((z, i) => {
        symbols!.size[i] = int(z, `$.symbols.sizes[${i}]`);
      });
      symbols.hasAddresses = false;
      symbols.coverage = "names-only";
      symbols.text = null;
      for (const k of SECTION_NAMES) symbols.sections[k] = null;
      if (s.sectionRows !== null && s.sectionRows !== undefined) {
        const sr = obj(s.sectionRows, "$.symbols.sectionRows");
        sectionRows = { sched: null, lock: null, entry: null, noinstr: null, cpuidle: null, init: null };
        for (const k of SECTION_NAMES) {
          if (sr[k] === null || sr[k] === undefined) continue;
          sectionRows[k] = Uint32Array.from(
            arr(sr[k], `$.symbols.sectionRows.${k}`).map((r, i) => {
              const v = int(r, `$.symbols.sectionRows.${k}[${i}]`);
              return v < n ? v : bad(`$.symbols.sectionRows.${k}[${i}]`, "row out of range");
            }),
          );
        }
      }
    } else symbols.coverage = coverage as SymbolTable["coverage"];
  }
  if (c.traceable !== null && c.traceable !== undefined) {
    const hex = str(c.traceable, "$.capture.traceable");
    if (symbols === null) bad("$.capture.traceable", "a traceable bitset without a symbol table");
    if (hex.length !== 2 * ((symbols!.count + 7) >> 3) || !/^[0-9a-f]*$/.test(hex)) bad("$.capture.traceable", `expected ${(symbols!.count + 7) >> 3} bytes in hex`);
    const bits = new Uint8Array(hex.length / 2);
    for (let i = 0; i < bits.length; i++) bits[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    capture.traceable = traceableFromBits(bits, symbols!);
  }
  const taskStack = stackIds(capture);
  return { header, capture: shareRows(capture, taskStack), symbols, sectionRows, taskStack };
}

type HostUnwinder = ReturnType<typeof emptyHostFacts>["config"]["unwinder"];

/** Array.prototype.map, but always a packed array (see mapPacked in psnap.ts). */
function mapPacked<T, U>(a: T[], fn: (x: T, i: number) => U): U[] {
  const out: U[] = [];
  for (let i = 0; i < a.length; i++) out.push(fn(a[i], i));
  return out;
}

/**
 * The capture with tasks of one stack sharing one copy of its frame rows (Capture.sharedRows),
 * as the binary decoder produces: a task whose frames sit on lines line, line+1, … points at its
 * stack's rows (marked FrameFlag.SHARED), tasks whose frames are all on line 0 share unmarked
 * rows, any other task keeps rows of its own.
 */
export function shareRows(cap: Capture, taskStack: Int32Array): Capture {
  const f = cap.frames;
  const T = cap.tasks.length;
  const LINES = 1;
  const ZERO = 2;
  const mode = new Uint8Array(T);
  let stacks = 0;
  for (let t = 0; t < T; t++) {
    stacks = Math.max(stacks, taskStack[t] + 1);
    const task = cap.tasks.get(t);
    if (task.frameCount === 0) continue;
    let zero = true;
    let follows = task.line > 0;
    for (let k = 0; k < task.frameCount; k++) {
      const l = frameLine(cap, task, task.frameStart + k);
      if (l !== 0) zero = false;
      if (l !== task.line + k) follows = false;
    }
    mode[t] = zero ? ZERO : follows ? LINES : 0;
  }
  const blocks = [new Int32Array(stacks).fill(-1), new Int32Array(stacks).fill(-1)];
  const out = new FrameColumns(Math.max(16, f.length));
  const tasks = TaskTable.from(cap.tasks.map((task, t) => {
    const m = mode[t];
    const b = m === 0 ? null : blocks[m - 1];
    const s = taskStack[t];
    if (b !== null && b[s] >= 0) return { ...task, frameStart: b[s] };
    const start = out.length;
    const mark = m === LINES ? FrameFlag.SHARED : 0;
    for (let k = 0; k < task.frameCount; k++) {
      const i = task.frameStart + k;
      out.pushCopy(f, i, frameLine(cap, task, i), (f.flags[i] & ~FrameFlag.SHARED) | mark);
    }
    if (b !== null) b[s] = start;
    return { ...task, frameStart: task.frameCount === 0 ? out.length : start };
  }));
  return { ...cap, tasks, frames: out, sharedRows: true };
}

/** Distinct-stack id per task (see DecodedSnapshot.taskStack), computed from the frames. */
function stackIds(cap: Capture): Int32Array {
  const f = cap.frames;
  const ids = new Map<string, number>();
  const out = new Int32Array(cap.tasks.length);
  cap.tasks.forEach((t, i) => {
    const parts: string[] = [];
    for (let k = t.frameStart; k < t.frameStart + t.frameCount; k++) {
      const addr = f.flags[k] & FrameFlag.HAS_ADDRESS ? `${f.addrLo[k]}:${f.addrHi[k]}` : "";
      parts.push(`${cap.strings.get(f.symbol[k]) ?? ""}|${f.object[k] < 0 ? "" : cap.strings.get(f.object[k])}|${f.buildId[k] < 0 ? "" : cap.strings.get(f.buildId[k])}|${f.offset[k]}|${f.size[k]}|${f.flags[k] & ~FrameFlag.SHARED}|${addr}`);
    }
    const key = parts.join("\n");
    let id = ids.get(key);
    if (id === undefined) ids.set(key, (id = ids.size));
    out[i] = id;
  });
  return out;
}
