/**
 * The obviously-correct reference for procText.ts: whole-text, one regular expression per line
 * shape, plain objects. Slow; used only by the differential tests. Returns a normalized view that
 * both parsers can be compared on.
 */

export interface RefFrame {
  kind: "frame" | "unparsed";
  guess: boolean;
  symbol: string | null;
  object: string | null;
  buildId: string | null;
  offset: number;
  size: number | null;
  address: bigint | null;
  line: number;
}

export interface RefTask {
  pid: number | null;
  tid: number | null;
  comm: string | null;
  stackStatus: string;
  errno: string | null;
  endMarker: boolean;
  frames: RefFrame[];
}

const TAIL = /^==> \/proc\/(\d+)(?:\/task\/(\d+))?\/stack <==$/;
const HEADER = /^== \/proc\/(\d+)(?:\/task\/(\d+))?(?:\/stack)?(?: (.*))?$/;
const GREP = /^\/proc\/(\d+)(?:\/task\/(\d+))?\/stack:(.*)$/;
const ERR = /^(?:grep|tail|cat): .*?\/proc\/(\d+)(?:\/task\/(\d+))?\/stack.*?(Operation not permitted|Permission denied|No such file or directory|No such process)?$/;
const FRAME = /^\[<([0-9a-fA-F]{1,16})>\] +(\? +)?(.+)$/;
const BARE = /^0x([0-9a-fA-F]{1,16})$/;
const SYM = /^([^+ ]+)(?:\+0x([0-9a-fA-F]{1,8})(?:\/0x([0-9a-fA-F]{1,8}))?)?(?: +\[([^\] [\]]+)(?: ([0-9a-fA-F]+))?\])?$/;
const ERRNO: Record<string, string> = {
  "Operation not permitted": "EPERM",
  "Permission denied": "EACCES",
  "No such file or directory": "ENOENT",
  "No such process": "ESRCH",
};

export function parseProcTextReference(text: string): RefTask[] {
  const tasks: RefTask[] = [];
  let cur: RefTask | null = null;
  const start = (pid: number | null, tid: number | null, comm: string | null = null): RefTask => {
    cur = { pid, tid, comm, stackStatus: "ok", errno: null, endMarker: false, frames: [] };
    tasks.push(cur);
    return cur;
  };
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  lines.forEach((raw, idx) => {
    const lineNo = idx + 1;
    const rawLine = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const line = rawLine.replace(/^[ \t]+|[ \t]+$/g, "");
    if (line === "") return;
    const frame = (body: string): void => {
      const t: RefTask = cur ?? start(null, null);
      const m = FRAME.exec(body.replace(/^[ \t]+|[ \t]+$/g, ""));
      const unparsed = (): void => {
        t.frames.push({ kind: "unparsed", guess: false, symbol: null, object: null, buildId: null, offset: 0, size: null, address: null, line: lineNo });
      };
      if (m === null) return unparsed();
      const addr = BigInt(`0x${m[1]}`);
      const guess = m[2] !== undefined;
      const token = m[3];
      const bare = BARE.exec(token);
      if (bare !== null) {
        const v = BigInt(`0x${bare[1]}`);
        if (v === 0xffffffffffffffffn) {
          t.endMarker = true;
          return;
        }
        t.frames.push({ kind: "frame", guess, symbol: null, object: null, buildId: null, offset: 0, size: null, address: v, line: lineNo });
        if (t.endMarker) unparsed();
        return;
      }
      const s = SYM.exec(token);
      if (s === null) return unparsed();
      t.frames.push({
        kind: "frame",
        guess,
        symbol: s[1],
        object: s[4] ?? "vmlinux",
        buildId: s[5] ?? null,
        offset: s[2] === undefined ? 0 : Number.parseInt(s[2], 16),
        size: s[3] === undefined ? null : Number.parseInt(s[3], 16),
        address: addr === 0n ? null : addr,
        line: lineNo,
      });
      if (t.endMarker) unparsed();
    };
    if (line.startsWith("[")) return frame(line);
    let m = TAIL.exec(line);
    if (m !== null) return void start(+m[1], +(m[2] ?? m[1]));
    if (line.startsWith("== ")) {
      m = HEADER.exec(line);
      if (m !== null) {
        // The comm is the raw remainder of the line after the path and one space.
        const at = rawLine.indexOf(line);
        const afterPath = rawLine.slice(at).match(/^== \/proc\/\d+(?:\/task\/\d+)?(?:\/stack)?/)![0].length;
        const comm = rawLine.length > at + afterPath ? rawLine.slice(at + afterPath + 1) : null;
        return void start(+m[1], +(m[2] ?? m[1]), comm);
      }
    }
    m = GREP.exec(line);
    if (m !== null) {
      const pid = +m[1];
      const tid = +(m[2] ?? m[1]);
      const c = cur as RefTask | null;
      if (c === null || c.pid !== pid || c.tid !== tid || c.stackStatus !== "ok") start(pid, tid);
      return frame(m[3]);
    }
    m = ERR.exec(line);
    if (m !== null) {
      const pid = +m[1];
      const tid = +(m[2] ?? m[1]);
      const c = cur as RefTask | null;
      const t = c !== null && c.pid === pid && c.tid === tid && c.frames.length === 0 ? c : start(pid, tid);
      const errno = m[3] === undefined ? "EIO" : ERRNO[m[3]];
      t.errno = errno;
      t.stackStatus = errno === "ENOENT" || errno === "ESRCH" ? "vanished" : "unreadable";
      cur = null;
      return;
    }
    if (cur !== null) {
      (cur as RefTask).frames.push({ kind: "unparsed", guess: false, symbol: null, object: null, buildId: null, offset: 0, size: null, address: null, line: lineNo });
    }
  });
  // In a dump with task headers, a trace without one is the tail of a cut stack (procText.ts).
  const headed = tasks.some((t) => t.tid !== null);
  for (const t of tasks) {
    if (t.stackStatus === "ok" && t.frames.length === 0) t.stackStatus = "empty";
    if (t.stackStatus === "ok" && t.frames.length >= 64 && !t.endMarker) t.stackStatus = "truncated";
    if (headed && t.tid === null && t.stackStatus === "ok") t.stackStatus = "truncated";
  }
  return tasks;
}
