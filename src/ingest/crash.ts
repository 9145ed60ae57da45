/**
 * The crash utility's `bt`, `bt -a`, `bt -s`, `bt -t` and `foreach bt` (FORMATS.md §8; crash
 * task.c `print_task_header()`, x86_64.c / arm64.c `*_print_stack_entry()`):
 *
 *   PID: 428    TASK: ffff880036b6c560  CPU: 1   COMMAND: "jbd2/dm-1-8"
 *    #0 [ffff880035779a70] __schedule at ffffffff815df272
 *    #3 [f2815e24] stext_lock (via drain_cpu_caches) at c025fa55 [module]
 *    #0 [ffff8800664a1c90] machine_kexec+0x167 at ffffffff810327b7          (bt -s)
 *       [exception RIP: native_safe_halt+0xb]                               (pt_regs: REGS)
 *   --- <NMI exception stack> ---          frames above it ran on that stack (REGS)
 *         START: schedule at c01190e0 / [c1aa1f28] dput at c0157dbc      (bt -t: a raw scan, `? `)
 *
 * Frames carry absolute addresses (HAS_ADDRESS; the symbol's offset is unknown unless `bt -s`):
 * resolve them by address (symbols/addresses.ts). Each `crash>` command is a section. Per-line
 * strings with anchored linear regexes: crash sessions are small.
 */
import { type Capture, FrameFlag, type Reason, type Task } from "../model.js";
import { CaptureBuilder } from "./builder.js";
import { encodeLatin1, hexOut, latin1, LineSplitter, parseHex64 } from "./bytes.js";

const RE_HEADER = /^PID: *(\d+) +TASK: *([0-9a-fA-F]+) +CPU: *(\S+) +COMMAND: "(.*)"$/;
const RE_FRAME = /^#(\d+) +\[([0-9a-fA-F]+)\] +(.{1,300}?) at ([0-9a-fA-F]{1,16})(?: +\[([^\]\s]+)\])?$/;
const RE_FUNC = /^([^\s()+]+)(?:\+(0x[0-9a-fA-F]{1,8}|\d{1,10}))?(?: +\(via [^)]*\))?$/;
const RE_MODULE_ONLY = /^\(([^)\s]+) module\)$/;
const RE_RAW = /^\[([0-9a-fA-F]+)\] +(\S+) at ([0-9a-fA-F]{1,16})(?: +\[([^\]\s]+)\])?$/;
const RE_START = /^START: +(\S+) at ([0-9a-fA-F]{1,16})$/;
const RE_EXC = /^\[exception RIP: ([^\]\s+]+)(?:\+(0x[0-9a-fA-F]{1,8}|\d{1,10}))?\]$/;
const RE_STACKSWITCH = /^--- <[^>]{1,40}> ---$/;
const RE_REGS = /^[A-Z][A-Z0-9_]{1,7}: +[0-9a-fA-F]+(?: +[A-Z][A-Z0-9_]{1,7}: +[0-9a-fA-F]+)*$/;
const RE_ARGS = /^\(.*\)$/;
/** A task seen on a CPU is running; an idle task (pid 0) always is, and has rules of its own (SPEC §3 idle tasks). */
function markActive(t: Task): void {
  if (t.tid !== 0) t.running = true;
}

/**
 * The innermost frame of a task that was on a CPU when the dump was taken: the panicking task
 * (kdump's machine_kexec / crash_kexec path) and the other CPUs' active tasks, stopped by the
 * crash NMI or IPI.
 */
const ACTIVE_ENTRY = new Set(["machine_kexec", "__crash_kexec", "crash_kexec", "crash_nmi_callback", "kdump_nmi_callback", "crash_save_cpu", "ipi_cpu_crash_stop", "crash_smp_send_stop", "native_machine_crash_shutdown"]);

interface Section {
  b: CaptureBuilder;
  command: string | null;
  firstLine: number;
  lastLine: number;
  warnings: Reason[];
  noise: number;
  noiseLines: number[];
  gaps: number[];
  /** `bt -t`/`-T`: a raw text-symbol scan, not a chain. */
  raw: boolean;
  /** `bt -a` / `bt -c CPU`: the active task of each CPU, every one running. */
  active: boolean;
  /** Traces read without a task header (anonymous, truncated tasks). */
  anonymous: number;
}

/**
 * A line that belongs to a trace (a `#N [...]` frame, a `bt -t` word, an exception RIP, a stack
 * switch): one seen outside a task block is part of a trace whose header was lost.
 */
const RE_TRACE_LINE = /^(?:#\d|\[[0-9a-fA-F]+\] |\[exception RIP:|START: |--- <)/;

export class CrashParser {
  private readonly splitter: LineSplitter;
  private readonly sections: Section[] = [];
  private sec: Section | null = null;

  constructor(private readonly name: string) {
    this.splitter = new LineSplitter((buf, s, e, line) => this.line(latin1(buf, s, e), line));
  }

  push(chunk: Uint8Array): void {
    this.splitter.push(chunk);
  }

  finish(): Capture[] {
    this.splitter.end();
    const out: Capture[] = [];
    for (const s of this.sections) if (s.b.tasks.length > 0) out.push(this.capture(s, out.length));
    return out;
  }

  private newSection(command: string | null, line: number): Section {
    this.sec?.b.endTask();
    const s: Section = { b: new CaptureBuilder(), command, firstLine: line, lastLine: line, warnings: [], noise: 0, noiseLines: [], gaps: [], anonymous: 0, raw: command !== null && /^bt\b.*\s-[a-zA-Z]*[tT]/.test(command), active: command !== null && /^bt\b.*\s-[a-zA-Z]*[ac]/.test(command) };
    this.sections.push(s);
    this.sec = s;
    return s;
  }

  private line(raw: string, line: number): void {
    const text = raw.replace(/^[\s>]+/, "").trimEnd();
    if (text === "") return;
    const prompt = /^crash> ?(.*)$/.exec(text);
    if (prompt !== null) {
      this.newSection(prompt[1], line);
      return;
    }
    const h = text.length < 300 ? RE_HEADER.exec(text) : null;
    if (h !== null) {
      const sec = this.sec ?? this.newSection(null, line);
      const tid = Number(h[1]);
      const cpu = /^\d+$/.test(h[3]) ? Number(h[3]) : null;
      // crash prints no task state; a task that was on a CPU is known by the command (bt -a),
      // its innermost frame or a stack switch (below). Read as sleeping, a running task was
      // judged by a stack that was still moving (SPEC §3 rule 1: undecided).
      sec.b.startTask({ pid: null, tid, comm: encodeLatin1(h[4]), cpu, running: sec.active && tid !== 0 }, line);
      sec.lastLine = line;
      return;
    }
    let sec = this.sec;
    if (sec?.b.current == null && RE_TRACE_LINE.test(text)) {
      // Frames without a task header: the header was lost (a comm holding a newline splits the
      // `PID: … COMMAND: "…"` line so it no longer reads as one; a line crash's bt prints that
      // this reader does not know ended the task before). Skipped as noise, that task vanished
      // from the check and a `foreach bt` could be called safe with it blocked: keep its frames
      // as an anonymous task whose trace may lack its innermost frames (truncated), and the
      // capture as partial.
      sec ??= this.newSection(null, line);
      sec.b.startTask({ pid: null, tid: null, comm: null, stackStatus: "truncated" }, line);
      sec.anonymous++;
    }
    const b = sec?.b;
    if (sec === undefined || sec === null || b === undefined || b.current === null) return this.noise(line, text);
    sec.lastLine = line;
    let m = text.length < 400 ? RE_FRAME.exec(text) : null;
    if (m !== null) {
      const mod = m[5] ?? null;
      const fn = RE_FUNC.exec(m[3]);
      if (fn !== null) this.frame(b, fn[1], fn[2], m[4], mod, line, sec.raw ? FrameFlag.GUESS : 0);
      else if (RE_MODULE_ONLY.test(m[3])) this.frame(b, null, undefined, m[4], null, line, 0);
      else b.addUnparsed(line);
      return;
    }
    if ((m = RE_START.exec(text)) !== null) return this.frame(b, m[1], undefined, m[2], null, line, 0);
    if ((m = RE_RAW.exec(text)) !== null) return this.frame(b, m[2], undefined, m[3], m[4] ?? null, line, FrameFlag.GUESS);
    if ((m = RE_EXC.exec(text)) !== null) return this.frame(b, m[1], m[2], null, null, line, FrameFlag.REGS);
    if (RE_STACKSWITCH.test(text)) {
      // The frames so far ran on an interrupt / exception stack.
      const t = b.current;
      for (let i = t.frameStart; i < b.frames.length; i++) b.frames.flags[i] |= FrameFlag.REGS;
      // Only a task on a CPU runs on an IRQ or exception stack: it was running when captured.
      markActive(t);
      return;
    }
    if (RE_REGS.test(text) || RE_ARGS.test(text)) return;
    if (/^(?:bt|crash|foreach): /.test(text) || /WARNING: /.test(text)) {
      // `bt: WARNING: cannot determine starting stack frame for task …`: no trace for this task.
      const t = b.current;
      if (b.frames.length === t.frameStart) {
        t.stackStatus = "unreadable";
        t.errno = null;
      } else b.addUnparsed(line);
      sec.warnings.push({ code: "crash-warning", message: `line ${line}: ${text.slice(0, 160)}` });
      return;
    }
    if (text === "..." || text === "[...]") {
      sec.gaps.push(line);
      return;
    }
    if (/^#\d/.test(text) || /^\[[0-9a-fA-F]+\]/.test(text)) {
      b.addUnparsed(line);
      return;
    }
    // Prose after a trace (help text, a new command's output): the task block ended.
    b.endTask();
    this.noise(line, text);
  }

  private frame(b: CaptureBuilder, sym: string | null, off: string | undefined, addr: string | null, mod: string | null, line: number, flags: number): void {
    const i = b.frames.push();
    const f = b.frames;
    f.line[i] = line;
    if (addr !== null) {
      const bytes = encodeLatin1(addr);
      if (parseHex64(bytes, 0, bytes.length)) {
        f.addrLo[i] = hexOut.lo;
        f.addrHi[i] = hexOut.hi;
        flags |= FrameFlag.HAS_ADDRESS;
      }
    }
    if (sym === null) {
      f.flags[i] = flags | FrameFlag.BARE_HEX;
      return;
    }
    const t = b.current;
    if (t !== null && i === t.frameStart && ACTIVE_ENTRY.has(sym)) markActive(t);
    const symBytes = encodeLatin1(sym);
    f.symbol[i] = b.interner.intern(symBytes, 0, symBytes.length);
    const objBytes = encodeLatin1(mod ?? "vmlinux");
    f.object[i] = b.interner.intern(objBytes, 0, objBytes.length);
    if (off !== undefined) {
      f.offset[i] = off.startsWith("0x") ? parseInt(off.slice(2), 16) : Number(off);
      flags |= FrameFlag.HAS_OFFSET;
    }
    f.flags[i] = flags | FrameFlag.SYMBOLIC;
  }

  private noise(line: number, _text: string): void {
    const s = this.sec;
    if (s === null) return;
    if (s.noise++ < 5) s.noiseLines.push(line);
  }

  private capture(s: Section, index: number): Capture {
    const cap = s.b.finish({ name: this.name, format: "crash", section: index, firstLine: s.firstLine, lastLine: s.lastLine });
    cap.hidesSchedFrames = false;
    const cmd = s.command;
    const reasons: Reason[] = [];
    if (cmd !== null && /^foreach\s+bt\s*$/.test(cmd) && s.gaps.length === 0) {
      cap.complete = "unknown";
      reasons.push({ code: "crash-foreach", message: "crash `foreach bt` lists every task, but its text cannot prove that none was left out" });
    } else {
      cap.complete = false;
      reasons.push({
        code: "crash-bt",
        message: cmd === null ? "crash `bt` output without its command: it may show only some tasks" : `crash \`${cmd}\` shows only the tasks it names`,
      });
      if (s.gaps.length > 0) reasons.push({ code: "omission", message: `omission marks (\`...\`) at line ${s.gaps.slice(0, 5).join(", ")}` });
    }
    if (s.anonymous > 0) {
      cap.complete = false;
      reasons.push({ code: "anonymous-stacks", message: `${s.anonymous} trace(s) without a task header (a header line that could not be read, or a line that ended the task before its frames did)` });
    }
    if (s.raw) reasons.push({ code: "raw-scan", message: "bt -t is a raw scan of text addresses on the stack, not a call chain: every frame is a guess" });
    cap.completeness = reasons;
    cap.warnings.push(...s.warnings);
    if (s.noise > 0) cap.warnings.push({ code: "noise-lines", message: `${s.noise} line(s) outside task blocks were skipped (line ${s.noiseLines.join(", ")}${s.noise > 5 ? ", …" : ""})` });
    return cap;
  }
}

/** Parses a whole crash session held in memory. */
export function parseCrash(input: Uint8Array, name = "<input>"): Capture[] {
  const p = new CrashParser(name);
  p.push(input);
  return p.finish();
}
