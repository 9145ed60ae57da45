/**
 * Which address ranges block, per function of the patch (SPEC §2; kernel/livepatch/transition.c
 * `klp_check_stack_func`): applying a patch to a function nothing patched yet checks the
 * original `[old, old + old_size)`, with the kallsyms size (alignment padding included).
 *
 * Every function also gets a one-byte `conservative-extra` range at its end: a frame printed
 * `foo+0x40/0x40` (`%pB`, a return address right after a noreturn call, or `? __pfx_X+0x10/0x10`
 * = &X) is the first byte after foo. The kernel attributes it to whatever starts there; patchsafe
 * also counts it against foo, as a blocker the kernel's check does not see.
 */
import { PatchsafeError } from "../errors.js";
import { VMLINUX } from "../model.js";
import type { ResolvedFrames } from "../symbols/resolve.js";
import { findObjectSymbol, type SymbolTable, symbolAddress } from "../symbols/table.js";
import type { PatchSpec } from "./spec.js";

export type RangeRole =
  | "original"
  | "previous-replacement"
  | "own-replacement"
  | "nop"
  | "conservative-extra";

export interface BlockingRange {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  role: RangeRole;
  /** Index into RangeTable.functions. */
  func: number;
  /** Whether the kernel's own check tests this range. */
  kernelSees: boolean;
}

export interface PatchedFunction {
  object: string;
  /** null for a raw --range. */
  name: string | null;
  /** The sympos the user gave (0 = unique); null for a raw range. */
  sympos: number | null;
  /** Symbol table row of the original, -1 when unknown. */
  symbol: number;
  /** The object is loaded (present in the symbol table or on a stack). */
  loaded: boolean;
  force: boolean;
  ranges: BlockingRange[];
}

export interface RangeTable {
  functions: PatchedFunction[];
  /** All ranges, in function order. */
  ranges: BlockingRange[];
  /** Patched (object, name) pairs, for "could this unresolved frame be a patched function". */
  names: Set<string>;
  warnings: string[];
}

export function buildRanges(patch: PatchSpec, table: SymbolTable | null, resolved: ResolvedFrames): RangeTable {
  const functions: PatchedFunction[] = [];
  const ranges: BlockingRange[] = [];
  const names = new Set<string>();
  const warnings: string[] = [];
  const useTable = table !== null && table.hasAddresses;

  const add = (fi: number, start: bigint, end: bigint, role: RangeRole, kernelSees: boolean): void => {
    if (end <= start) return;
    const r: BlockingRange = { start, end, role, func: fi, kernelSees };
    functions[fi].ranges.push(r);
    ranges.push(r);
  };

  for (const f of patch.funcs) {
    names.add(f.oldName);
    const fi = functions.length;
    const entry: PatchedFunction = { object: f.object, name: f.oldName, sympos: f.oldSympos, symbol: -1, loaded: true, force: f.force, ranges: [] };
    functions.push(entry);
    if (useTable) {
      if (f.object !== VMLINUX && !table.objects.includes(f.object)) {
        entry.loaded = false;
        warnings.push(
          `module ${f.object} is not loaded: ${f.oldName} is patched when it loads, without a stack check, so it is not checked now`,
        );
        continue;
      }
      const found = findObjectSymbol(table, f.object, f.oldName, f.oldSympos);
      if (!found.ok) throw new PatchsafeError(found.code, found.message);
      const row = found.index;
      entry.symbol = row;
      const start = symbolAddress(table, row);
      const size = BigInt(table.size[row]);
      if (size === 0n) {
        throw new PatchsafeError("E_SYMBOLS", `the size of '${f.oldName}' in '${f.object}' cannot be computed from the symbol table (no symbol follows it)`);
      }
      const t = String.fromCharCode(table.type[row]).toLowerCase();
      if (t !== "t" && t !== "w") {
        warnings.push(`'${f.oldName}' in '${f.object}' is not a text symbol (type ${String.fromCharCode(table.type[row])})`);
      }
      add(fi, start, start + size, "original", true);
      add(fi, start + size, start + size + 1n, "conservative-extra", false);
    } else {
      if (f.oldSympos > 0) {
        throw new PatchsafeError(
          "E_NEED_SYMBOLS",
          `${f.object}:${f.oldName},${f.oldSympos}: a sympos needs a symbol table to count occurrences in; give --kallsyms`,
        );
      }
      // Without a symbol table every symbol of that name on a stack is a candidate (sympos 0
      // would have to be unique in the real kernel; a duplicate name would then be rejected by
      // the kernel, which patchsafe cannot check here).
      const blocks = resolved.synthetic.get(`${f.object}\u0000${f.oldName}`) ?? [];
      for (const b of blocks) {
        add(fi, b.base, b.base + BigInt(b.size), "original", true);
        add(fi, b.base + BigInt(b.size), b.base + BigInt(b.size) + 1n, "conservative-extra", false);
      }
    }
  }
  for (const r of patch.ranges) {
    if (!useTable) throw new PatchsafeError("E_NEED_SYMBOLS", `--range ${r.text} needs frames with addresses: give --kallsyms`);
    const fi = functions.length;
    functions.push({ object: VMLINUX, name: null, sympos: null, symbol: -1, loaded: true, force: false, ranges: [] });
    add(fi, r.start, r.end, "original", true);
  }
  return { functions, ranges, names, warnings };
}

/** Whether `name` is a patched name or a compiler clone of one (.cold, .part.N, .isra.N, .constprop.N, .llvm.*). */
export function couldBePatched(name: string, patched: Set<string>): boolean {
  if (patched.has(name)) return true;
  const dot = name.indexOf(".");
  return dot > 0 && patched.has(name.slice(0, dot));
}

/** `f.cold` / `f.cold.N` → `f`, else null. */
export function coldParent(name: string): string | null {
  const m = /^(.+?)\.cold(?:\.\d+)?$/.exec(name);
  return m === null ? null : m[1];
}
