/**
 * Tracing stacks (FORMATS.md §9): bpftrace `kstack` map prints, bcc `offcputime -K` / `stackcount`
 * (and their folded `-f` form), `perf script` callchains, drgn `StackTrace` prints. A stack becomes
 * a task where the format names one (bcc `comm [pid]`, offcputime's comm line, perf's sample
 * header, drgn's `prog.stack_trace(PID)`), an anonymous one otherwise.
 *
 * These are aggregates over time or on-CPU samples, not a snapshot of every task (SPEC §3): every
 * capture is partial (`complete: false`, reason `tracing-aggregate`) so a verdict over it can never
 * be `safe`; frames feed "observed on stacks" and prediction.
 *
 * Line-oriented: one small string per line, anchored regexes without nested quantifiers.
 */
import { type Capture, FrameFlag } from "../model.js";
import { CaptureBuilder } from "./builder.js";
import { encodeLatin1, hexOut, latin1, LineSplitter, parseHex64 } from "./bytes.js";

export type TracingFormat = "bpftrace" | "bcc" | "bcc-folded" | "perf" | "drgn";

export const TRACING_REASON = {
  code: "tracing-aggregate",
  message: "tracing output (bpftrace, bcc, perf, drgn) aggregates stacks over time or samples tasks on CPUs: it is not a snapshot of every task and can never prove a patch safe",
};

/** `sym`, `sym+0xOFF`, `sym+DEC`, `sym+0xOFF/0xSIZE`, optionally `[module]`. */
const RE_SYM = /^([^\s+[\]()]+)(?:\+(0x[0-9a-fA-F]{1,8}|\d{1,10})(?:\/0x([0-9a-fA-F]{1,8}))?)?(?: \[([^\]\s]+)\])?$/;
const RE_ADDR_SYM = /^([0-9a-fA-F]{6,16}) +(\S+(?: \[[^\]\s]+\])?)$/;
const RE_PERF_HEADER = /^(\S(?:.{0,60}?\S)?) +(\d+)(?:\/(\d+))? +(?:\[(\d+)\] +)?\d+\.\d+: /;
const RE_PERF_FRAME = /^([0-9a-fA-F]{1,16}) (.{1,400}?) \(([^()]*)\)$/;
const RE_DRGN = /^#(\d+) +(.{1,400}?)(?: \(([^()]*)\))?$/;
const RE_DRGN_PID = /stack_trace\((\d+)\)/;

function addFrame(b: CaptureBuilder, token: string, line: number, addr: string | null, flags = 0): boolean {
  let lo = 0;
  let hi = 0;
  let has = false;
  if (addr !== null) {
    const a = encodeLatin1(addr);
    if (parseHex64(a, 0, a.length) && (hexOut.lo !== 0 || hexOut.hi !== 0)) {
      lo = hexOut.lo;
      hi = hexOut.hi;
      has = true;
    }
  }
  const f = b.frames;
  if (/^0x[0-9a-fA-F]{1,16}$/.test(token) || token === "[unknown]") {
    const bytes = encodeLatin1(token.startsWith("0x") ? token.slice(2) : (addr ?? "0"));
    const i = f.push();
    f.line[i] = line;
    f.flags[i] = flags | FrameFlag.BARE_HEX;
    if (parseHex64(bytes, 0, bytes.length)) {
      f.addrLo[i] = hexOut.lo;
      f.addrHi[i] = hexOut.hi;
      f.flags[i] |= FrameFlag.HAS_ADDRESS;
    }
    return true;
  }
  const m = RE_SYM.exec(token);
  if (m === null) {
    b.addUnparsed(line);
    return false;
  }
  const i = f.push();
  const sym = encodeLatin1(m[1]);
  f.symbol[i] = b.interner.intern(sym, 0, sym.length);
  const obj = encodeLatin1(m[4] ?? "vmlinux");
  f.object[i] = b.interner.intern(obj, 0, obj.length);
  flags |= FrameFlag.SYMBOLIC;
  if (m[2] !== undefined) {
    f.offset[i] = m[2].startsWith("0x") ? parseInt(m[2].slice(2), 16) : Number(m[2]);
    flags |= FrameFlag.HAS_OFFSET;
  }
  if (m[3] !== undefined) {
    f.size[i] = parseInt(m[3], 16);
    flags |= FrameFlag.HAS_SIZE;
  }
  if (has) {
    f.addrLo[i] = lo;
    f.addrHi[i] = hi;
    flags |= FrameFlag.HAS_ADDRESS;
  }
  f.flags[i] = flags;
  f.line[i] = line;
  return true;
}

/** Streaming parser for one tracing format; `finish()` returns one capture. */
export class TracingParser {
  private readonly splitter: LineSplitter;
  private readonly b = new CaptureBuilder();
  private firstLine = 0;
  private lastLine = 0;
  private noise = 0;
  // bcc: the lines of the current block (indentation, text, line).
  private block: { indent: number; text: string; line: number }[] = [];
  private inStack = false;
  private drgnPid: number | null = null;
  private perfUser = false;

  constructor(
    private readonly name: string,
    readonly format: TracingFormat,
  ) {
    this.splitter = new LineSplitter((buf, s, e, line) => this.line(latin1(buf, s, e), line));
  }

  push(chunk: Uint8Array): void {
    this.splitter.push(chunk);
  }

  finish(): Capture[] {
    this.splitter.end();
    if (this.format === "bcc") this.flushBcc(null);
    this.b.endTask();
    if (this.b.tasks.length === 0) return [];
    const cap = this.b.finish({ name: this.name, format: this.format, section: 0, firstLine: this.firstLine, lastLine: this.lastLine });
    cap.hidesSchedFrames = false;
    cap.complete = false;
    cap.completeness = [{ ...TRACING_REASON }];
    if (this.noise > 0) cap.warnings.push({ code: "noise-lines", message: `${this.noise} line(s) outside stacks were skipped` });
    return [cap];
  }

  private start(p: { pid?: number | null; tid?: number | null; comm?: string | null }, line: number): void {
    this.b.startTask({ pid: p.pid ?? null, tid: p.tid ?? null, comm: p.comm === undefined || p.comm === null ? null : encodeLatin1(p.comm) }, line);
    if (this.firstLine === 0) this.firstLine = line;
  }

  private line(raw: string, line: number): void {
    switch (this.format) {
      case "bpftrace":
        return this.bpftrace(raw, line);
      case "bcc":
        return this.bcc(raw, line);
      case "bcc-folded":
        return this.folded(raw, line);
      case "perf":
        return this.perf(raw, line);
      case "drgn":
        return this.drgn(raw, line);
    }
  }

  private bpftrace(raw: string, line: number): void {
    // Doc samples wrap the output in C comments: ` * `.
    const t = raw.replace(/^\s*(?:\* ?)?/, "").trim();
    if (/^@[A-Za-z0-9_]*\[$/.test(t)) {
      this.start({}, line);
      this.inStack = true;
      return;
    }
    if (this.inStack) {
      this.lastLine = line;
      if (/^\]: *\d+$/.test(t) || t === "]") {
        this.b.endTask();
        this.inStack = false;
        return;
      }
      const m = RE_ADDR_SYM.exec(t);
      if (m !== null) addFrame(this.b, m[2], line, m[1]);
      else if (t !== "") addFrame(this.b, t, line, null);
      return;
    }
    this.noise++;
  }

  private bcc(raw: string, line: number): void {
    const text = raw.trimEnd();
    if (text.trim() === "") {
      this.flushBcc(null);
      return;
    }
    const indent = text.length - text.trimStart().length;
    const body = text.trim();
    if (indent > 0 && /^\d+$/.test(body) && this.block.length > 0) {
      this.flushBcc(indent);
      this.lastLine = line;
      return;
    }
    if (indent === 0) {
      this.flushBcc(null);
      this.noise++;
      return;
    }
    this.block.push({ indent, text: body, line });
  }

  /** A block ends: with its count line (`countIndent`), or abandoned (null: not a stack). */
  private flushBcc(countIndent: number | null): void {
    const block = this.block;
    this.block = [];
    if (countIndent === null || block.length === 0) {
      if (block.length > 0) this.noise += block.length;
      return;
    }
    let frames = block;
    let comm: string | null = null;
    let pid: number | null = null;
    const last = block[block.length - 1];
    const named = /^(.+) \[(\d+)\]$/.exec(last.text);
    if (named !== null && last.indent > block[0].indent) {
      comm = named[1];
      pid = Number(named[2]);
      frames = block.slice(0, -1);
    } else if (countIndent >= 8) {
      // offcputime: the comm line sits just above the count.
      comm = last.text;
      frames = block.slice(0, -1);
    }
    this.start({ pid, tid: pid, comm }, block[0].line);
    for (const f of frames) {
      // `--`/`-` delimits the kernel stack from the user stack: only kernel frames count.
      if (f.text === "--" || f.text === "-") break;
      if (f.indent > frames[0].indent) continue;
      const m = RE_ADDR_SYM.exec(f.text);
      if (m !== null) addFrame(this.b, m[2], f.line, m[1]);
      else addFrame(this.b, f.text, f.line, null);
    }
    this.b.endTask();
  }

  private folded(raw: string, line: number): void {
    const t = raw.trim();
    const sp = t.lastIndexOf(" ");
    if (sp <= 0 || !/^\d+$/.test(t.slice(sp + 1)) || t.indexOf(";") < 0) {
      if (t !== "") this.noise++;
      return;
    }
    const parts = t.slice(0, sp).split(";");
    this.lastLine = line;
    this.start({ comm: parts[0] }, line);
    // Root first: the frames after the last `-`/`--` delimiter are the kernel's.
    let from = 1;
    for (let i = 1; i < parts.length; i++) if (parts[i] === "-" || parts[i] === "--") from = i + 1;
    for (let i = parts.length - 1; i >= from; i--) addFrame(this.b, parts[i], line, null);
    this.b.endTask();
  }

  private perf(raw: string, line: number): void {
    if (raw.startsWith("#")) return;
    const t = raw.trim();
    if (t === "") {
      this.b.endTask();
      this.perfUser = false;
      return;
    }
    if (raw.length > 0 && raw[0] !== "\t" && !/^ {6,}[0-9a-fA-F]/.test(raw)) {
      const h = t.length < 400 ? RE_PERF_HEADER.exec(t) : null;
      if (h !== null) {
        this.perfUser = /DEFERRED CALLCHAIN/.test(t);
        if (!this.perfUser) {
          const pid = Number(h[2]);
          const tid = h[3] === undefined ? pid : Number(h[3]);
          this.start({ pid, tid, comm: h[1] }, line);
        } else this.b.endTask();
        this.lastLine = line;
        return;
      }
    }
    const m = t.length < 500 ? RE_PERF_FRAME.exec(t) : null;
    if (m === null || this.b.current === null || this.perfUser) {
      this.noise++;
      return;
    }
    this.lastLine = line;
    const dso = m[3];
    let object: string | null = null;
    if (dso === "[kernel.kallsyms]" || /(^|\/)vmlinux[^/]*$/.test(dso)) object = "vmlinux";
    else if (/^\[[^\]/]+\]$/.test(dso) && dso !== "[unknown]" && !dso.startsWith("[vdso") && dso !== "[heap]" && dso !== "[stack]") object = dso.slice(1, -1);
    if (object === null) return; // a user-space frame
    const sym = m[2];
    addFrame(this.b, object === "vmlinux" ? sym : `${sym} [${object}]`, line, m[1]);
  }

  private drgn(raw: string, line: number): void {
    const t = raw.trim();
    const pid = RE_DRGN_PID.exec(t);
    if (t.startsWith(">>>")) {
      if (pid !== null) this.drgnPid = Number(pid[1]);
      this.b.endTask();
      return;
    }
    const m = t.length < 500 ? RE_DRGN.exec(t) : null;
    if (m === null) {
      if (t !== "") this.noise++;
      this.b.endTask();
      return;
    }
    // `#0 at 0x… (sym+off/size) in fn at file (inlined)`: a StackFrame repr, not a new trace.
    if (m[2].startsWith("at 0x")) return;
    const n = Number(m[1]);
    if (n === 0 || this.b.current === null) this.start({ pid: this.drgnPid, tid: this.drgnPid }, line);
    this.lastLine = line;
    addFrame(this.b, m[2].trim(), line, null);
  }
}

/** Parses a whole tracing output held in memory. */
export function parseTracing(input: Uint8Array, format: TracingFormat, name = "<input>"): Capture[] {
  const p = new TracingParser(name, format);
  p.push(input);
  return p.finish();
}
