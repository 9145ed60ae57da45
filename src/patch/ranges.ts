/**
 * Which address ranges block, per function, per model and direction (SPEC §2; the kernel code:
 * kernel/livepatch/transition.c `klp_check_stack_func`, kernel/livepatch/core.c `klp_add_nops`,
 * dynup/kpatch kmod/core/core.c `kpatch_backtrace_address_verify`, `kpatch_unregister`).
 *
 *   livepatch apply    not yet patched: original [old, old+size)        (role original)
 *                      already patched: previous top replacement only   (previous-replacement)
 *                      replace: + a nop per function an enabled patch replaces and this one
 *                      does not: that function's previous top replacement (nop)
 *   livepatch revert   own replacement [new, new+size)                  (own-replacement); a replace
 *                      patch still in transition: its nops check the original (nop)
 *   kpatch apply       original / the newest loaded module's replacement; replace: + every
 *                      non-forced function of every other loaded module (nop)
 *   kpatch revert      per function, the newest loaded module's replacement (its own when newest)
 *   kpatch force       nothing for that function; the module is then pinned for ever
 *
 * Every range also gets a one-byte `conservative-extra` range at its end: a frame printed
 * `foo+0x40/0x40` (`%pB`, a return address right after a noreturn call, or `? __pfx_X+0x10/0x10`
 * = &X) is the first byte after foo. The kernel attributes it to whatever starts there; patchsafe
 * also counts it against foo, as a blocker the kernel's check does not see.
 */
import type { Direction, Model } from "../decide/verdict.js";
import { PatchsafeError } from "../errors.js";
import { type AppliedFunction, type AppliedPatch, VMLINUX } from "../model.js";
import type { ResolvedFrames } from "../symbols/resolve.js";
import { findObjectSymbol, llvmVariantCount, prefetchNames, type SymbolTable, symbolAddress } from "../symbols/table.js";
import type { PatchSpec } from "./spec.js";

export type RangeRole = "original" | "previous-replacement" | "own-replacement" | "nop" | "conservative-extra";

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
  /** `patch`: a function of the patch; `nop`: added by atomic replace; `range`: a raw --range. */
  kind: "patch" | "nop" | "range";
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
  /** The name the blocking code carries in a stack (a replacement may be named differently). */
  blockingName: string | null;
  /** The object the blocking code lives in (a replacement lives in its patch module). */
  blockingObject: string;
  ranges: BlockingRange[];
}

export interface RangeTable {
  functions: PatchedFunction[];
  /** All ranges, in function order. */
  ranges: BlockingRange[];
  /** Names whose unresolved frames could be a blocking function (originals and replacements). */
  names: Set<string>;
  /**
   * Patch modules the table lists but where a replacement could not be placed (not found by that
   * name, ambiguous, no size), with why: the kernel knows its address, so any frame in such a
   * module could be in it.
   */
  unplaced: Map<string, string>;
  warnings: string[];
}

export interface RangeContext {
  model: Model;
  direction: Direction;
  /** Patches already enabled, oldest first. */
  applied: AppliedPatch[];
  /**
   * Whether that order is the host's: false when the capture could not learn it (no stack_order
   * before Linux 6.13; listed by name). Then every enabled patch replacing a function may be the
   * newest, and each one's replacement is checked.
   */
  orderKnown?: boolean;
}

const DEFAULT_CONTEXT: RangeContext = { model: "livepatch", direction: "apply", applied: [], orderKnown: true };

/** kernel/livepatch/core.c `klp_find_func`: sympos 0 ("unique") and 1 name the same symbol (sysfs shows 0 as 1). */
const sameFunc = (a: { object: string; oldName: string; oldSympos: number }, b: { object: string; oldName: string; oldSympos: number }): boolean =>
  a.object === b.object && a.oldName === b.oldName && (a.oldSympos || 1) === (b.oldSympos || 1);

/** Enabled patches in stack order (oldest first): stack_order when every patch has one, else as given. */
export function stackOrder(applied: AppliedPatch[]): AppliedPatch[] {
  const enabled = applied.filter((p) => p.enabled);
  if (enabled.every((p) => p.stackOrder !== null)) return [...enabled].sort((a, b) => a.stackOrder! - b.stackOrder!);
  return enabled;
}

/** Why a patch cannot be reverted on a host (notRevertable). */
export interface NotRevertable {
  /** unnamed: no name to find it by; not-applied: not in the stack; disabled: loaded, not enabled; disabling: its revert is under way. */
  code: "unnamed" | "not-applied" | "disabled" | "disabling";
  message: string;
}

/**
 * Why `patch` cannot be reverted on a host with this applied stack, or null when it can: only an
 * enabled patch of the stack can be disabled (a disabled one has nothing to switch back; a
 * transition to disabled is the kernel's own revert already under way, and writing 0 again is
 * -EINVAL). One rule for `check --revert` (a usage error) and `fleet --revert` (a host with
 * nothing to revert, or, while its revert is under way, an undecided one).
 */
export function notRevertable(patch: { name: string | null }, applied: AppliedPatch[]): NotRevertable | null {
  if (patch.name === null) return { code: "unnamed", message: "the patch has no name" };
  const self = applied.find((p) => p.name === patch.name);
  if (self === undefined) return { code: "not-applied", message: `'${patch.name}' is not applied` };
  if (!self.enabled) {
    return self.transition
      ? { code: "disabling", message: `'${patch.name}' is being disabled already (its transition is in progress): tasks that have not switched back still run its code` }
      : { code: "disabled", message: `'${patch.name}' is loaded but disabled` };
  }
  return null;
}

/**
 * A patch stack that names one patch twice cannot come from a host (module names are unique):
 * which entry is the patch would be a guess, so the input is refused.
 */
export function assertUniquePatchNames(applied: AppliedPatch[], source: string): void {
  const seen = new Set<string>();
  for (const p of applied) {
    if (seen.has(p.name)) throw new PatchsafeError("E_INPUT", `${source}: the applied patch stack names '${p.name}' twice (module names are unique on a host): damaged or edited input`);
    seen.add(p.name);
  }
}

/** The newest enabled patch replacing this function (livepatch func_stack top / kpatch bucket head). */
export function topReplacement(
  ordered: AppliedPatch[],
  f: { object: string; oldName: string; oldSympos: number },
  exclude: string | null = null,
): { patch: AppliedPatch; func: AppliedFunction } | null {
  for (let i = ordered.length - 1; i >= 0; i--) {
    const p = ordered[i];
    if (p.name === exclude) continue;
    const func = p.funcs.find((x) => sameFunc(x, f));
    if (func !== undefined) return { patch: p, func };
  }
  return null;
}

export function buildRanges(patch: PatchSpec, table: SymbolTable | null, resolved: ResolvedFrames, context: Partial<RangeContext> = {}): RangeTable {
  const ctx: RangeContext = { ...DEFAULT_CONTEXT, ...context };
  const functions: PatchedFunction[] = [];
  const ranges: BlockingRange[] = [];
  const names = new Set<string>();
  const unplaced = new Map<string, string>();
  const warnings: string[] = [];
  const useTable = table !== null && table.hasAddresses;
  const ordered = stackOrder(ctx.applied);
  const self = patch.name === null ? null : (ctx.applied.find((p) => p.name === patch.name) ?? null);

  if (ctx.direction === "revert") {
    const why = notRevertable(patch, ctx.applied);
    if (why !== null) throw new PatchsafeError("E_USAGE", `--revert needs --patch naming an enabled patch of the applied stack (${why.message}; applied: ${ctx.applied.map((p) => p.name).join(", ") || "none"})`);
  }
  // kpatch.ko modules force per function (KPATCH_FORCE_UNSAFE): the same doubt as a forced transition.
  const forcedFuncs = ordered.flatMap((p) => (p.name === patch.name ? [] : p.funcs.filter((x) => x.force).map((x) => `${x.oldName} [${p.name}]`)));
  if (ctx.model === "kpatch" && forcedFuncs.length > 0) {
    warnings.push(`the patch stack records forced functions (${forcedFuncs.join(", ")}): kpatch never checked them when their module loaded, so tasks may still be in older code than the version patchsafe checks`);
  }
  if (ordered.some((p) => p.forced)) {
    warnings.push(
      `the patch stack records a forced transition (${ordered.filter((p) => p.forced).map((p) => p.name).join(", ")}): tasks may still run code older than the version patchsafe checks, which nothing looks at`,
    );
  }

  const addRange = (fi: number, start: bigint, end: bigint, role: RangeRole, kernelSees: boolean): void => {
    if (end <= start) return;
    const r: BlockingRange = { start, end, role, func: fi, kernelSees };
    functions[fi].ranges.push(r);
    ranges.push(r);
    if (role !== "conservative-extra") {
      const x: BlockingRange = { start: end, end: end + 1n, role: "conservative-extra", func: fi, kernelSees: false };
      functions[fi].ranges.push(x);
      ranges.push(x);
    }
  };

  /**
   * Adds the ranges of symbol (object, name, sympos) to function fi. `strict`: lookup failures
   * are the kernel's errors (a patch's own original); otherwise they become a warning (a
   * replacement living in a module whose symbols the table lacks).
   */
  const addSymbol = (fi: number, object: string, name: string, sympos: number, role: RangeRole, strict: boolean, sizeHint: number | null): void => {
    names.add(name);
    if (useTable) {
      if (object !== VMLINUX && !table.objects.includes(object)) {
        if (strict) return; // caller handles "module not loaded"
        warnings.push(`${name} [${object}] is not in the symbol table: tasks in it cannot be matched by address and are undecided when a frame names it`);
        return;
      }
      const found = findObjectSymbol(table, object, name, sympos);
      if (!found.ok) {
        if (strict) throw new PatchsafeError(found.code, found.message);
        warnings.push(`${name} [${object}]: ${found.message}`);
        if (object !== VMLINUX) unplaced.set(object, `${name} [${object}]: ${found.message}`);
        return;
      }
      const start = symbolAddress(table, found.index);
      let size = BigInt(table.size[found.index]);
      if (size === 0n && sizeHint !== null) size = BigInt(sizeHint);
      if (size === 0n) {
        if (strict) throw new PatchsafeError("E_SYMBOLS", `the size of '${name}' in '${object}' cannot be computed from the symbol table (no symbol follows it)`);
        warnings.push(`the size of ${name} [${object}] is unknown: tasks in it are undecided`);
        if (object !== VMLINUX) unplaced.set(object, `the size of ${name} [${object}] is unknown`);
        names.add(name);
        return;
      }
      if (strict && functions[fi].symbol < 0) functions[fi].symbol = found.index;
      const t = String.fromCharCode(table.type[found.index]).toLowerCase();
      if (strict && t !== "t" && t !== "w") warnings.push(`'${name}' in '${object}' is not a text symbol (type ${String.fromCharCode(table.type[found.index])})`);
      addRange(fi, start, start + size, role, true);
      return;
    }
    if (sympos > 0 && strict) {
      throw new PatchsafeError("E_NEED_SYMBOLS", `${object}:${name},${sympos}: a sympos needs a symbol table to count occurrences in; give --kallsyms`);
    }
    // Without a symbol table every symbol of that (object, name) on a stack is a candidate.
    for (const b of resolved.synthetic.get(`${object}\u0000${name}`) ?? []) addRange(fi, b.base, b.base + BigInt(b.size), role, true);
    // `__pfx_X+0x10/0x10` (or `__cfi_X+N/N`) is the byte after X's padding: X's first byte, where
    // the kernel's check finds X (an interrupted IP at X's entry, `? ` &X). With a table resolve
    // keys it there; here the padding has a block of its own, whose end stands for X's start.
    for (const pad of ["__pfx_", "__cfi_"]) {
      for (const b of resolved.synthetic.get(`${object}\u0000${pad}${name}`) ?? []) {
        if (b.size > 1) addRange(fi, b.base + BigInt(b.size), b.base + BigInt(b.size) + 1n, role, true);
      }
    }
  };

  const newFunction = (kind: PatchedFunction["kind"], f: { object: string; oldName: string; oldSympos: number; force: boolean }): number => {
    functions.push({ kind, object: f.object, name: f.oldName, sympos: f.oldSympos, symbol: -1, loaded: true, force: f.force, blockingName: f.oldName, blockingObject: f.object, ranges: [] });
    return functions.length - 1;
  };

  /** The range of the version a task may be in now: the top replacement, or the original. */
  const addCurrentVersion = (fi: number, f: { object: string; oldName: string; oldSympos: number }, exclude: string | null, roleIfReplaced: RangeRole, roleIfOriginal: RangeRole): void => {
    const top = topReplacement(ordered, f, exclude);
    if (top === null) {
      addSymbol(fi, f.object, f.oldName, f.oldSympos, roleIfOriginal, roleIfOriginal === "original", null);
      return;
    }
    const newName = top.func.newName ?? f.oldName;
    functions[fi].blockingName = newName;
    functions[fi].blockingObject = top.patch.name;
    addSymbol(fi, top.patch.name, newName, 0, roleIfReplaced, false, top.func.newSize);
    if (ctx.orderKnown === false) {
      const others: string[] = [];
      for (const p of ordered) {
        if (p.name === exclude || p === top.patch) continue;
        const g = p.funcs.find((x) => sameFunc(x, f));
        if (g === undefined) continue;
        others.push(p.name);
        addSymbol(fi, p.name, g.newName ?? f.oldName, 0, roleIfReplaced, false, g.newSize);
      }
      if (others.length > 0) warnings.push(`the order of the enabled patches is unknown, so any of ${[top.patch.name, ...others].join(", ")} may hold the newest ${f.oldName}: each one's replacement is checked`);
    }
  };

  // Reverting: the kernel checks every function of the loaded patch (klp_check_stack() walks
  // klp_transition_patch's functions; kpatch's unregister all of the module's), which is what the
  // host recorded for it, whatever the --patch file lists (another build of the same-named patch,
  // or an incomplete description of it). Functions the file names beyond those stay, to be safe.
  const extra = ctx.direction === "revert" && self !== null ? self.funcs.filter((g) => !patch.funcs.some((f) => sameFunc(f, g))) : [];
  if (extra.length > 0) {
    warnings.push(`the host's record of ${patch.name} also replaces ${extra.map((g) => (g.object === VMLINUX ? g.oldName : `${g.oldName} [${g.object}]`)).join(", ")}, which the --patch file does not list: the revert checks them too, as the kernel does`);
  }
  const funcs = extra.length > 0 ? [...patch.funcs, ...extra] : patch.funcs;

  // Every name this function may look up, in one scan of the table (see prefetchNames).
  if (useTable) prefetchNames(table, [...new Set([...funcs.map((f) => f.oldName), ...ordered.flatMap((p) => p.funcs.map((f) => f.newName ?? f.oldName))])]);

  const isLoaded = (object: string): boolean => object === VMLINUX || !useTable || table.objects.includes(object);

  for (const f of funcs) {
    names.add(f.oldName);
    const fi = newFunction("patch", f);
    if (!isLoaded(f.object)) {
      functions[fi].loaded = false;
      warnings.push(`module ${f.object} is not loaded: ${f.oldName} is patched when it loads, without a stack check, so it is not checked now`);
      continue;
    }
    // The original must exist whatever the direction (the kernel resolves it at load time).
    if (useTable) {
      const found = findObjectSymbol(table, f.object, f.oldName, f.oldSympos);
      if (!found.ok) throw new PatchsafeError(found.code, found.message);
      functions[fi].symbol = found.index;
      const variants = llvmVariantCount(table, f.object, f.oldName);
      if (variants > 0) {
        warnings.push(`${f.object} also has ${variants} ${f.oldName}.llvm.* symbol(s) (a Clang-LTO kernel): Linux ~6.2–6.10 counted those in ${f.oldName}'s sympos, so on such a kernel ${f.oldName},${f.oldSympos} may name another copy, or be ambiguous`);
      }
    } else if (f.oldSympos > 0) {
      throw new PatchsafeError("E_NEED_SYMBOLS", `${f.object}:${f.oldName},${f.oldSympos}: a sympos needs a symbol table to count occurrences in; give --kallsyms`);
    }
    if (f.force) {
      if (ctx.model === "kpatch") {
        warnings.push(`${f.oldName} is forced (KPATCH_FORCE_UNSAFE): kpatch never checks it, and the patch module can then never be unloaded`);
        continue;
      }
      warnings.push(`${f.oldName} is marked force, which only kpatch.ko honours: livepatch checks it like any function`);
    }
    if (ctx.direction === "apply") {
      addCurrentVersion(fi, f, patch.name, "previous-replacement", "original");
    } else if (ctx.model === "kpatch") {
      // kpatch_unregister: the newest loaded module patching that address (its own when newest).
      const own = self!.funcs.find((x) => sameFunc(x, f));
      const ownIsTop = own !== undefined && topReplacement(ordered, f)?.patch.name === self!.name;
      addCurrentVersion(fi, f, null, ownIsTop ? "own-replacement" : "previous-replacement", "original");
      // Not the newest: kpatch checks only the newest module's code, yet unloading this module
      // frees its own, which a task may still be in (when a newer module forced the function,
      // nothing checked it). Checked here besides, as a range the kernel does not see.
      if (own !== undefined && !ownIsTop) {
        const newName = own.newName ?? f.oldName;
        const before = functions[fi].ranges.length;
        addSymbol(fi, self!.name, newName, 0, "conservative-extra", false, own.newSize);
        for (const r of functions[fi].ranges.slice(before)) r.kernelSees = false;
      }
    } else {
      const own = self!.funcs.find((x) => sameFunc(x, f));
      const newName = own?.newName ?? f.newName ?? f.oldName;
      functions[fi].blockingName = newName;
      functions[fi].blockingObject = self!.name;
      addSymbol(fi, self!.name, newName, 0, "own-replacement", false, own?.newSize ?? f.newSize);
    }
  }

  // Atomic replace: nops for what enabled patches replace and this patch does not.
  const replacing = patch.replace || (self?.replace ?? false);
  if (replacing) {
    const seen = new Set<string>();
    for (const p of ordered) {
      if (p.name === patch.name) continue;
      for (const g of p.funcs) {
        const key = `${g.object}\u0000${g.oldName}\u0000${g.oldSympos}`;
        const mine = funcs.find((f) => sameFunc(f, g));
        // livepatch: no nop where this patch replaces the function itself. kpatch's replace check
        // walks every other module's functions whatever the new module patches.
        if (seen.has(key) || (ctx.model !== "kpatch" && mine !== undefined)) continue;
        seen.add(key);
        if (ctx.model === "kpatch") {
          // kpatch replace: every non-forced function of every other loaded module, not only tops
          // (the top version of a function this patch also patches is already there, unless this
          // patch forces it).
          const covered = mine !== undefined && !mine.force && ctx.direction === "apply" ? (topReplacement(ordered, g, patch.name)?.patch.name ?? null) : null;
          for (const q of ordered) {
            if (q.name === patch.name || q.name === covered) continue;
            const h = q.funcs.find((x) => sameFunc(x, g));
            if (h === undefined || h.force) continue;
            const fi = newFunction("nop", { ...g, force: false });
            functions[fi].blockingName = h.newName ?? g.oldName;
            functions[fi].blockingObject = q.name;
            if (ctx.direction === "apply") addSymbol(fi, q.name, h.newName ?? g.oldName, 0, "nop", false, h.newSize);
          }
          continue;
        }
        if (!isLoaded(g.object)) continue;
        const fi = newFunction("nop", { ...g, force: false });
        names.add(g.oldName);
        if (ctx.direction === "apply") addCurrentVersion(fi, g, patch.name, "nop", "nop");
        else if (self?.transition) addSymbol(fi, g.object, g.oldName, g.oldSympos, "nop", false, null);
        // A fully enabled replace patch has no nops left (discarded when its transition completed).
      }
    }
    if (ctx.model === "kpatch" && ordered.some((p) => p.name !== patch.name && p.funcs.some((x) => x.force))) {
      warnings.push("a replaced kpatch module has a forced function: after the replace every replaced module stays pinned (rmmod fails)");
    }
  }

  for (const r of patch.ranges) {
    if (!useTable) throw new PatchsafeError("E_NEED_SYMBOLS", `--range ${r.text} needs frames with addresses: give --kallsyms`);
    functions.push({ kind: "range", object: VMLINUX, name: null, sympos: null, symbol: -1, loaded: true, force: false, blockingName: null, blockingObject: VMLINUX, ranges: [] });
    // Like a function's range, with its conservative extra: a return address at HI is a call that
    // was the range's last instruction (SPEC §2's `foo+size/size`), which the kernel does not see.
    addRange(functions.length - 1, r.start, r.end, "original", true);
    // With a System.map under KASLR, frames are keyed in the map's link-time addresses (resolve
    // subtracted the shift the dump's own addresses show), but a range copied from the dump, the
    // live kallsyms or a crash session holds runtime addresses, the ones the kernel tests. Which
    // space the user meant cannot be told: check the range in both.
    const shift = resolved.kaslrShift ?? 0n;
    if (shift !== 0n && r.start - shift > 0n) {
      addRange(functions.length - 1, r.start - shift, r.end - shift, "original", true);
      warnings.push(`--range ${r.text}: the dump runs KASLR-shifted by 0x${shift.toString(16)} from the System.map; the range is checked both as runtime addresses and as System.map addresses`);
    }
  }
  return { functions, ranges, names, unplaced, warnings };
}

/** Whether `name` is a patched name or a compiler clone of one (.cold, .part.N, .isra.N, .constprop.N, .llvm.*). */
export function couldBePatched(name: string, patched: Set<string>): boolean {
  if (patched.has(name)) return true;
  // `__pfx_X+0x10/0x10` (`__cfi_X`): %pB looked up the padding's last byte for X's first one,
  // where the kernel's check finds X. A duplicate X has as many paddings, all of one size, so
  // such a frame is ambiguous exactly when X is, and may be the patched copy.
  for (const pad of ["__pfx_", "__cfi_"]) {
    if (name.length > pad.length && name.startsWith(pad)) return couldBePatched(name.slice(pad.length), patched);
  }
  const dot = name.indexOf(".");
  if (dot > 0 && patched.has(name.slice(0, dot))) return true;
  // The other way round: Clang-LTO kernels (since 5.12) may print a symbol with its suffix cut
  // off (kallsyms cleanup_symbol_name in the %pS/%pB lookup: `.llvm.<hash>`, on early ThinLTO
  // everything from the first `.`) while /proc/kallsyms lists it whole: a frame `foo` that the
  // table cannot place may be the patched `foo.llvm.123`.
  for (const p of patched) if (strippedForm(name, p)) return true;
  return false;
}

/**
 * Whether `name` is how a Clang-LTO kernel may print the symbol `p`: cut at `.llvm.` (kallsyms
 * cleanup_symbol_name) or, on early ThinLTO kernels, at its first `.`. (Only the first-dot form
 * was checked: `foo.constprop.0.llvm.1`, printed `foo.constprop.0`, was not a patched name.)
 */
export function strippedForm(name: string, p: string): boolean {
  if (p.length <= name.length || !p.startsWith(name)) return false;
  const d = p.indexOf(".");
  const l = p.indexOf(".llvm.");
  return (d > 0 && d === name.length) || (l > 0 && l === name.length);
}

/** `f.cold` / `f.cold.N` → `f`, else null. */
export function coldParent(name: string): string | null {
  const m = /^(.+?)\.cold(?:\.\d+)?$/.exec(name);
  return m === null ? null : m[1];
}
