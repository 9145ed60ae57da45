/**
 * The obviously-correct reference for the kernel-log task-dump parser (dmesg.ts), for the
 * modern x86 sysrq-t / hung-task shape only: printk timestamps, `task:… state:… pid:…` headers,
 * `Call Trace:`, `<TASK>`/`<IRQ>` sections, `? ` guesses and noise lines between tasks. One regex
 * per line shape, plain objects; used only by the differential test.
 */

export interface RefDumpFrame {
  text: string;
  guess: boolean;
  regs: boolean;
}

export interface RefDumpTask {
  tid: number;
  comm: string;
  state: string;
  frames: RefDumpFrame[];
}

const PREFIX = /^\[ *\d+\.\d{6}\] /;
const HEADER = /^task:(.{1,15}?) +state:([A-Za-z]) +stack: *\d+ +pid: *(\d+) +(?:tgid: *\d+ +)?ppid: *\d+ +flags:0x[0-9a-f]+$/;
const FRAME = /^ (\? )?([A-Za-z0-9_.$]+\+0x[0-9a-f]+\/0x[0-9a-f]+(?: \[[A-Za-z0-9_]+\])?)$/;

export function parseDmesgReference(text: string): RefDumpTask[] {
  const tasks: RefDumpTask[] = [];
  let cur: RefDumpTask | null = null;
  let inTrace = false;
  let regs = false;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "").replace(PREFIX, "").replace(/[ \t]+$/, "");
    const h = HEADER.exec(line);
    if (h !== null) {
      cur = { tid: Number(h[3]), comm: h[1].trimEnd(), state: h[2], frames: [] };
      tasks.push(cur);
      inTrace = false;
      regs = false;
      continue;
    }
    if (cur === null) continue;
    if (line === "Call Trace:") {
      inTrace = true;
      continue;
    }
    if (!inTrace) continue;
    if (line === " <TASK>") continue;
    if (line === " </TASK>") {
      inTrace = false;
      continue;
    }
    if (line === " <IRQ>") {
      regs = true;
      continue;
    }
    if (line === " </IRQ>") {
      regs = false;
      continue;
    }
    const f = FRAME.exec(line);
    if (f !== null) cur.frames.push({ text: f[2], guess: f[1] !== undefined, regs });
  }
  return tasks;
}
