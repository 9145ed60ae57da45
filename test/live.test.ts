/**
 * Live capture of this host. Skips, saying why, where /proc/<pid>/stack is not readable (not
 * root, or a container without CAP_SYS_ADMIN).
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { check } from "../src/check.js";
import { captureLive } from "../src/node/capture.js";
import { parseStat } from "../src/node/live.js";
import { loadWasmScannerSync } from "../src/node/wasm.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { patchOf } from "./helpers.js";

function stackReadable(): string | null {
  try {
    readFileSync("/proc/self/stack");
    readFileSync("/proc/2/stack");
    return null;
  } catch (e) {
    return `/proc/*/stack is not readable here (${(e as { code?: string }).code ?? String(e)}): live capture tests skipped`;
  }
}
const skip = stackReadable();
if (skip !== null) console.warn(skip);

function tidsNow(): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      try {
        const st = parseStat(readFileSync(`/proc/${p}/task/${t}/stat`, "latin1"));
        if (st !== null) out.set(Number(t), st.startTime);
      } catch {
        /* exited */
      }
    }
  }
  return out;
}

describe.skipIf(skip !== null)("live capture of this host", () => {
  it("every tid it reports existed in /proc at capture time, with the same start time", () => {
    const before = tidsNow();
    const cap = captureLive();
    const after = tidsNow();
    expect(cap.tasks.length).toBeGreaterThan(10);
    for (const t of cap.tasks) {
      const start = before.get(t.tid!) ?? after.get(t.tid!);
      expect(start, `tid ${t.tid} (${new TextDecoder().decode(t.comm ?? new Uint8Array())}) is not in /proc`).toBeDefined();
      expect(t.startTime).toBe(start);
    }
    // pid 2 is kthreadd: a kthread by its flags, with a readable stack.
    const kthreadd = cap.tasks.find((t) => t.tid === 2)!;
    expect(new TextDecoder().decode(kthreadd.comm!)).toBe("kthreadd");
    expect(kthreadd.flags! & 0x00200000).toBeTruthy();
    expect(kthreadd.frameCount).toBeGreaterThan(0);
  });

  it("leaves its own threads out and says so", () => {
    const cap = captureLive();
    expect(cap.tasks.some((t) => t.pid === process.pid)).toBe(false);
    expect(cap.excluded.length).toBeGreaterThan(0);
    expect(cap.excluded.every((e) => e.pid === process.pid || e.reason.includes("helper"))).toBe(true);
  });

  it("an unreadable stack makes the capture partial and the verdict at best undecided", () => {
    const cap = captureLive();
    const unreadable = cap.tasks.filter((t) => t.stackStatus === "unreadable");
    expect(cap.complete).toBe(unreadable.length === 0 && cap.host.capSysAdmin === true && cap.host.initPidNamespace === true);
    const symbols = parseSymbolTable(readFileSync("/proc/kallsyms", "latin1"), { file: "/proc/kallsyms" });
    const r = check({ capture: cap, symbols, patch: patchOf("meminfo_proc_show"), scanner: loadWasmScannerSync() });
    if (cap.complete === false) expect(r.verdict.verdict).not.toBe("safe");
    // The kworkers' main loop is on the live stacks and blocks.
    const w = check({ capture: cap, symbols, patch: patchOf("worker_thread"), scanner: loadWasmScannerSync() });
    expect(w.verdict.verdict).toBe("blocked");
  });
});
