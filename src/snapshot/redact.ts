/**
 * SPEC §8 `--redact`: a copy of the capture and symbol table without any absolute address
 * (frames, symbol addresses, section bounds, `_text`), keeping names, types, sizes and order so
 * a check by name and size still works; and optional salted hashing of user tasks' comms.
 */
import { type Capture, FrameColumns, FrameFlag, type NameSet, type Task, TaskTable } from "../model.js";
import { rowsNamed, type SymbolTable, symbolAddress } from "../symbols/table.js";
import type { SectionOfName } from "../decide/livepatch.js";
import { SECTION_NAMES, type SectionRows } from "./model.js";

/** The capture with every frame address dropped (HAS_ADDRESS cleared). Tasks are shared. */
export function redactCapture(cap: Capture): Capture {
  const src = cap.frames;
  const f = new FrameColumns(src.length);
  f.length = src.length;
  f.symbol.set(src.symbol.subarray(0, src.length));
  f.object.set(src.object.subarray(0, src.length));
  f.buildId.set(src.buildId.subarray(0, src.length));
  f.offset.set(src.offset.subarray(0, src.length));
  f.size.set(src.size.subarray(0, src.length));
  f.line.set(src.line.subarray(0, src.length));
  for (let i = 0; i < src.length; i++) f.flags[i] = src.flags[i] & ~FrameFlag.HAS_ADDRESS;
  return { ...cap, frames: f };
}

/** Rows of vmlinux symbols inside each special section (from the real bounds). */
export function sectionRowsOf(t: SymbolTable): SectionRows {
  const out: SectionRows = { sched: null, lock: null, entry: null, noinstr: null, cpuidle: null, init: null };
  if (!t.hasAddresses) return out;
  for (const s of SECTION_NAMES) {
    const b = t.sections[s];
    if (b === null) continue;
    const rows: number[] = [];
    for (let i = 0; i < t.count; i++) {
      if (t.object[i] !== 0) continue;
      const a = symbolAddress(t, i);
      if (a >= b[0] && a < b[1]) rows.push(i);
    }
    out[s] = Uint32Array.from(rows);
  }
  return out;
}

/**
 * For a redacted table (no addresses, so no section bounds): the code section a vmlinux function
 * of that name lies in, from the rows the snapshot recorded per section (SectionRows), for the
 * sections that cannot be live-patched at all (SPEC §3 `unpatchable`): `.entry.text`,
 * `.noinstr.text`, `.cpuidle.text`. Any row of that name inside counts (a duplicate name: the
 * conservative answer). Without this, a check of a redacted snapshot lost the `unpatchable`
 * bound that the same capture with its full table gives, and could say `safe`.
 */
export function redactedSectionOf(t: SymbolTable, rows: SectionRows | null): SectionOfName {
  const sections: [keyof SectionRows, string][] = [["entry", ".entry.text"], ["noinstr", ".noinstr.text"], ["cpuidle", ".cpuidle.text"]];
  const vmlinux = t.objects.indexOf("vmlinux");
  return (object, name) => {
    if (rows === null || object !== "vmlinux" || vmlinux < 0) return null;
    const named = (rowsNamed(t, name) ?? []).filter((r) => t.object[r] === vmlinux);
    for (const [s, label] of sections) {
      const inside = rows[s];
      if (inside !== null && named.some((r) => inside.includes(r))) return label;
    }
    return null;
  };
}

/**
 * The table without addresses: coverage "names-only", sizes kept as data, section bounds
 * replaced by the rows inside each section.
 */
export function redactSymbols(t: SymbolTable): { table: SymbolTable; sectionRows: SectionRows } {
  const sectionRows = sectionRowsOf(t);
  const table: SymbolTable = {
    ...t,
    coverage: "names-only",
    hasAddresses: false,
    addrLo: new Uint32Array(t.count),
    addrHi: new Uint32Array(t.count),
    size: t.size.slice(),
    sections: { sched: null, lock: null, entry: null, noinstr: null, cpuidle: null, init: null },
    text: null,
    warnings: t.warnings.slice(),
  };
  return { table, sectionRows };
}

/** FNV-1a 32 (a salted label, not a security primitive). */
function fnv1a(bytes: Uint8Array, salt: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of salt) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

const PF_KTHREAD = 0x00200000;

/**
 * The capture with the comm of every task not known to be a kthread replaced by `~` and 8 hex
 * digits of a hash salted per call: threads of one process still group together, but the salt
 * is not stored, so a name cannot be confirmed by hashing guesses. Kernel threads name
 * themselves (kworker/0:1, ksoftirqd/3): nothing user-chosen to hide, and they stay readable.
 */
export function hashComms(cap: Capture): Capture {
  const salt = new Uint8Array(16);
  globalThis.crypto.getRandomValues(salt);
  const tasks = TaskTable.from(cap.tasks.map((t) => {
    if (t.comm === null) return t;
    if ((t.flags !== null && (t.flags & PF_KTHREAD) !== 0) || t.statusKthread === true) return t;
    const label = `~${fnv1a(t.comm, salt).toString(16).padStart(8, "0")}`;
    return { ...t, comm: Uint8Array.from(label, (c) => c.charCodeAt(0)) };
  }));
  return { ...cap, tasks };
}

/**
 * A capture's available_filter_functions as stored in a snapshot: a bitset over the rows of the
 * snapshot's symbol table (bit r: row r's name is traceable), ~15 KB for a full kallsyms where
 * the names would be ~1 MB. null without a set or without a table: a live capture without a
 * table is at best undecided anyway (no-symbol-table).
 */
export function traceableBits(set: NameSet | null | undefined, t: SymbolTable | null): Uint8Array | null {
  if (set === null || set === undefined || t === null) return null;
  const bits = new Uint8Array((t.count + 7) >> 3);
  for (let r = 0; r < t.count; r++) if (set.has(t.names[r])) bits[r >> 3] |= 1 << (r & 7);
  return bits;
}

/** The set back from traceableBits' bitset and the same table: a name is in it when a row of that name is. */
export function traceableFromBits(bits: Uint8Array, t: SymbolTable): NameSet {
  return { has: (name) => (rowsNamed(t, name) ?? []).some((r) => (bits[r >> 3] & (1 << (r & 7))) !== 0) };
}
