/** Shared test helpers: fixtures from this repo only (never ../shared at run time). */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { check, type CheckResult } from "../src/check.js";
import type { DecideOptions } from "../src/decide/livepatch.js";
import { parseNativeJson } from "../src/ingest/nativeJson.js";
import { parseProcText } from "../src/ingest/procText.js";
import { type AppliedPatch, type Capture, FrameFlag, frameLine } from "../src/model.js";
import type { RefTask } from "../src/ingest/procTextReference.js";
import { latin1 } from "../src/ingest/bytes.js";
import { PatchsafeError } from "../src/errors.js";
import { emptyPatch, parseFuncArg, type PatchSpec } from "../src/patch/spec.js";
import { referenceScanner } from "../src/scan/reference.js";
import type { Scanner } from "../src/scan/types.js";
import { parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";

export const FIXTURES = new URL("./fixtures/", import.meta.url);

export function fixturePath(rel: string): string {
  return new URL(rel, FIXTURES).pathname;
}

export function fixtureBytes(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(rel, FIXTURES)));
}

export function fixtureText(rel: string): string {
  return readFileSync(new URL(rel, FIXTURES), "latin1");
}

let hostSymbols: SymbolTable | null = null;
let hostKallsymsText: string | null = null;

/** This machine's /proc/kallsyms as captured in test/fixtures/host/kallsyms.gz. */
export function hostKallsyms(): string {
  hostKallsymsText ??= gunzipSync(readFileSync(new URL("host/kallsyms.gz", FIXTURES))).toString("latin1");
  return hostKallsymsText;
}

export function hostTable(): SymbolTable {
  hostSymbols ??= parseSymbolTable(hostKallsyms(), { file: "kallsyms" });
  return hostSymbols;
}

export function hostCapture(name: "proc-grep.txt" | "proc-tail.txt" | "capture.json"): Capture {
  return name.endsWith(".json") ? parseNativeJson(fixtureText(`host/${name}`), name) : parseProcText(fixtureBytes(`host/${name}`), name);
}

export function patchOf(...funcs: string[]): PatchSpec {
  const p = emptyPatch();
  for (const f of funcs) p.funcs.push(parseFuncArg(f));
  return p;
}

/** An applied patch as sysfs shows it: enabled, not in transition, unless `extra` says otherwise. */
export function appliedPatch(name: string, funcs: [string, string, string?][], extra: Partial<AppliedPatch> = {}): AppliedPatch {
  return {
    name,
    enabled: true,
    transition: false,
    replace: false,
    forced: false,
    stackOrder: null,
    funcs: funcs.map(([object, oldName, newName]) => ({ object, oldName, oldSympos: 0, newName: newName ?? null, newSize: null, force: false })),
    ...extra,
  };
}

export function runCheck(
  capture: Capture,
  funcs: string[] | PatchSpec,
  opts: { symbols?: SymbolTable | null; options?: Partial<DecideOptions>; scanner?: Scanner } = {},
): CheckResult {
  return check({
    capture,
    symbols: opts.symbols === undefined ? hostTable() : opts.symbols,
    patch: Array.isArray(funcs) ? patchOf(...funcs) : funcs,
    scanner: opts.scanner ?? referenceScanner,
    options: opts.options,
  });
}

/** A native JSON capture from a compact description (tests of single rules). */
export function nativeCapture(tasks: Record<string, unknown>[], extra: Record<string, unknown> = {}): Capture {
  return parseNativeJson(JSON.stringify({ format: "patchsafe-capture", version: 1, complete: true, hidesSchedFrames: true, ...extra, tasks }), "test.json");
}

/** A user task sleeping in epoll with a complete, reliable stack (this host's real frames). */
export const USER_EPOLL = [
  "do_epoll_wait+0x588/0x5e0",
  "do_compat_epoll_pwait.part.0+0xe/0x80",
  "__x64_sys_epoll_pwait+0x8c/0x150",
  "do_syscall_64+0x71/0x290",
  "entry_SYSCALL_64_after_hwframe+0x76/0x7e",
];

/** The byte parser's capture in the reference parser's shape. */
export function normalize(cap: Capture): RefTask[] {
  return cap.tasks.map((t) => {
    const frames = [];
    for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
      const fl = cap.frames.flags[i];
      if (fl & FrameFlag.UNPARSED) {
        frames.push({ kind: "unparsed" as const, guess: false, symbol: null, object: null, buildId: null, offset: 0, size: null, address: null, line: frameLine(cap, t, i) });
        continue;
      }
      const bare = (fl & FrameFlag.BARE_HEX) !== 0;
      frames.push({
        kind: "frame" as const,
        guess: (fl & FrameFlag.GUESS) !== 0,
        symbol: bare ? null : cap.strings.get(cap.frames.symbol[i]),
        object: bare ? null : cap.strings.get(cap.frames.object[i]),
        buildId: cap.frames.buildId[i] < 0 ? null : cap.strings.get(cap.frames.buildId[i]),
        offset: cap.frames.offset[i],
        size: fl & FrameFlag.HAS_SIZE ? cap.frames.size[i] : null,
        address: cap.frames.address(i),
        line: frameLine(cap, t, i),
      });
    }
    return {
      pid: t.pid,
      tid: t.tid,
      comm: t.comm === null ? null : latin1(t.comm, 0, t.comm.length),
      stackStatus: t.stackStatus,
      errno: t.errno,
      endMarker: t.endMarker,
      frames,
    };
  });
}

/** The PatchsafeError code `fn` throws, or "no error" (any other exception is rethrown). */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof PatchsafeError) return e.code;
    throw e;
  }
  return "no error";
}

/** Lines per task as frameLine() gives them. */
export function taskLines(cap: Capture): number[][] {
  return cap.tasks.map((t) => Array.from({ length: t.frameCount }, (_, k) => frameLine(cap, t, t.frameStart + k)));
}
