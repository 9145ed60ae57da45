/**
 * The replaced functions of a kpatch-built patch module (.ko), read from the module itself:
 *
 * - `.kpatch.funcs`: an array of `struct kpatch_patch_func { unsigned long new_addr, new_size,
 *   old_addr, old_size, sympos; char *name; char *objname; }` (dynup/kpatch
 *   kmod/patch/kpatch-patch.h). `name`/`objname` (and `new_addr`) are filled by relocations;
 *   the strings live in `.kpatch.strings`.
 * - `.kpatch.force`: pointers (by relocation) to the replacement functions marked
 *   KPATCH_FORCE_UNSAFE; matched against each entry's `new_addr`.
 * - the module name from `.modinfo` (`name=`) or `.gnu.linkonce.this_module` (struct module).
 *
 * Anything that cannot be extracted is a PatchsafeError("E_PATCH_MODULE") naming what is
 * missing; never a partial patch.
 */
import { type ElfFile, type ElfReloc, type ElfSection, readElf, STT_FUNC, STT_SECTION } from "./elf.js";
import type { PatchFunctionSpec, PatchSpec } from "./spec.js";

/** What show-patch prints beyond the PatchSpec: sizes and the replacement's symbol. */
export interface ModuleFunctionDetail {
  object: string;
  oldName: string;
  oldSympos: number;
  /** The replacement's symbol in the module (kpatch keeps the old name). */
  newSymbol: string | null;
  newSize: number | null;
  /** The original function's size as kpatch-build recorded it (0 = unknown). */
  oldSize: number | null;
  force: boolean;
}

export interface PatchModule {
  kind: "kpatch" | "livepatch";
  spec: PatchSpec;
  details: ModuleFunctionDetail[];
}

const NAME = /^[A-Za-z0-9_.$@-]+$/;

/** True when the module has a `.kpatch.funcs` section. */
export function isKpatchModule(elf: ElfFile): boolean {
  return elf.section(".kpatch.funcs") !== undefined;
}

/** Reads a kpatch-built module's functions. */
export function readKpatchModule(bytes: Uint8Array, file: string): PatchSpec {
  return readKpatchModuleDetailed(readElf(bytes, file)).spec;
}

export function readKpatchModuleDetailed(elf: ElfFile): PatchModule {
  const funcs = elf.section(".kpatch.funcs");
  if (funcs === undefined) elf.fail("no .kpatch.funcs section: not a kpatch-built patch module");
  const W = elf.wordSize;
  const entSize = 7 * W;
  if (funcs.size === 0) elf.fail(".kpatch.funcs is empty: the module replaces no function");
  if (funcs.size % entSize !== 0) elf.fail(`.kpatch.funcs is ${funcs.size} bytes, not a multiple of the ${entSize}-byte struct kpatch_patch_func`);
  const relocs = elf.relocsFor(funcs);
  if (relocs.size === 0) elf.fail(".kpatch.funcs has no relocations: its name and objname pointers cannot be resolved");
  const forced = forcedTargets(elf);
  const details: ModuleFunctionDetail[] = [];
  const n = funcs.size / entSize;
  for (let i = 0; i < n; i++) {
    const base = i * entSize;
    const at = `.kpatch.funcs[${i}]`;
    const str = (field: string, off: number): string => {
      const r = relocs.get(base + off);
      if (r === undefined) return elf.fail(`${at}.${field}: no relocation fills the pointer`);
      const t = elf.relocTarget(r, `${at}.${field}`);
      const s = elf.sectionString(t.section, t.offset, `${at}.${field}`);
      if (!NAME.test(s)) elf.fail(`${at}.${field}: ${JSON.stringify(s.slice(0, 80))} is not a symbol or object name`);
      return s;
    };
    const oldName = str("name", 5 * W);
    const object = str("objname", 6 * W);
    const newSize = Number(elf.sectionWord(funcs, base + W, `${at}.new_size`));
    const oldSize = Number(elf.sectionWord(funcs, base + 3 * W, `${at}.old_size`));
    const sympos = elf.sectionWord(funcs, base + 4 * W, `${at}.sympos`);
    if (sympos > 0xffffffffn) elf.fail(`${at}.sympos: ${sympos} is implausible`);
    const newRel = relocs.get(base);
    let newSymbol: string | null = null;
    let force = false;
    if (newRel !== undefined) {
      const t = elf.relocTarget(newRel, `${at}.new_addr`);
      newSymbol = functionAt(elf, t.section, t.offset, t.symbol.type === STT_SECTION ? null : t.symbol.name);
      force = forced.has(`${t.section.index}:${t.offset}`);
    }
    details.push({ object, oldName, oldSympos: Number(sympos), newSymbol, newSize: newSize > 0 ? newSize : null, oldSize: oldSize > 0 ? oldSize : null, force });
  }
  const name = moduleName(elf);
  const specFuncs: PatchFunctionSpec[] = details.map((d) => ({
    object: d.object,
    oldName: d.oldName,
    oldSympos: d.oldSympos,
    newName: d.newSymbol !== null && d.newSymbol !== d.oldName ? d.newSymbol : null,
    newSize: d.newSize,
    force: d.force,
  }));
  // kpatch-build's livepatch hook (kmod/patch/livepatch-patch-hook.c, .modinfo livepatch=Y) sets
  // klp_patch.replace = KLP_REPLACE_ENABLE, true unless built with --non-replace, which the module
  // does not record: taken as replacing (it checks more). The old kpatch.ko core's replace is a
  // load-time parameter (--replace).
  const replace = modinfoHas(elf, "livepatch=Y");
  return { kind: "kpatch", spec: { name, replace, funcs: specFuncs, ranges: [] }, details };
}

/** Whether .modinfo holds this exact `key=value` entry. */
function modinfoHas(elf: ElfFile, entry: string): boolean {
  const mi = elf.section(".modinfo");
  if (mi === undefined) return false;
  const data = elf.sectionData(mi);
  let s = "";
  for (const b of data) s += b === 0 ? "\n" : String.fromCharCode(b);
  return s.split("\n").includes(entry);
}

/** The symbol name of the function at section+offset (a section symbol's target), if any. */
function functionAt(elf: ElfFile, sec: ElfSection, off: number, direct: string | null): string | null {
  if (direct !== null && direct !== "") return direct;
  const f = elf.symbols().find((s) => s.shndx === sec.index && s.value === BigInt(off) && s.type === STT_FUNC);
  return f?.name ?? null;
}

/** `.kpatch.force` entries: where each forced pointer points, as "section:offset". */
function forcedTargets(elf: ElfFile): Set<string> {
  const out = new Set<string>();
  const sec = elf.section(".kpatch.force");
  if (sec === undefined) return out;
  const W = elf.wordSize;
  if (sec.size % W !== 0) elf.fail(`.kpatch.force is ${sec.size} bytes, not a multiple of the pointer size ${W}`);
  const relocs = elf.relocsFor(sec);
  for (let off = 0; off < sec.size; off += W) {
    const r: ElfReloc | undefined = relocs.get(off);
    if (r === undefined) elf.fail(`.kpatch.force[${off / W}]: no relocation names the forced function`);
    const t = elf.relocTarget(r, `.kpatch.force[${off / W}]`);
    out.add(`${t.section.index}:${t.offset}`);
  }
  return out;
}

/**
 * The module's name: `.modinfo` `name=` (modpost writes it), else struct module's `name` in
 * `.gnu.linkonce.this_module` (after `enum module_state state; struct list_head list;`).
 */
export function moduleName(elf: ElfFile): string {
  const mi = elf.section(".modinfo");
  if (mi !== undefined) {
    const data = elf.sectionData(mi);
    let start = 0;
    for (let i = 0; i <= data.length; i++) {
      if (i === data.length || data[i] === 0) {
        let s = "";
        for (let j = start; j < i; j++) s += String.fromCharCode(data[j]);
        if (s.startsWith("name=")) {
          const v = s.slice(5);
          if (!NAME.test(v)) elf.fail(`.modinfo name=${JSON.stringify(v.slice(0, 80))} is not a module name`);
          return v;
        }
        start = i + 1;
      }
    }
  }
  const tm = elf.section(".gnu.linkonce.this_module");
  if (tm !== undefined) {
    const off = elf.wordSize === 8 ? 24 : 12;
    if (tm.size > off) {
      const data = elf.sectionData(tm);
      let s = "";
      for (let j = off; j < data.length && data[j] !== 0 && s.length < 64; j++) s += String.fromCharCode(data[j]);
      if (s !== "" && NAME.test(s)) return s;
    }
  }
  return elf.fail("the module's name is missing: no name= in .modinfo and no readable .gnu.linkonce.this_module");
}
