/**
 * Input format detection and the one entry point for every stack-dump format (SPEC §6):
 * `--format auto` looks at the first 64 KiB of a file and picks a parser; `--format NAME` forces
 * one. A kernel log may hold several dumps: the dmesg parser returns one capture per section.
 *
 *   FORMAT_NAMES          the names `--format` accepts
 *   detectFormat(head)    the name auto-detection picks for a file's first bytes
 *   createCaptureParser   a streaming parser: push(chunk)…, finish() → Capture[]
 *   parseCaptures         the same over bytes (or chunks) held in memory
 */
import { PatchsafeError } from "../errors.js";
import type { Capture } from "../model.js";
import { CH, latin1, LineSplitter } from "./bytes.js";
import { CrashParser } from "./crash.js";
import { type DmesgKind, DmesgParser } from "./dmesg.js";
import { stripEnvelope } from "./envelope.js";
import { looksLikeNativeJson, parseNativeJson } from "./nativeJson.js";
import { ProcTextParser } from "./procText.js";
import type { ProcTokenizer, TokenSink } from "./procTokenizer.js";
import { type TracingFormat, TracingParser } from "./tracing.js";

/** Accepted by `--format`. `dmesg` covers sysrq-t/w, hung-task, RCU-stall and oops dumps. */
export const FORMAT_NAMES = ["auto", "json", "proc", "dmesg", "sysrq-t", "sysrq-w", "hung-task", "crash", "perf", "bpftrace", "bcc", "bcc-folded", "drgn"] as const;
export type FormatName = (typeof FORMAT_NAMES)[number];

export function isFormatName(s: string): s is FormatName {
  return (FORMAT_NAMES as readonly string[]).includes(s);
}

/** How much of a file auto-detection looks at. */
export const DETECT_BYTES = 64 * 1024;

// Per-line shapes (lines longer than MAX_LINE are skipped: every test stays linear).
const MAX_LINE = 400;
const RE_CRASH = /^PID: *\d+ +TASK: *[0-9a-fA-F]+ +CPU: /;
const RE_PERF_HEADER = /^\S.{0,80} \d+(?:\/\d+)? +(?:\[\d+\] +)?\d+\.\d+: /;
const RE_PERF_FRAME = /^(?:\t| {6,})\s*[0-9a-fA-F]+ \S.* \(.*\)$/;
const RE_BPFTRACE = /^(?:\* ?)?@[A-Za-z0-9_]*\[$/;
const RE_DRGN = /^#\d+ +[A-Za-z_.$][^\s[]*(?: \([^()]*:\d+(?::\d+)?\))?$/;
const RE_FOLDED = /^[^\s;]+(?:;[^;]+)+ \d+$/;
const RE_COUNT = /^ {4,8}\d+$/;
const RE_DMESG = /Call [Tt]race:|Backtrace:|^task:.{1,40} state:|SysRq : Show|sysrq: Show|INFO: task .{1,40} blocked|\] \(\S+\) from \[</;
const RE_PROC = /^(?:\/proc\/\d+(?:\/task\/\d+)?\/stack:|==> \/proc\/|== \/proc\/)|^\[<[0-9a-fA-F]{1,16}>\] \S+$/;

/** The format auto-detection picks for a file that starts with `head`; null when none fits. */
export function detectFormat(head: Uint8Array): Exclude<FormatName, "auto" | "sysrq-t" | "sysrq-w" | "hung-task"> | null {
  let i = 0;
  while (i < head.length && (head[i] === CH.SPACE || head[i] === CH.LF || head[i] === CH.CR || head[i] === CH.TAB)) i++;
  if (i < head.length && head[i] === 0x7b) return "json";
  const lines = latin1(head, 0, Math.min(head.length, DETECT_BYTES)).split("\n");
  let perf = 0;
  let bpftrace = 0;
  let dmesg = 0;
  let drgn = 0;
  let folded = 0;
  let proc = 0;
  let bcc = 0;
  let prev = "";
  let prevIndented = false;
  for (const raw of lines) {
    const line = raw.trimEnd();
    if (line.length > MAX_LINE) {
      prev = "";
      continue;
    }
    const t = line.trim();
    if (RE_CRASH.test(t)) return "crash";
    if (RE_PERF_FRAME.test(line) && RE_PERF_HEADER.test(prev.trim())) perf++;
    if (RE_BPFTRACE.test(t)) bpftrace++;
    if (RE_DMESG.test(line)) dmesg++;
    if (RE_DRGN.test(t)) drgn++;
    if (RE_FOLDED.test(t)) folded++;
    if (RE_PROC.test(t)) proc++;
    if (RE_COUNT.test(line) && prevIndented) bcc++;
    prevIndented = /^ {2,}\S/.test(line);
    prev = line;
  }
  if (perf > 0) return "perf";
  if (bpftrace > 0) return "bpftrace";
  if (dmesg > 0) return "dmesg";
  if (drgn >= 2) return "drgn";
  if (folded >= 2) return "bcc-folded";
  if (proc > 0) return "proc";
  if (bcc > 0) return "bcc";
  return null;
}

export interface CaptureParser {
  push(chunk: Uint8Array): void;
  finish(): Capture[];
  /**
   * Feeding without a copy, where the parser has a buffer of its own: calls `read(dst)` once with
   * a region of that buffer, takes the bytes it reports writing (as push() of them would), and
   * returns that count (0: the end of the input). null when not offered (or not yet: before the
   * format is detected): use push().
   */
  readFrom?(read: (dst: Uint8Array) => number): number | null;
}

/**
 * /proc text with the envelopes people add: e-mail quotes and `$ cat /proc/PID/stack` command
 * lines (each starts a task). Feeds ProcTextParser one rewritten line per input line with the
 * file's line number.
 *
 * With a tokenizer (the wasm one, assembly/tokenize.ts), runs of grep -H stack lines never reach
 * JavaScript as bytes: they arrive as (pid, tid, lines, stack id) and tasks of one stack share
 * their frame rows; every other line takes the path below. Both paths give equal captures
 * (test/tokenizer.test.ts).
 */
/** How much of a /proc dump's start is looked at for its path shape. */
const HEAD_PATHS_BYTES = 65536;

class ProcWrapper implements CaptureParser {
  private readonly inner: ProcTextParser;
  private readonly splitter: LineSplitter | null;
  private readonly enc = new TextEncoder();

  constructor(
    name: string,
    private readonly tokenizer: ProcTokenizer | null = null,
    expectedTasks = 64,
  ) {
    this.inner = new ProcTextParser(name, expectedTasks);
    this.splitter = tokenizer === null ? new LineSplitter((buf, s, e, n) => this.line(buf, s, e, n)) : null;
  }

  private readonly sink: TokenSink = {
    run: (pid, tid, line, count, stack) => this.inner.fastRun(pid, tid, line, count, stack, this.tokenizer!),
    runs: (ev, from, to) => this.inner.fastRuns(ev, from, to, this.tokenizer!),
    other: (buf, s, e, line) => {
      // As LineSplitter.emit: one CR cut.
      if (e > s && buf[e - 1] === CH.CR) e--;
      this.line(buf, s, e, line);
    },
  };

  /** The first 64 KiB of input, however it was chunked: which /proc paths the dump reads. */
  private head = "";

  push(chunk: Uint8Array): void {
    if (this.head.length < HEAD_PATHS_BYTES) this.head += latin1(chunk, 0, Math.min(chunk.length, HEAD_PATHS_BYTES - this.head.length));
    if (this.tokenizer !== null) this.tokenizer.push(chunk, this.sink);
    else this.splitter!.push(chunk);
  }

  readFrom(read: (dst: Uint8Array) => number): number | null {
    return this.tokenizer === null ? null : this.tokenizer.fill(read, this.sink);
  }

  private line(buf: Uint8Array, s: number, e: number, lineNo: number): void {
    // Fast path: a bare /proc line (`/proc/…:[<0>] …` from grep -H, or `[<0>] …`) has no envelope
    // and no `cat /proc/…` prompt: hand it over without a copy.
    if (e - s >= 2 && ((buf[s] === CH.SLASH && buf[s + 1] === 0x70) || (buf[s] === CH.LBRACKET && buf[s + 1] === CH.LT))) {
      this.inner.numberedLine(buf, s, e, lineNo);
      return;
    }
    const env = stripEnvelope(buf, s, e);
    const b = env.body;
    // `cat /proc/PID/stack` or `cat /proc/PID/task/TID/stack` after a prompt.
    let cat = -1;
    for (let i = b; i + 10 < e && i < b + 200; i++) {
      if (buf[i] === 99 && buf[i + 1] === 97 && buf[i + 2] === 116 && buf[i + 3] === CH.SPACE && buf[i + 4] === CH.SLASH) {
        cat = i + 4;
        break;
      }
    }
    if (cat >= 0) {
      const m = /^\/proc\/(\d+)(?:\/task\/(\d+))?\/stack\s*$/.exec(latin1(buf, cat, e));
      if (m !== null) {
        const header = this.enc.encode(`== /proc/${m[1]}/task/${m[2] ?? m[1]}`);
        this.inner.numberedLine(header, 0, header.length, lineNo);
        return;
      }
    }
    this.inner.numberedLine(buf, b, e, lineNo);
  }

  finish(): Capture[] {
    if (this.tokenizer !== null) this.tokenizer.finish(this.sink);
    else this.splitter!.end();
    const cap = this.inner.finish();
    // `grep -H . /proc/*/stack` shows one thread per process; /proc/PID/task/TID/stack every one.
    if (/\/proc\/\d+\/stack\b/.test(this.head) && !/\/proc\/\d+\/task\/\d+/.test(this.head)) {
      cap.complete = false;
      cap.completeness.push({ code: "main-threads-only", message: "the dump reads /proc/PID/stack, which shows each process's main thread only: every other thread is missing (read /proc/*/task/*/stack)" });
    }
    return [cap];
  }
}

/** The longest JSON capture read (V8's longest string is 2^29 - 24 UTF-16 units; JSON is ASCII almost always). */
const MAX_JSON_BYTES = 512 * 2 ** 20 - 64;

class JsonCollector implements CaptureParser {
  private readonly chunks: Uint8Array[] = [];
  constructor(
    private readonly name: string,
    private readonly strictMarker: boolean,
  ) {}
  push(chunk: Uint8Array): void {
    this.chunks.push(chunk.slice());
  }
  finish(): Capture[] {
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    // A JSON document is parsed whole: its text must fit in one JavaScript string.
    if (total > MAX_JSON_BYTES) {
      throw new PatchsafeError("E_UNSUPPORTED", `a JSON capture of ${(total / 2 ** 20).toFixed(0)} MiB is larger than the 512 MiB a JSON document can be read whole in; capture or convert to .psnap (patchsafe capture, or convert from the original dump) for hosts this large`, { file: this.name });
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const c of this.chunks) {
      all.set(c, o);
      o += c.length;
    }
    const text = new TextDecoder("utf-8").decode(all);
    if (this.strictMarker && !looksLikeNativeJson(text.slice(0, 4096))) {
      throw new PatchsafeError("E_INPUT", 'a JSON document that is not a patchsafe capture (no "format": "patchsafe-capture")', { file: this.name, line: 1 });
    }
    return [parseNativeJson(text, this.name)];
  }
}

/** Options of the capture parsers. */
export interface IngestOptions {
  /**
   * A fresh /proc text tokenizer per input (the wasm one: src/node/wasm.ts loadProcTokenizer);
   * without one the TypeScript line path reads everything (same captures, slower).
   */
  procTokenizer?: (file: string) => ProcTokenizer;
  /**
   * The input's size in bytes, when known (a regular file): the /proc parser sizes its task
   * columns from it instead of growing them by doubling (a million tasks copied them ~20 times).
   */
  sizeHint?: number;
}

/**
 * Tasks a /proc dump of `bytes` bytes holds at most, about: a task is at least a few lines of
 * ~60 bytes (grep -H), so bytes / 250 over-counts typical dumps (~330 bytes a task) by ~1.3x and is only a start:
 * the columns still grow past it.
 */
function procTasksHint(bytes: number | undefined): number {
  return bytes === undefined ? 64 : Math.max(64, Math.min(Math.ceil(bytes / 250), 16 << 20));
}

function parserFor(format: Exclude<FormatName, "auto">, name: string, detected: boolean, options: IngestOptions): CaptureParser {
  switch (format) {
    case "json":
      return new JsonCollector(name, detected);
    case "proc":
      return new ProcWrapper(name, options.procTokenizer?.(name) ?? null, procTasksHint(options.sizeHint));
    case "dmesg":
      return new DmesgParser(name);
    case "sysrq-t":
    case "sysrq-w":
    case "hung-task":
      return new DmesgParser(name, format as DmesgKind);
    case "crash":
      return new CrashParser(name);
    case "perf":
    case "bpftrace":
    case "bcc":
    case "bcc-folded":
    case "drgn":
      return new TracingParser(name, format as TracingFormat);
  }
}

/** Streams a file into the parser for `format`, detecting it from the first 64 KiB for `auto`. */
export function createCaptureParser(name: string, format: FormatName = "auto", options: IngestOptions = {}): CaptureParser {
  if (format !== "auto") return checked(parserFor(format, name, false, options), name, format);
  const head: Uint8Array[] = [];
  let headLen = 0;
  let inner: CaptureParser | null = null;
  const decide = (): CaptureParser => {
    const all = new Uint8Array(headLen);
    let o = 0;
    for (const c of head) {
      all.set(c, o);
      o += c.length;
    }
    const f = detectFormat(all);
    if (f === null) throw unknownFormat(name, all);
    const p = checked(parserFor(f, name, true, options), name, f);
    p.push(all);
    head.length = 0;
    return p;
  };
  return {
    push(chunk: Uint8Array): void {
      if (inner !== null) return inner.push(chunk);
      head.push(chunk.slice());
      headLen += chunk.length;
      if (headLen >= DETECT_BYTES) inner = decide();
    },
    readFrom(read: (dst: Uint8Array) => number): number | null {
      return inner === null ? null : (inner.readFrom?.(read) ?? null);
    },
    finish(): Capture[] {
      inner ??= decide();
      return inner.finish();
    },
  };
}

/** A parser whose empty result is an E_INPUT error naming the format. */
function checked(p: CaptureParser, name: string, format: string): CaptureParser {
  return {
    push: (c) => p.push(c),
    readFrom: (read) => p.readFrom?.(read) ?? null,
    finish: () => {
      const caps = p.finish().filter((c) => c.tasks.length > 0);
      if (caps.length === 0) throw new PatchsafeError("E_INPUT", `no task stack found in ${format} format`, { file: name });
      return caps;
    },
  };
}

function unknownFormat(name: string, head: Uint8Array): PatchsafeError {
  const lines = latin1(head, 0, Math.min(head.length, 4096)).split("\n");
  const shown: string[] = [];
  let first: number | undefined;
  for (let i = 0; i < lines.length && shown.length < 3; i++) {
    const l = lines[i].replace(/\r$/, "");
    if (l.trim() === "") continue;
    first ??= i + 1;
    shown.push(`line ${i + 1}: ${JSON.stringify(l.slice(0, 80))}`);
  }
  return new PatchsafeError(
    "E_INPUT",
    `not a known stack-dump format (expected /proc stacks, a dmesg task dump, crash bt, perf/bpftrace/bcc/drgn output or a patchsafe capture; --format forces one)${shown.length > 0 ? `; first lines: ${shown.join("; ")}` : " (empty input)"}`,
    { file: name, line: first },
  );
}

/** Parses bytes (or a sequence of chunks) held in memory into captures. */
export function parseCaptures(input: Uint8Array | Iterable<Uint8Array>, file = "<input>", format: FormatName = "auto", options: IngestOptions = {}): Capture[] {
  const p = createCaptureParser(file, format, options);
  if (input instanceof Uint8Array) p.push(input);
  else for (const c of input) p.push(c);
  return p.finish();
}
