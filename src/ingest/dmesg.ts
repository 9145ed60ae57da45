/**
 * Kernel-log task dumps (FORMATS.md §4–7): sysrq-t / sysrq-w (`show_state_filter()`), hung-task
 * reports (`check_hung_task()`), RCU-stall task dumps, NMI backtraces and oops call traces, every
 * header generation of `sched_show_task()` (kernel/sched/core.c) and every architecture's
 * `show_stack()` body, inside any envelope (envelope.ts).
 *
 * A dmesg may hold several dumps: each is a section and becomes one Capture (`source.section`,
 * first and last line). A byte-level streaming tokenizer: chunks split anywhere; frame lines
 * (the bulk) never become strings; header lines (a few per task, bounded length) are matched
 * with anchored, linear-time regular expressions. dmesgReference.ts is its slow reference.
 *
 *   section ─ banner (`SysRq : Show State`) | report header (`INFO: task …`, RCU stall, NMI, oops)
 *   task    ─ header line (`task:… state:…` or the old column formats) [Workqueue:] [stack words]
 *             `Call Trace:` frames, with `<IRQ>`/`<TASK>` sections and pt_regs blocks
 */
import { PatchsafeError } from "../errors.js";
import { type Capture, FrameFlag, type Reason, STACK_STATUS_CODE, type Task } from "../model.js";
import { CaptureBuilder } from "./builder.js";
import { CH, indexOfByte, latin1, LineSplitter, startsWithAscii } from "./bytes.js";
import { stripEnvelope } from "./envelope.js";
import { LineKind, addDecoratedToken, looksSymbolic, readFrameLine } from "./frameLine.js";

export type DmesgKind = "sysrq-t" | "sysrq-w" | "hung-task" | "rcu-stall" | "oops" | "task-dump";

/** Header lines longer than this are not headers (comm is at most 15 bytes; keeps regexes cheap). */
const MAX_HEADER = 400;
/** A report header this many seconds after the section's last line starts a new section. */
const SECTION_GAP_SECONDS = 30;
const NOISE_LIST = 5;

// sched_show_task() headers. `s`: a comm may hold a newline (joined split lines).
const RE_NEW =
  /^task:(.*?) state:([A-Za-z])((?: +running task(?: on cpu +\d+)?)?) +stack: *(\d+) +pid: *(\d+) +(?:tgid: *(\d+) +)?ppid: *(\d+) +(?:task_flags:0x([0-9a-fA-F]{1,16}) +)?flags:0x([0-9a-fA-F]{1,16})(?: .*)?$/s;
/** 4.9–5.9 (`%-15.15s %c%5lu %5d %6d 0x%08lx`), MIPS 4.x, vendor extra trailing field. */
const RE_OLD_A = /^(.+?) +([A-Za-z]) *(\d+) +(\d+) +(\d+) +0x([0-9a-fA-F]{1,16})(?: +\d+)?$/s;
/** ~2.6.23–4.8: saved PC or `running task`, free, pid, ppid, flags. */
const RE_OLD_B = /^(.+?) +([A-Za-z]) +(?:([0-9a-fA-F]{8}|[0-9a-fA-F]{16})|(running task)) +(\d+) +(\d+) +(\d+) +0x([0-9a-fA-F]{1,16})$/s;
/** ≤ 2.6.2x: PC or `running`, free, pid, father, child/younger/older, `(L-TLB)`/`(NOTLB)`. */
const RE_OLD_C = /^(.+?) +([A-Za-z]) +(?:([0-9a-fA-F]{8}|[0-9a-fA-F]{16})|(running)) +(\d+) +(\d+) +(\d+)(?: +\d+){0,3} +\((?:L-TLB|NOTLB)\)$/s;
const RE_INFO = /^INFO: task (.*):(\d+) blocked (?:in I\/O wait )?for more than \d+ seconds\.?$/s;
const RE_CPU = /^CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.*?)(?: (?:Not tainted|Tainted:|Kdump:).*)?$/;
const RE_TAINT = /^(?:Not tainted|Tainted: [A-Z ]*?) +(\S+)(?: #.*)?$/;
const RE_SECTION = /^<(\/?)([#A-Z_0-9]{2,24})>$/;
const RE_SAME = /^<Same stack as pid (\d+)>$/;
const RE_REGLINE = /^(?:R[A-Z0-9]{1,3}|E[A-Z]{2}|[A-Z]S|CR[0-9]|DR[0-9]|ORIG_RAX|PKRU|GPR\d\d|NIP|LR|CTR|MSR|XER|CFAR|SOFTE|TRAP|REGS|PACATMSCRATCH|DAR|DSISR|IRQMASK|pc|lr|sp|x\d{1,2}|r\d{1,2}|ip|fp|psr|epc|ra|status|badvaddr|cause|PrId|Hi|Lo|\$ ?\d+|Krnl [A-Za-z]+)\s*[:=\[ ]/;
const KNOWN_PREFIXES = [
  "Code:",
  "Workqueue:",
  "Stopper:",
  "Hardware name:",
  "Modules linked in:",
  "Stack :",
  "Stack:",
  "Exception stack(",
  "task: ",
  "Blocked by coredump",
  '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs"',
  "sp=",
  "Not tainted",
  "Tainted:",
  "---[ end trace",
  "------------[ cut here ]",
  "** replaying previous printk message **",
  "Showing all locks held",
  "Showing busy workqueues",
  "Sched Debug Version",
  "runnable tasks:",
  "Task dump for CPU",
  "rcu: ",
  "INFO: rcu_",
  "Sending NMI from CPU",
  "NMI backtrace for cpu",
  "Call Trace:",
  "Call trace:",
  "Backtrace:",
  "Last Breaking-Event-Address:",
];
const OOPS_STARTS = ["BUG: ", "Oops:", "Oops ", "WARNING: ", "Kernel panic", "general protection fault", "Unable to handle kernel", "kernel BUG at", "Internal error:"];

interface Section {
  kind: DmesgKind;
  banner: boolean;
  b: CaptureBuilder;
  firstLine: number;
  lastLine: number;
  lastTime: number;
  drops: number[];
  gaps: number[];
  noise: number;
  noiseLines: number[];
  /** A non-block line followed the last task block: the dump ended inside the file. */
  endReached: boolean;
  release: string | null;
}

type Mode = "none" | "header" | "trace" | "closed";

export class DmesgParser {
  private readonly splitter: LineSplitter;
  private readonly sections: Section[] = [];
  private sec: Section | null = null;
  private mode: Mode = "none";
  /** Open x86 stack sections (`<IRQ>` …); frames inside a non-TASK one carry REGS. */
  private stackSections: string[] = [];
  private pendingInfo: { tid: number; comm: Uint8Array; line: number } | null = null;
  private pending: { body: Uint8Array; prefix: Uint8Array; line: number; time: number } | null = null;
  /** Noise before the first section. */
  private preNoise = 0;
  private preNoiseLines: number[] = [];
  private firstUnread: { line: number; text: string }[] = [];
  private forced: DmesgKind | null;
  private wasNoise = false;
  /** After s390's `Last Breaking-Event-Address:`, frame lines are not part of the chain. */
  private skipFrames = false;

  constructor(
    private readonly name: string,
    forced: DmesgKind | null = null,
  ) {
    this.forced = forced;
    this.splitter = new LineSplitter((buf, s, e, line) => this.rawLine(buf, s, e, line));
  }

  push(chunk: Uint8Array): void {
    this.splitter.push(chunk);
  }

  /** The captures, one per dump section. Throws E_INPUT when no task was found. */
  finish(): Capture[] {
    this.splitter.end();
    this.flushPending();
    this.closeTask();
    const out: Capture[] = [];
    for (let i = 0; i < this.sections.length; i++) {
      const s = this.sections[i];
      if (s.b.tasks.length === 0) continue;
      out.push(this.capture(s, out.length));
    }
    if (out.length === 0) {
      const first = this.firstUnread.map((u) => `line ${u.line}: ${JSON.stringify(u.text)}`).join("; ");
      throw new PatchsafeError("E_INPUT", `no task dump found in a known format${first === "" ? " (empty input)" : `; first lines not read: ${first}`}`, {
        file: this.name,
        line: this.firstUnread[0]?.line,
      });
    }
    return out;
  }

  // ── lines ────────────────────────────────────────────────────────────────────────────────────

  private rawLine(buf: Uint8Array, start: number, end: number, line: number): void {
    // `[...]` alone (a quoted log's omission) reads as an empty timestamp to the envelope: an
    // omission mark, not a blank line.
    let r0 = start;
    let r1 = end;
    while (r0 < r1 && (buf[r0] === CH.SPACE || buf[r0] === CH.TAB)) r0++;
    while (r1 > r0 && (buf[r1 - 1] === CH.SPACE || buf[r1 - 1] === CH.TAB || buf[r1 - 1] === CH.CR)) r1--;
    if (r1 - r0 === 5 && startsWithAscii(buf, r0, r1, "[...]") && this.sec !== null) {
      this.flushPending();
      this.sec.gaps.push(line);
      if (this.mode === "trace") this.sec.b.addUnparsed(line);
      return;
    }
    const env = stripEnvelope(buf, start, end);
    let s = env.body;
    let e = end;
    while (e > s && (buf[e - 1] === CH.SPACE || buf[e - 1] === CH.TAB || buf[e - 1] === CH.CR)) e--;
    const time = env.time;
    const kernel = env.kernel;
    if (this.pending !== null) {
      const p = this.pending;
      this.pending = null;
      const prefixLen = env.body - start;
      if (prefixLen === p.prefix.length && sameBytes(buf, start, p.prefix)) {
        // A comm with an embedded newline split the line: join it back.
        const joined = new Uint8Array(p.body.length + 1 + (e - s));
        joined.set(p.body);
        joined[p.body.length] = CH.LF;
        joined.set(buf.subarray(s, e), p.body.length + 1);
        this.line(joined, 0, joined.length, p.line, p.time);
        return;
      }
      this.line(p.body, 0, p.body.length, p.line, p.time);
    }
    if (!kernel) {
      // journald's own report of kernel records it could not read in time (journald-kmsg.c).
      if (contains(buf, s, e, "Missed ") && contains(buf, s, e, " kernel messages")) {
        this.ensureSection("task-dump", line, time, false).drops.push(line);
        return;
      }
      this.noise(line, buf, s, e);
      return;
    }
    // Split-comm candidates: a header start without its tail.
    let ts = s;
    while (ts < e && (buf[ts] === CH.SPACE || buf[ts] === CH.TAB)) ts++;
    if (e - ts < MAX_HEADER && ((startsWithAscii(buf, ts, e, "task:") && !contains(buf, ts, e, " state:")) || (startsWithAscii(buf, ts, e, "INFO: task ") && !contains(buf, ts, e, " blocked ")))) {
      this.pending = { body: buf.slice(ts, e), prefix: buf.slice(start, env.body), line, time };
      return;
    }
    this.line(buf, s, e, line, time);
  }

  private flushPending(): void {
    const p = this.pending;
    if (p === null) return;
    this.pending = null;
    this.line(p.body, 0, p.body.length, p.line, p.time);
  }

  /** One envelope-free line buf[s, e) (trailing blanks trimmed). */
  private line(buf: Uint8Array, s: number, e: number, line: number, time: number): void {
    let ts = s;
    while (ts < e && (buf[ts] === CH.SPACE || buf[ts] === CH.TAB)) ts++;
    this.wasNoise = false;
    this.classify(buf, s, ts, e, line, time);
    const sec = this.sec;
    if (sec !== null && !this.wasNoise) {
      sec.lastLine = line;
      if (!Number.isNaN(time)) sec.lastTime = time;
    }
  }

  private classify(buf: Uint8Array, s: number, ts: number, e: number, line: number, time: number): void {
    if (ts === e) {
      // Blank (or timestamp-only: MIPS separates tasks so): a trace ends here.
      if (this.mode === "trace") this.endTrace();
      return;
    }
    const c = buf[ts];
    // Comment lines of a collected sample (`# source:`, `# ---` joins, `# (…omitted…)`).
    if (c === CH.HASH && (ts + 1 >= e || buf[ts + 1] === CH.SPACE)) {
      if (this.mode === "trace") {
        this.sec!.gaps.push(line);
        this.endTrace();
      } else if (this.sec !== null && (contains(buf, ts, e, "omitted") || contains(buf, ts, e, "..."))) {
        // `# (...omitted...)` between task blocks: whole tasks may be left out.
        this.sec.gaps.push(line);
      }
      this.noise(line, buf, s, e);
      return;
    }
    // An omission mark between task blocks (inside a trace, traceLine() takes it): tasks may be
    // missing here.
    if (this.mode !== "trace" && this.sec !== null && (c === 46 || c === CH.LBRACKET) && (startsWithAscii(buf, ts, e, "...") || startsWithAscii(buf, ts, e, "[...]"))) {
      this.sec.gaps.push(line);
      return;
    }
    // Drop markers, anywhere in the line (they get glued into stack-word lines).
    if (contains(buf, ts, e, "callbacks suppressed") || contains(buf, ts, e, "messages dropped")) {
      this.ensureSection("task-dump", line, time, false).drops.push(line);
      return;
    }
    const len = e - ts;
    // Banners may follow console text on the same line.
    if (len < MAX_HEADER && (contains(buf, ts, e, "SysRq : Show") || contains(buf, ts, e, "sysrq: Show"))) {
      if (contains(buf, ts, e, "Show Blocked State")) return void this.newSection("sysrq-w", line, time, true);
      if (contains(buf, ts, e, "Show State")) return void this.newSection("sysrq-t", line, time, true);
    }
    // Frames first: the hot path.
    if (this.mode === "trace" && this.traceLine(buf, s, ts, e, line)) return;
    if (len < MAX_HEADER && this.headerLine(buf, ts, e, line, time)) return;
    if (this.mode === "header" && this.headerModeLine(buf, ts, e, line)) return;
    if (this.mode !== "trace" && this.looseFrame(buf, ts, e, line)) return;
    this.other(buf, s, ts, e, line);
  }

  /** A line while a Call Trace is open. True when consumed. */
  private traceLine(buf: Uint8Array, s: number, ts: number, e: number, line: number): boolean {
    const c = buf[ts];
    const b = this.sec!.b;
    if (c === CH.LT) {
      if (this.sectionMarker(buf, ts, e, line)) return true;
    } else if (c === 45 && startsWithAscii(buf, ts, e, "--- interrupt:")) {
      // powerpc exception frame: `--- interrupt: 901 at sym+off/size`.
      const at = indexOfSeq(buf, ts, e, " at ");
      if (at > 0) addDecoratedToken(b, buf, at + 4, e, line, false, 0, 0, FrameFlag.REGS);
      return true;
    } else if (c === CH.EQ && isAll(buf, ts, e, CH.EQ)) {
      this.closeTask();
      this.mode = "none";
      return true;
    }
    if (isHexWords(buf, ts, e)) return true;
    if (c === 46 && (startsWithAscii(buf, ts, e, "...") || startsWithAscii(buf, ts, e, "[...]"))) {
      // An omission mark: frames may be missing here.
      this.sec!.gaps.push(line);
      b.addUnparsed(line);
      return true;
    }
    if (!firstWordHasColonOrEq(buf, ts, e)) {
      const before = b.frames.length;
      const k = readFrameLine(b, buf, ts, e, line, this.frameFlags(), false);
      if (k === LineKind.Frame) return true;
      b.frames.length = before;
    }
    if (startsWithAscii(buf, ts, e, "RIP: ") || startsWithAscii(buf, ts, e, "EIP: ")) return this.ripLine(buf, ts, e, line);
    if (e - ts < MAX_HEADER && this.peekHeader(buf, ts, e)) return false;
    if (this.isKnown(buf, ts, e)) {
      if (startsWithAscii(buf, ts, e, "Last Breaking-Event-Address:")) {
        this.endTrace();
        this.skipFrames = true;
      } else if (isTrailer(buf, ts, e)) {
        this.endTrace();
        this.sec!.endReached = true;
      }
      return true;
    }
    if (isTrailer(buf, ts, e)) {
      this.endTrace();
      return false;
    }
    // An unindented `subsystem: message` printk interleaved between frames, or a report header.
    if (ts === s && looksLikeLogMessage(buf, ts, e)) return false;
    b.addUnparsed(line);
    return true;
  }

  /** `RIP: 0010:sym+off/size` (kernel: the interrupted IP is a frame) or a user RIP (trace ends). */
  private ripLine(buf: Uint8Array, ts: number, e: number, line: number): boolean {
    const colon = indexOfByte(buf, CH.COLON, ts + 5, e);
    if (colon < 0) return true;
    const cs = latin1(buf, ts + 5, colon).trim();
    const user = cs === "0033" || cs === "0023" || cs === "0073" || cs === "002b";
    if (user) {
      this.mode = this.mode === "trace" ? "closed" : this.mode;
      this.stackSections = this.stackSections.filter((n) => n === "TASK");
      return true;
    }
    const b = this.sec!.b;
    if (b.current === null) return true;
    let p = colon + 1;
    // Old format: `RIP: 0010:[<ffffffff8100>]  [<ffffffff8100>] sym+off/size`
    while (p < e && (buf[p] === CH.SPACE || buf[p] === CH.LBRACKET)) {
      if (buf[p] === CH.LBRACKET) {
        const close = indexOfByte(buf, CH.RBRACKET, p, e);
        if (close < 0) break;
        p = close + 1;
      } else p++;
    }
    if (p < e) addDecoratedToken(b, buf, p, e, line, false, 0, 0, FrameFlag.REGS);
    return true;
  }

  private sectionMarker(buf: Uint8Array, ts: number, e: number, line: number): boolean {
    const text = e - ts < 64 ? latin1(buf, ts, e) : "";
    const same = RE_SAME.exec(text);
    if (same !== null) {
      this.sameStack(Number(same[1]), line);
      return true;
    }
    if (text === "<<EOE>>" || text === "<EOE>") {
      this.stackSections.pop();
      return true;
    }
    // Old x86: ` <IRQ>  [<addr>] sym` and ` <EOI>  [<addr>] sym` on one line.
    if (startsWithAscii(buf, ts, e, "<IRQ> ") || startsWithAscii(buf, ts, e, "<EOI> ")) {
      if (buf[ts + 1] === 73) this.stackSections.push("IRQ");
      else this.stackSections.pop();
      let p = ts + 6;
      while (p < e && buf[p] === CH.SPACE) p++;
      const k = readFrameLine(this.sec!.b, buf, p, e, line, this.frameFlags(), false);
      if (k === LineKind.Bad) this.sec!.b.addUnparsed(line);
      return true;
    }
    const m = RE_SECTION.exec(text);
    if (m === null) return false;
    const name = m[2];
    if (m[1] === "/") {
      const i = this.stackSections.lastIndexOf(name);
      if (i >= 0) this.stackSections.length = i;
      if (name === "TASK" || (this.stackSections.length === 0 && name !== "IRQ" && name !== "SOFTIRQ")) this.endTrace();
      return true;
    }
    if (name === "EOI") {
      this.stackSections.pop();
      return true;
    }
    this.stackSections.push(name);
    return true;
  }

  private frameFlags(): number {
    const n = this.stackSections.length;
    return n > 0 && this.stackSections[n - 1] !== "TASK" ? FrameFlag.REGS : 0;
  }

  /** A frame-shaped line outside a Call Trace (ARM/MIPS print none; excerpts start mid-trace). */
  private looseFrame(buf: Uint8Array, ts: number, e: number, line: number): boolean {
    const c = buf[ts];
    if (c !== CH.LBRACKET && c !== 40 && c !== CH.QUESTION && !looksSymbolic(buf, ts, e)) return false;
    if (!readProbe(buf, ts, e)) return false;
    if (this.skipFrames) return true; // s390 `Last Breaking-Event-Address:`: not part of the chain
    if (this.mode !== "header") {
      const sec = this.ensureSection("task-dump", line, Number.NaN, false);
      this.startTask(sec, { pid: null, tid: null }, line);
    }
    this.mode = "trace";
    const b = this.sec!.b;
    const k = readFrameLine(b, buf, ts, e, line, this.frameFlags(), false);
    if (k !== LineKind.Frame) b.addUnparsed(line);
    return true;
  }

  private headerModeLine(buf: Uint8Array, ts: number, e: number, line: number): boolean {
    if (startsWithAscii(buf, ts, e, "RIP: ")) return this.ripLine(buf, ts, e, line);
    if (this.isKnown(buf, ts, e) || isHexWords(buf, ts, e) || startsWithAscii(buf, ts, e, "...")) {
      if (startsWithAscii(buf, ts, e, "Call Trace:") || startsWithAscii(buf, ts, e, "Call trace:") || startsWithAscii(buf, ts, e, "Backtrace:")) this.mode = "trace";
      return true;
    }
    if (startsWithAscii(buf, ts, e, "RIP: ")) return this.ripLine(buf, ts, e, line);
    if (buf[ts] === CH.LT) return this.sectionMarker(buf, ts, e, line);
    return false;
  }

  private isKnown(buf: Uint8Array, ts: number, e: number): boolean {
    for (const p of KNOWN_PREFIXES) if (startsWithAscii(buf, ts, e, p)) return true;
    if (e - ts < 200) {
      const text = latin1(buf, ts, Math.min(e, ts + 24));
      if (RE_REGLINE.test(text)) return true;
    }
    // `9fa0: 00000000 …` ARM exception stack dumps.
    let q = ts;
    while (q < e && q - ts < 16 && isHex(buf[q])) q++;
    return q - ts >= 4 && q < e && buf[q] === CH.COLON && q + 1 < e && buf[q + 1] === CH.SPACE;
  }

  /** Is this a header line, without consuming it? */
  private peekHeader(buf: Uint8Array, ts: number, e: number): boolean {
    if (startsWithAscii(buf, ts, e, "task:") || startsWithAscii(buf, ts, e, "INFO: task ") || startsWithAscii(buf, ts, e, "CPU: ")) return true;
    if (!oldHeaderShape(buf, ts, e)) return false;
    const text = latin1(buf, ts, e);
    return RE_OLD_A.test(text) || RE_OLD_B.test(text) || RE_OLD_C.test(text);
  }

  /** Task headers, report headers, trace starts. True when consumed. */
  private headerLine(buf: Uint8Array, ts: number, e: number, line: number, time: number): boolean {
    const c = buf[ts];
    if (c === 116 && startsWithAscii(buf, ts, e, "task:")) {
      const m = RE_NEW.exec(latin1(buf, ts, e));
      if (m === null) return false;
      const comm = trimRight(buf.slice(ts + 5, ts + 5 + byteLen(m[1])));
      const sec = this.ensureSection("task-dump", line, time, false);
      const tid = Number(m[5]);
      const tgid = m[6] === undefined ? null : Number(m[6]);
      this.startTask(sec, { tid, pid: tgid ?? null, comm, state: m[2], ppid: Number(m[7]), flags: m[8] === undefined ? null : parseInt(m[8], 16), running: m[3] !== "" }, line);
      return true;
    }
    if (c === 73 && startsWithAscii(buf, ts, e, "INFO: task ")) {
      const m = RE_INFO.exec(latin1(buf, ts, e));
      if (m === null) return false;
      this.reportSection("hung-task", line, time);
      this.closeTask();
      this.mode = "none";
      this.pendingInfo = { tid: Number(m[2]), comm: buf.slice(ts + 11, ts + 11 + byteLen(m[1])), line };
      return true;
    }
    if (c === 67 && startsWithAscii(buf, ts, e, "CPU: ")) {
      const m = RE_CPU.exec(latin1(buf, ts, e));
      if (m === null) return false;
      const sec = this.reportSection(this.sec?.kind === "hung-task" || this.sec?.kind === "rcu-stall" ? this.sec.kind : "oops", line, time);
      const at = indexOfSeq(buf, ts, e, " Comm: ");
      const comm = buf.slice(at + 7, at + 7 + byteLen(m[3]));
      const rel = /(?:Not tainted|Tainted: [A-Z ]*?) +(\S+)/.exec(latin1(buf, ts, e));
      if (rel !== null) sec.release ??= rel[1];
      const tid = Number(m[2]);
      this.startTask(sec, { tid, pid: null, comm, cpu: Number(m[1]), running: true }, line);
      return true;
    }
    if (startsWithAscii(buf, ts, e, "Call Trace:") || startsWithAscii(buf, ts, e, "Call trace:") || startsWithAscii(buf, ts, e, "Backtrace:")) {
      const sec = this.ensureSection("task-dump", line, time, false);
      if (sec.b.current === null || this.mode === "closed" || this.mode === "none") {
        const info = this.pendingInfo;
        if (info !== null) this.startTask(sec, { tid: info.tid, pid: null, comm: info.comm, state: "D" }, info.line);
        else this.startTask(sec, { pid: null, tid: null }, line);
      }
      this.mode = "trace";
      return true;
    }
    if (c === 78 && startsWithAscii(buf, ts, e, "NMI backtrace for cpu")) {
      this.reportSection(this.sec?.kind === "hung-task" || this.sec?.kind === "rcu-stall" ? this.sec.kind : "oops", line, time);
      this.closeTask();
      this.mode = "none";
      return true;
    }
    if ((c === 114 || c === 73) && (startsWithAscii(buf, ts, e, "rcu: INFO: ") || startsWithAscii(buf, ts, e, "INFO: rcu")) && contains(buf, ts, e, "stall")) {
      this.reportSection("rcu-stall", line, time);
      this.closeTask();
      this.mode = "none";
      return true;
    }
    for (const o of OOPS_STARTS) {
      if (startsWithAscii(buf, ts, e, o)) {
        if (this.sec === null || this.sec.kind === "sysrq-t" || this.sec.kind === "sysrq-w" || this.sec.kind === "task-dump") this.reportSection("oops", line, time);
        this.closeTask();
        this.mode = "none";
        return true;
      }
    }
    // Column headers of show_state (≤ 5.9).
    if (c === 116 && startsWithAscii(buf, ts, e, "task ") && contains(buf, ts, e, " PC ")) return true;
    if ((c === 102 && startsWithAscii(buf, ts, e, "free ")) || (c === 115 && startsWithAscii(buf, ts, e, "sibling") && e - ts === 7)) return true;
    if (c === 73 && startsWithAscii(buf, ts, e, "INFO: ")) return false;
    // Old-format task lines: a state letter and the numeric columns.
    if (!oldHeaderShape(buf, ts, e)) return false;
    const text = latin1(buf, ts, e);
    let m = RE_OLD_A.exec(text);
    let tid: number;
    let ppid: number;
    let running = false;
    let state: string;
    let commLen: number;
    if (m !== null) {
      commLen = byteLen(m[1]);
      state = m[2];
      tid = Number(m[4]);
      ppid = Number(m[5]);
    } else {
      m = RE_OLD_B.exec(text) ?? RE_OLD_C.exec(text);
      if (m === null) return false;
      commLen = byteLen(m[1]);
      state = m[2];
      running = m[4] !== undefined;
      tid = Number(m[6]);
      ppid = Number(m[7]);
    }
    const sec = this.ensureSection("task-dump", line, time, false);
    const comm = trimRight(buf.slice(ts, ts + commLen));
    this.startTask(sec, { tid, pid: null, comm, state, ppid, running }, line);
    return true;
  }

  private other(buf: Uint8Array, s: number, ts: number, e: number, line: number): void {
    if (this.mode === "trace" && !(ts === s && looksLikeLogMessage(buf, ts, e))) {
      this.sec!.b.addUnparsed(line);
      return;
    }
    if (this.isKnown(buf, ts, e) || isHexWords(buf, ts, e) || (buf[ts] === CH.LT && RE_SECTION.test(latin1(buf, ts, Math.min(e, ts + 32))))) {
      if (isTrailer(buf, ts, e) && this.sec !== null && this.sec.b.tasks.length > 0) this.sec.endReached = true;
      return;
    }
    this.noise(line, buf, s, e);
  }

  private noise(line: number, buf: Uint8Array, s: number, e: number): void {
    this.wasNoise = true;
    const sec = this.sec;
    if (this.firstUnread.length < 3 && !(buf[s] === CH.HASH && (s + 1 >= e || buf[s + 1] === CH.SPACE))) {
      this.firstUnread.push({ line, text: latin1(buf, s, Math.min(e, s + 80)) });
    }
    if (sec === null) {
      if (this.preNoise++ < NOISE_LIST) this.preNoiseLines.push(line);
      return;
    }
    if (sec.b.tasks.length > 0) sec.endReached = true;
    if (sec.noise++ < NOISE_LIST) sec.noiseLines.push(line);
  }

  // ── tasks and sections ───────────────────────────────────────────────────────────────────────

  private startTask(sec: Section, p: Partial<Task>, line: number): void {
    this.closeTask();
    sec.b.startTask(p, line);
    sec.endReached = false;
    this.pendingInfo = null;
    this.skipFrames = false;
    this.mode = "header";
    this.stackSections = [];
  }

  private endTrace(): void {
    this.mode = "closed";
    this.stackSections = [];
  }

  private closeTask(): void {
    const sec = this.sec;
    if (sec === null) return;
    sec.b.endTask();
  }

  private sameStack(pid: number, line: number): void {
    const sec = this.sec!;
    const b = sec.b;
    const cur = b.current;
    if (cur === null) return;
    const fromIndex = b.findTask((t) => t.tid === pid);
    const from = fromIndex < 0 ? undefined : b.tasks.get(fromIndex);
    if (from === undefined) {
      b.addUnparsed(line);
      return;
    }
    const f = b.frames;
    const n = from.frameStart + from.frameCount;
    for (let i = from.frameStart; i < n; i++) f.pushCopy(f, i, line);
    this.endTrace();
  }

  private newSection(kind: DmesgKind, line: number, time: number, banner: boolean): Section {
    this.closeTask();
    this.mode = "none";
    this.pendingInfo = null;
    const prev = this.sec;
    if (prev !== null && prev.b.tasks.length > 0) prev.endReached = true;
    const sec: Section = {
      // A banner is the dump's own word on what it holds: --format does not make a sysrq-w a sysrq-t.
      kind: banner ? kind : (this.forced ?? kind),
      banner,
      b: new CaptureBuilder(),
      firstLine: line,
      lastLine: line,
      lastTime: time,
      drops: [],
      gaps: [],
      noise: 0,
      noiseLines: [],
      endReached: false,
      release: null,
    };
    // Noise before the first section is reported with it.
    if (this.sections.length === 0) {
      sec.noise = this.preNoise;
      sec.noiseLines = this.preNoiseLines;
    }
    this.sections.push(sec);
    this.sec = sec;
    return sec;
  }

  private ensureSection(kind: DmesgKind, line: number, time: number, banner: boolean): Section {
    return this.sec ?? this.newSection(kind, line, time, banner);
  }

  /** A report header: joins the current report section unless a dump or a long gap intervenes. */
  private reportSection(kind: DmesgKind, line: number, time: number): Section {
    const cur = this.sec;
    // A report printed into a task dump that has not ended (an RCU stall during a long sysrq-t
    // over a serial console, a WARNING, the unwinder's own warning) does not end it: the dump's
    // tasks go on after it. Splitting there made a series whose verdict was the last piece's, and
    // the tasks before the report dropped out. Kept as one section, with the report's place
    // marked as a gap (its lines may have displaced the dump's).
    if (cur !== null && (cur.kind === "sysrq-t" || cur.kind === "sysrq-w") && cur.b.tasks.length > 0 && !cur.endReached) {
      cur.gaps.push(line);
      return cur;
    }
    if (cur !== null && cur.kind !== "sysrq-t" && cur.kind !== "sysrq-w" && cur.kind !== "task-dump") {
      const gap = !Number.isNaN(time) && !Number.isNaN(cur.lastTime) && time - cur.lastTime > SECTION_GAP_SECONDS;
      if (!gap) {
        cur.lastTime = Number.isNaN(time) ? cur.lastTime : time;
        return cur;
      }
    }
    if (cur !== null && cur.kind === "task-dump" && cur.b.tasks.length === 0) {
      cur.kind = this.forced ?? kind;
      return cur;
    }
    return this.newSection(kind, line, time, false);
  }

  private capture(s: Section, index: number): Capture {
    const cap = s.b.finish({ name: this.name, format: s.kind, section: index, firstLine: s.firstLine, lastLine: s.lastLine });
    cap.hidesSchedFrames = false;
    cap.host.release = s.release;
    const why: Reason[] = [];
    const anonymous = s.b.tasks.filter((t) => t.tid === null).length;
    if (s.kind === "sysrq-t") {
      const tids = new Set(s.b.tasks.map((t) => t.tid));
      if (!s.banner) why.push({ code: "no-banner", message: "no `Show State` banner: an excerpt of a sysrq-t dump" });
      if (!tids.has(1)) why.push({ code: "missing-init", message: "pid 1 is not in the dump" });
      if (!tids.has(2)) why.push({ code: "missing-kthreadd", message: "pid 2 (kthreadd) is not in the dump" });
      if (!s.endReached) why.push({ code: "end-not-reached", message: "the input ends inside the last task's block: the dump may be cut" });
    } else if (s.kind === "sysrq-w") {
      why.push({ code: "blocked-only", message: "sysrq-w lists only blocked (D) tasks" });
    } else if (s.kind === "hung-task") {
      why.push({ code: "hung-task", message: "a hung-task report shows only the tasks blocked too long" });
    } else if (s.kind === "rcu-stall") {
      why.push({ code: "rcu-stall", message: "an RCU-stall report shows only the stalled tasks" });
    } else if (s.kind === "oops") {
      why.push({ code: "oops", message: "an oops or NMI backtrace shows only the tasks on CPUs" });
    } else {
      why.push({ code: "excerpt", message: "task blocks without a sysrq banner or report header: an excerpt" });
    }
    if (s.drops.length > 0) why.push({ code: "messages-dropped", message: `the log says messages were dropped or suppressed (line ${s.drops.slice(0, NOISE_LIST).join(", ")})` });
    if (s.gaps.length > 0) why.push({ code: "omission", message: `omission marks (\`...\`) inside or between traces (line ${s.gaps.slice(0, NOISE_LIST).join(", ")})` });
    if (anonymous > 0) {
      why.push({ code: "anonymous-stacks", message: `${anonymous} trace(s) without a task header (the excerpt starts mid-trace)` });
      // Such a trace may lack its innermost frames (the ones that would matter): truncated.
      for (let i = 0; i < cap.tasks.length; i++) if (cap.tasks.tidOf(i) === null) cap.tasks.stackStatusCode[i] = STACK_STATUS_CODE.truncated;
    }
    cap.completeness = why;
    cap.complete = why.length === 0 ? true : false;
    if (s.noise > 0) {
      cap.warnings.push({
        code: "noise-lines",
        message: `${s.noise} line(s) between task blocks are not part of the dump and were skipped (line ${s.noiseLines.join(", ")}${s.noise > s.noiseLines.length ? ", …" : ""})`,
      });
    }
    return cap;
  }
}

// ── helpers ────────────────────────────────────────────────────────────────────────────────────

/** Old-format header candidates end in `0xFLAGS` (+ a vendor field) or `(L-TLB)`/`(NOTLB)`. */
function oldHeaderShape(buf: Uint8Array, ts: number, e: number): boolean {
  return contains(buf, ts, e, " 0x") || (e - ts > 6 && buf[e - 1] === 41 && buf[e - 2] === 66 && buf[e - 3] === 76 && buf[e - 4] === 84);
}

const TRAILERS = ["Showing all locks", "Showing busy workqueues", "Sched Debug Version", "runnable tasks:", "---[ end trace", "Sending NMI from CPU"];

/** Lines that follow a dump: the dump's end was reached. */
function isTrailer(buf: Uint8Array, ts: number, e: number): boolean {
  for (const t of TRAILERS) if (startsWithAscii(buf, ts, e, t)) return true;
  return contains(buf, ts, e, " lock held by ") || contains(buf, ts, e, " locks held by ");
}

/** `RSP: 0018:…`, `Workqueue: …`, ` r7 = …`, `sp=…`: a first word ending in `:` or holding `=`. */
function firstWordHasColonOrEq(buf: Uint8Array, ts: number, e: number): boolean {
  for (let i = ts; i < e; i++) {
    const c = buf[i];
    if (c === CH.SPACE) return i + 1 < e && buf[i + 1] === CH.EQ;
    if (c === CH.EQ) return true;
    if (c === CH.COLON) return true;
  }
  return false;
}

function readProbe(buf: Uint8Array, ts: number, e: number): boolean {
  const probe = new CaptureBuilder();
  probe.startTask({}, 0);
  return readFrameLine(probe, buf, ts, e, 0, 0, true) === LineKind.Frame;
}

function sameBytes(buf: Uint8Array, start: number, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

function contains(buf: Uint8Array, s: number, e: number, needle: string): boolean {
  return indexOfSeq(buf, s, e, needle) >= 0;
}

function indexOfSeq(buf: Uint8Array, s: number, e: number, needle: string): number {
  const n = needle.length;
  const c0 = needle.charCodeAt(0);
  outer: for (let i = s; i + n <= e; i++) {
    if (buf[i] !== c0) continue;
    for (let j = 1; j < n; j++) if (buf[i + j] !== needle.charCodeAt(j)) continue outer;
    return i;
  }
  return -1;
}

function isAll(buf: Uint8Array, s: number, e: number, c: number): boolean {
  for (let i = s; i < e; i++) if (buf[i] !== c) return false;
  return e - s >= 3;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

/** Raw stack words: 8- or 16-digit hex words separated by blanks (old x86, MIPS, i386). */
function isHexWords(buf: Uint8Array, s: number, e: number): boolean {
  let words = 0;
  let i = s;
  while (i < e) {
    const w0 = i;
    while (i < e && isHex(buf[i])) i++;
    const w = i - w0;
    if (w !== 8 && w !== 16) return false;
    words++;
    if (i < e && buf[i] !== CH.SPACE && buf[i] !== CH.TAB) return false;
    while (i < e && (buf[i] === CH.SPACE || buf[i] === CH.TAB)) i++;
  }
  return words > 0;
}

/** `subsystem: message` or a sentence: not a frame a parser failed to read. */
function looksLikeLogMessage(buf: Uint8Array, ts: number, e: number): boolean {
  return indexOfSeq(buf, ts, e, ": ") > 0 || (e > ts && buf[e - 1] === CH.COLON);
}

function trimRight(b: Uint8Array): Uint8Array {
  let n = b.length;
  while (n > 0 && b[n - 1] === CH.SPACE) n--;
  return n === b.length ? b : b.slice(0, n);
}

/** Byte length of a latin1-decoded string (one byte per char). */
function byteLen(s: string): number {
  return s.length;
}

/** Parses a whole kernel log held in memory. */
export function parseDmesg(input: Uint8Array, name = "<input>", forced: DmesgKind | null = null): Capture[] {
  const p = new DmesgParser(name, forced);
  p.push(input);
  return p.finish();
}
