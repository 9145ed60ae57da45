/**
 * Host side of the /proc text tokenizer (assembly/tokenize.ts): the only code that touches its
 * instance. Browser-clean (no `node:` imports). The tokenizer turns a grep -H dump into runs
 * (pid, tid, first line, line count, stack id) plus OTHER lines; ProcWrapper feeds runs to
 * ProcTextParser.fastRun() and OTHER lines to its ordinary line path, so the grammar stays
 * defined in TypeScript once.
 */
import { PatchsafeError } from "../errors.js";

/** The tokenizer ABI this host speaks (assembly/tokenize.ts ABI_VERSION). */
export const TOKENIZER_ABI_VERSION = 1;
const EVENT_WORDS = 6;
const EV_RUN = 1;
const EV_OTHER = 2;
/** Bytes copied into wasm per call. */
export const DEFAULT_TOKENIZER_INPUT = 4 << 20;
/** A line longer than this is not a stack dump line: an error, not a buffer the size of the file. */
export const MAX_TOKENIZER_LINE = 64 << 20;
/** Bytes fill() lets its reader write per call. */
const FILL_BYTES = 1 << 20;

interface TokenizerExports {
  memory: WebAssembly.Memory;
  abiVersion(): number;
  init(inputCapacity: number): void;
  inputPtr(): number;
  inputCapacity(): number;
  growInput(cap: number, keep: number): void;
  run(start: number, len: number): number;
  finish(): void;
  eventPtr(): number;
  eventCount(): number;
  lineCount(): number;
  textPtr(): number;
  textOffsetPtr(): number;
  textLengthPtr(): number;
  textCount(): number;
  stackWordsPtr(): number;
  stackOffsetPtr(): number;
  stackLengthPtr(): number;
  stackCount(): number;
  leanMark(stack: number, start: number, count: number): void;
  leanRuns(from: number, to: number, room: number): number;
  leanStatePtr(): number;
  leanPidPtr(): number;
  leanTidPtr(): number;
  leanStartPtr(): number;
  leanCountPtr(): number;
  leanLinePtr(): number;
}

/** The task columns leanRuns() writes (TaskTable's). */
export interface LeanColumns {
  pid: Float64Array;
  tid: Float64Array;
  frameStart: Uint32Array;
  frameCount: Uint32Array;
  line: Uint32Array;
}

/** LEAN_STATE words: the lean task and the runs' last line in and out; rows written out. */
export const LEAN_STATE = { PID: 0, TID: 1, LINE: 2, STACK: 3, COUNT: 4, LAST: 5, WRITTEN: 6, WORDS: 7 } as const;

export const TOKENIZER_EXPORTED_FUNCTIONS: readonly string[] = [
  "abiVersion",
  "init",
  "inputPtr",
  "inputCapacity",
  "growInput",
  "run",
  "finish",
  "eventPtr",
  "eventCount",
  "lineCount",
  "textPtr",
  "textOffsetPtr",
  "textLengthPtr",
  "textCount",
  "stackWordsPtr",
  "stackOffsetPtr",
  "stackLengthPtr",
  "stackCount",
  "leanMark",
  "leanRuns",
  "leanStatePtr",
  "leanPidPtr",
  "leanTidPtr",
  "leanStartPtr",
  "leanCountPtr",
  "leanLinePtr",
  "kallsymsParse",
  "ksAddrLoPtr",
  "ksAddrHiPtr",
  "ksTypePtr",
  "ksNameStartPtr",
  "ksNameLenPtr",
  "ksModulePtr",
  "ksModuleCount",
  "ksModuleStartPtr",
  "ksModuleLenPtr",
];

/** What the tokenizer reports, in input order. */
export interface TokenSink {
  /** Lines [line, line + count) are one stack file's frame lines; `stack` names their frame texts. */
  run(pid: number, tid: number, line: number, count: number, stack: number): void;
  /** Any other line: raw bytes buf[start, end) without the LF (CRs untouched). */
  other(buf: Uint8Array, start: number, end: number, line: number): void;
  /**
   * Optional: the run events from event word `from` on, each EVENT_WORDS words (kind, pid, tid,
   * line, count, stack), as run() would take them one by one; handles at least the first and
   * returns the word index of the first event it left (an OTHER event, or `to`). One call per
   * batch instead of one per task: a 100k-task dump is 100k runs.
   */
  runs?(ev: Uint32Array, from: number, to: number): number;
}

/** Event layout (assembly/tokenize.ts): words per event and the kind in word 0. */
export const TOKEN_EVENT = { WORDS: EVENT_WORDS, RUN: EV_RUN, OTHER: EV_OTHER } as const;

export function compileTokenizerModule(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Module {
  const module = new WebAssembly.Module(bytes);
  const names = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const f of TOKENIZER_EXPORTED_FUNCTIONS) {
    if (!names.includes(f)) throw new PatchsafeError("E_INTERNAL", `tokenizer module lacks export ${f} (rebuild with npm run asbuild)`);
  }
  for (const i of WebAssembly.Module.imports(module)) {
    if (!(i.module === "env" && i.name === "abort")) throw new PatchsafeError("E_INTERNAL", `tokenizer module imports ${i.module}.${i.name}: only env.abort is allowed`);
  }
  return module;
}

/** One tokenizer instance: one input stream. */
export class ProcTokenizer {
  private readonly x: TokenizerExports;
  /** Bytes of INPUT[0, filled) not processed yet (a partial line at the front after compaction). */
  private filled = 0;
  private finished = false;
  private readonly texts: (Uint8Array | undefined)[] = [];

  private readonly name: string;
  private readonly maxLine: number;

  /** inputCapacity: bytes per call into wasm; name: the file, for errors; maxLine: the longest line accepted. */
  constructor(module: WebAssembly.Module, opts: { inputCapacity?: number; name?: string; maxLine?: number } = {}) {
    const inputCapacity = opts.inputCapacity ?? DEFAULT_TOKENIZER_INPUT;
    this.name = opts.name ?? "<input>";
    this.maxLine = opts.maxLine ?? MAX_TOKENIZER_LINE;
    const instance = new WebAssembly.Instance(module, {
      env: {
        abort: (_m: number, _f: number, line: number, col: number) => {
          throw new PatchsafeError("E_INTERNAL", `tokenizer aborted at assembly/tokenize.ts:${line}:${col} (a patchsafe bug)`);
        },
      },
    });
    this.x = instance.exports as unknown as TokenizerExports;
    if (this.x.abiVersion() !== TOKENIZER_ABI_VERSION) throw new PatchsafeError("E_INTERNAL", `tokenizer ABI ${this.x.abiVersion()}, host speaks ${TOKENIZER_ABI_VERSION}`);
    this.x.init(inputCapacity);
  }

  /** Feeds bytes; complete lines are reported to `sink` before this returns. */
  push(chunk: Uint8Array, sink: TokenSink): void {
    if (this.finished) throw new PatchsafeError("E_INTERNAL", "tokenizer: push after finish");
    let off = 0;
    while (off < chunk.length) {
      const cap = this.room();
      const n = Math.min(chunk.length - off, cap - this.filled);
      new Uint8Array(this.x.memory.buffer, this.x.inputPtr() + this.filled, n).set(chunk.subarray(off, off + n));
      this.filled += n;
      off += n;
      this.drain(sink);
    }
  }

  /**
   * Lets `read` write the next bytes straight into the input buffer (no copy), then tokenizes them
   * as push() would; returns what `read` returned (0: the end of the input; nothing is done).
   */
  fill(read: (dst: Uint8Array) => number, sink: TokenSink): number {
    if (this.finished) throw new PatchsafeError("E_INTERNAL", "tokenizer: fill after finish");
    const cap = this.room();
    // At most FILL_BYTES per call: what was just read is tokenized while it is still in cache.
    const n = read(new Uint8Array(this.x.memory.buffer, this.x.inputPtr() + this.filled, Math.min(cap - this.filled, FILL_BYTES)));
    if (n <= 0) return 0;
    this.filled += n;
    this.drain(sink);
    return n;
  }

  /**
   * The input buffer's capacity, doubled first when it is full (one line longer than the buffer:
   * the partial line is kept), up to maxLine.
   */
  private room(): number {
    const cap = this.x.inputCapacity();
    if (this.filled < cap) return cap;
    if (cap >= this.maxLine) throw new PatchsafeError("E_INPUT", `line ${this.x.lineCount() + 1} is longer than ${this.maxLine} bytes: not a stack dump`, { file: this.name, line: this.x.lineCount() + 1 });
    this.guard(() => this.x.growInput(cap * 2, this.filled));
    return this.x.inputCapacity();
  }

  /** End of input: a last line without LF counts as a line (as LineSplitter.end does). */
  finish(sink: TokenSink): void {
    if (this.finished) return;
    if (this.filled > 0) {
      if (this.filled === this.x.inputCapacity()) this.guard(() => this.x.growInput(this.filled + 1, this.filled));
      new Uint8Array(this.x.memory.buffer, this.x.inputPtr() + this.filled, 1)[0] = 10;
      this.filled++;
      this.drain(sink);
    }
    this.guard(() => this.x.finish());
    this.deliver(sink);
    this.finished = true;
  }

  /** Lines the tokenizer has counted (the file's line count after finish). */
  get lines(): number {
    return this.x.lineCount();
  }

  /** Frame-text ids of stack `id`, innermost first (a copy). */
  stack(id: number): Uint32Array {
    const mem = this.x.memory.buffer;
    const off = new Uint32Array(mem, this.x.stackOffsetPtr(), this.x.stackCount())[id];
    const len = new Uint32Array(mem, this.x.stackLengthPtr(), this.x.stackCount())[id];
    return new Uint32Array(mem, this.x.stackWordsPtr() + off * 4, len).slice();
  }

  /** The bytes of frame text `id` (cached copy). */
  text(id: number): Uint8Array {
    let t = this.texts[id];
    if (t === undefined) {
      const mem = this.x.memory.buffer;
      const n = this.x.textCount();
      const off = new Uint32Array(mem, this.x.textOffsetPtr(), n)[id];
      const len = new Uint32Array(mem, this.x.textLengthPtr(), n)[id];
      t = new Uint8Array(mem, this.x.textPtr() + off, len).slice();
      this.texts[id] = t;
    }
    return t;
  }

  /**
   * Stack `id`'s rows are shared at frame rows [start, start + count) and a task that is exactly
   * one run of it is lean (ProcTextParser.leanRuns): leanRuns() may write such tasks.
   */
  leanMark(id: number, start: number, count: number): void {
    this.x.leanMark(id, start, count);
  }

  /**
   * ProcTextParser.leanRuns() in wasm (assembly/tokenize.ts leanRuns), over the event words
   * [from, to) of the current delivery: `state` (LEAN_STATE) in and out, at most `room` rows,
   * written into `cols` from row `at`. Returns the word index of the first event it left.
   */
  leanRuns(from: number, to: number, state: Uint32Array, cols: LeanColumns, at: number, room: number): number {
    const x = this.x;
    const mem = x.memory.buffer;
    new Uint32Array(mem, x.leanStatePtr(), LEAN_STATE.WORDS).set(state);
    const k = x.leanRuns(from, to, room);
    state.set(new Uint32Array(mem, x.leanStatePtr(), LEAN_STATE.WORDS));
    const m = state[LEAN_STATE.WRITTEN];
    if (m > 0) {
      cols.pid.set(new Float64Array(mem, x.leanPidPtr(), m), at);
      cols.tid.set(new Float64Array(mem, x.leanTidPtr(), m), at);
      cols.frameStart.set(new Uint32Array(mem, x.leanStartPtr(), m), at);
      cols.frameCount.set(new Uint32Array(mem, x.leanCountPtr(), m), at);
      cols.line.set(new Uint32Array(mem, x.leanLinePtr(), m), at);
    }
    return k;
  }

  /** A trap inside the tokenizer (wasm memory exhausted: its tables hold every distinct line) as our error. */
  private guard<T>(call: () => T): T {
    try {
      return call();
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) {
        throw new PatchsafeError("E_INPUT", `the /proc tokenizer ran out of memory near line ${this.x.lineCount()} (${e.message}): too many distinct frame lines for one wasm instance`, { file: this.name, line: this.x.lineCount() });
      }
      throw e;
    }
  }

  private drain(sink: TokenSink): void {
    let start = 0;
    for (;;) {
      const stop = this.guard(() => this.x.run(start, this.filled));
      this.deliver(sink);
      // No progress: only a partial line is left. Otherwise the event buffer filled up or the
      // input is done.
      if (stop === start) break;
      start = stop;
      if (start === this.filled) break;
    }
    // Keep the partial line at the front.
    if (start > 0) {
      const mem = new Uint8Array(this.x.memory.buffer);
      const p = this.x.inputPtr();
      mem.copyWithin(p, p + start, p + this.filled);
      this.filled -= start;
    }
  }

  private deliver(sink: TokenSink): void {
    const n = this.x.eventCount();
    if (n === 0) return;
    // Views are taken per delivery: a sink callback never calls into the tokenizer, so memory
    // cannot grow while these are alive.
    const ev = new Uint32Array(this.x.memory.buffer, this.x.eventPtr(), n * EVENT_WORDS);
    const input = new Uint8Array(this.x.memory.buffer, this.x.inputPtr(), this.filled);
    const end = n * EVENT_WORDS;
    for (let k = 0; k < end; ) {
      if (ev[k] === EV_RUN && sink.runs !== undefined) {
        k = sink.runs(ev, k, end);
        continue;
      }
      if (ev[k] === EV_RUN) sink.run(ev[k + 1], ev[k + 2], ev[k + 3], ev[k + 4], ev[k + 5]);
      else if (ev[k] === EV_OTHER) sink.other(input, ev[k + 2], ev[k + 2] + ev[k + 3], ev[k + 1]);
      k += EVENT_WORDS;
    }
  }
}
