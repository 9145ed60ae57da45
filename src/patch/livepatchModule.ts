/**
 * Upstream-style livepatch modules (samples/livepatch/livepatch-sample.c shape): a static
 * `struct klp_patch { struct module *mod; struct klp_object *objs; [struct klp_state *states;]
 * bool replace; ... }` whose `mod` is THIS_MODULE, reaching `struct klp_object { const char
 * *name; struct klp_func *funcs; callbacks...; }[]` and `struct klp_func { const char *old_name;
 * void *new_func; unsigned long old_sympos; ... }[]`, all through relocations.
 *
 * The arrays' element sizes depend on the kernel config (internal kobjects), so they are
 * inferred from the array symbol's size and the relocation pattern (each array ends with a
 * zeroed terminator). The `replace` offset depends on the kernel version (vermagic in .modinfo):
 * before 5.1 there is no replace; 5.1–5.4 it follows objs; from 5.5 it follows states.
 * Before 4.7 `struct klp_object` had `struct klp_reloc *relocs` between name and funcs, and
 * before 4.5 the klp_func word after new_func was `old_addr` (an address pin, not old_sympos):
 * those layouts are read by vermagic, and without one (or for vendor 3.x backports) whichever
 * object layout the relocations fit.
 */
import { type ElfFile, type ElfReloc, type ElfSection, STT_FUNC, STT_OBJECT } from "./elf.js";
import { moduleName, type ModuleFunctionDetail, type PatchModule } from "./kpatchModule.js";
import type { PatchFunctionSpec } from "./spec.js";
import { VMLINUX } from "../model.js";

const NAME = /^[A-Za-z0-9_.$@-]+$/;

interface ArrayLayout {
  count: number;
  stride: number;
}

/** Relocations by offset for every section (cached per call). */
function relocIndex(elf: ElfFile): Map<number, Map<number, ElfReloc>> {
  const m = new Map<number, Map<number, ElfReloc>>();
  for (const r of elf.relocations()) {
    let s = m.get(r.target.index);
    if (s === undefined) m.set(r.target.index, (s = new Map()));
    for (const x of r.relocs) s.set(x.offset, x);
  }
  return m;
}

/** The size of the data object at section+offset (its symbol), or null. */
function objectSize(elf: ElfFile, sec: ElfSection, off: number): number | null {
  const s = elf.symbols().find((y) => y.shndx === sec.index && y.value === BigInt(off) && y.type === STT_OBJECT && y.size > 0n);
  return s === undefined ? null : Number(s.size);
}

/**
 * Infers a zero-terminated struct array's element count and stride: every element has a
 * relocation at `required` (relative offset) and relocations only at `allowed` offsets; the
 * terminator has none.
 */
function inferArray(relocs: Map<number, ElfReloc>, base: number, size: number, W: number, required: number, allowedMax: number): ArrayLayout | null {
  const inside = [...relocs.keys()].filter((o) => o >= base && o < base + size).map((o) => o - base);
  for (let n = 1; n <= inside.length; n++) {
    if (size % (n + 1) !== 0) continue;
    const stride = size / (n + 1);
    if (stride < allowedMax + W) continue;
    let ok = true;
    for (let k = 0; k < n && ok; k++) if (!relocs.has(base + k * stride + required)) ok = false;
    for (const o of inside) if (!ok || o >= n * stride || o % stride > allowedMax || (o % stride) % W !== 0) ok = false;
    if (ok) return { count: n, stride };
  }
  return null;
}

function kernelVersion(elf: ElfFile): [number, number] | null {
  const mi = elf.section(".modinfo");
  if (mi === undefined) return null;
  const data = elf.sectionData(mi);
  let s = "";
  for (const b of data) s += b === 0 ? "\n" : String.fromCharCode(b);
  const m = /^vermagic=(\d+)\.(\d+)/m.exec(s);
  return m === null ? null : [Number(m[1]), Number(m[2])];
}

/** True when some data has a THIS_MODULE pointer followed by a pointer (a klp_patch candidate). */
export function findKlpPatches(elf: ElfFile): { section: ElfSection; offset: number }[] {
  const out: { section: ElfSection; offset: number }[] = [];
  const W = elf.wordSize;
  for (const [secIdx, rs] of relocIndex(elf)) {
    for (const [off, r] of rs) {
      const sym = elf.symbols()[r.sym];
      if (sym?.name === "__this_module" && rs.has(off + W)) out.push({ section: elf.sectionAt(secIdx, "klp_patch"), offset: off });
    }
  }
  return out;
}

export function readLivepatchModule(elf: ElfFile): PatchModule {
  const W = elf.wordSize;
  const relocs = relocIndex(elf);
  const candidates = findKlpPatches(elf);
  const errors: string[] = [];
  const found: PatchModule[] = [];
  for (const c of candidates) {
    try {
      found.push(readFrom(elf, relocs, c.section, c.offset, W));
    } catch (e) {
      errors.push(e instanceof Error ? e.message : String(e));
    }
  }
  // One klp_patch read and another that is one too (its klp_object array read) but not its
  // functions: the module may enable the other (chosen at run time), whose functions would then
  // be missing. (A candidate whose objs is no klp_object array is other data, and is skipped.)
  const unreadPatches = errors.filter((m) => m.startsWith("klp_object["));
  if (found.length === 1 && unreadPatches.length > 0) elf.fail(`another klp_patch in the module is unreadable (${unreadPatches[0]}): the functions it replaces cannot be read`);
  if (found.length === 1) return found[0];
  if (found.length > 1) elf.fail(`${found.length} klp_patch structures found; expected one`);
  if (candidates.length === 0) elf.fail("no .kpatch.funcs section and no klp_patch (a structure starting with THIS_MODULE and an objs pointer): not a patch module");
  return elf.fail(`klp_patch found but unreadable: ${errors[0]}`);
}

/** Where `funcs` sits in struct klp_object: after name (4.7+), or after name and relocs (4.0–4.6). */
interface ObjectLayout {
  funcsAt: number;
  /** The last offset that may hold a pointer (callbacks since 4.15; relocs and funcs before 4.7). */
  lastPointer: number;
}

function readFrom(elf: ElfFile, relocs: Map<number, Map<number, ElfReloc>>, psec: ElfSection, poff: number, W: number): PatchModule {
  const ver = kernelVersion(elf);
  const before = (major: number, minor: number): boolean => ver !== null && (ver[0] < major || (ver[0] === major && ver[1] < minor));
  const modern: ObjectLayout = { funcsAt: W, lastPointer: 5 * W };
  const withRelocs: ObjectLayout = { funcsAt: 2 * W, lastPointer: 2 * W };
  // 4.0–4.6 had relocs; a 3.x vendor backport or no vermagic: whichever the relocations fit.
  const layouts = ver === null || ver[0] < 4 ? [modern, withRelocs] : before(4, 7) ? [withRelocs] : [modern];
  let first: unknown = null;
  for (const layout of layouts) {
    try {
      return readWith(elf, relocs, psec, poff, W, layout, ver !== null && ver[0] === 4 && ver[1] < 5);
    } catch (e) {
      first ??= e;
    }
  }
  throw first;
}

function readWith(elf: ElfFile, relocs: Map<number, Map<number, ElfReloc>>, psec: ElfSection, poff: number, W: number, layout: ObjectLayout, oldAddr: boolean): PatchModule {
  const at = "klp_patch";
  const pr = relocs.get(psec.index) ?? new Map<number, ElfReloc>();
  const objsRel = pr.get(poff + W);
  if (objsRel === undefined) return elf.fail(`${at}.objs: no relocation`);
  const objs = elf.relocTarget(objsRel, `${at}.objs`);
  const or = relocs.get(objs.section.index) ?? new Map<number, ElfReloc>();
  const osize = objectSize(elf, objs.section, objs.offset);
  if (osize === null) elf.fail(`${at}.objs: the klp_object array has no sized symbol`);
  const ol = inferArray(or, objs.offset, osize, W, layout.funcsAt, layout.lastPointer);
  if (ol === null) elf.fail(`${at}.objs: cannot lay out the klp_object array (${osize} bytes)`);
  const details: ModuleFunctionDetail[] = [];
  for (let k = 0; k < ol.count; k++) {
    const ob = objs.offset + k * ol.stride;
    const oat = `klp_object[${k}]`;
    const nameRel = or.get(ob);
    let object = VMLINUX;
    if (nameRel !== undefined) {
      const t = elf.relocTarget(nameRel, `${oat}.name`);
      object = elf.sectionString(t.section, t.offset, `${oat}.name`);
      if (!NAME.test(object)) elf.fail(`${oat}.name: ${JSON.stringify(object.slice(0, 80))} is not an object name`);
    }
    const funcsRel = or.get(ob + layout.funcsAt);
    if (funcsRel === undefined) return elf.fail(`${oat}.funcs: no relocation`);
    const funcs = elf.relocTarget(funcsRel, `${oat}.funcs`);
    const fr = relocs.get(funcs.section.index) ?? new Map<number, ElfReloc>();
    const fsize = objectSize(elf, funcs.section, funcs.offset);
    if (fsize === null) elf.fail(`${oat}.funcs: the klp_func array has no sized symbol`);
    const fl = inferArray(fr, funcs.offset, fsize, W, 0, W);
    if (fl === null) elf.fail(`${oat}.funcs: cannot lay out the klp_func array (${fsize} bytes)`);
    for (let j = 0; j < fl.count; j++) {
      const fb = funcs.offset + j * fl.stride;
      const fat = `${oat}.funcs[${j}]`;
      const on = fr.get(fb);
      if (on === undefined) return elf.fail(`${fat}.old_name: no relocation`);
      const ot = elf.relocTarget(on, `${fat}.old_name`);
      const oldName = elf.sectionString(ot.section, ot.offset, `${fat}.old_name`);
      if (!NAME.test(oldName)) elf.fail(`${fat}.old_name: ${JSON.stringify(oldName.slice(0, 80))} is not a symbol name`);
      const nf = fr.get(fb + W);
      if (nf === undefined) return elf.fail(`${fat}.new_func: no relocation`);
      const nt = elf.relocTarget(nf, `${fat}.new_func`);
      const fn = nt.symbol.type === STT_FUNC && nt.offset === Number(nt.symbol.value) ? nt.symbol : elf.symbols().find((s) => s.shndx === nt.section.index && s.value === BigInt(nt.offset) && s.type === STT_FUNC);
      if (fn === undefined) elf.fail(`${fat}.new_func: points at no function symbol`);
      const third = elf.sectionWord(funcs.section, fb + 2 * W, oldAddr ? `${fat}.old_addr` : `${fat}.old_sympos`);
      // Before 4.5 the word is old_addr: an exact address, which names no sympos.
      if (oldAddr && third !== 0n) elf.fail(`${fat}.old_addr: the module pins ${oldName} at 0x${third.toString(16)} (kernels before 4.5), which says no sympos`);
      const sympos = oldAddr ? 0n : third;
      if (sympos > 0xffffffffn) elf.fail(`${fat}.old_sympos: ${sympos} is implausible`);
      details.push({ object, oldName, oldSympos: Number(sympos), newSymbol: fn.name, newSize: fn.size > 0n ? Number(fn.size) : null, oldSize: null, force: false });
    }
  }
  const ver = kernelVersion(elf);
  let replace = false;
  if (ver === null || ver[0] > 5 || (ver[0] === 5 && ver[1] >= 5)) {
    if (ver === null && !pr.has(poff + 2 * W) && elf.sectionWord(psec, poff + 2 * W, `${at}.states`) !== 0n) {
      elf.fail(`${at}: no vermagic in .modinfo and the word after objs is not a pointer: cannot tell where replace is`);
    }
    replace = readBool(elf, psec, poff + 3 * W, `${at}.replace`);
  } else if (ver[0] === 5 && ver[1] >= 1) {
    // 5.1–5.4: replace right after objs. A pointer there is another layout (klp_state backported).
    if (pr.has(poff + 2 * W)) elf.fail(`${at}: the word after objs is a pointer, where ${ver[0]}.${ver[1]} has replace: an unknown klp_patch layout`);
    replace = readBool(elf, psec, poff + 2 * W, `${at}.replace`);
  } else if (!pr.has(poff + 2 * W) && readBool(elf, psec, poff + 2 * W, `${at}.replace`)) {
    // Before 5.1 upstream has a list_head there (zero in a static klp_patch); a vendor backport of
    // atomic replace (RHEL 8.2+ on 4.18) puts replace there: a set byte is that, not a list.
    replace = true;
  }
  const specFuncs: PatchFunctionSpec[] = details.map((d) => ({ object: d.object, oldName: d.oldName, oldSympos: d.oldSympos, newName: d.newSymbol, newSize: d.newSize, force: false }));
  return { kind: "livepatch", spec: { name: moduleName(elf), replace, funcs: specFuncs, ranges: [] }, details };
}

function readBool(elf: ElfFile, sec: ElfSection, off: number, what: string): boolean {
  if (off + 1 > sec.size) elf.fail(`${what}: offset ${off} is outside section ${sec.name}`);
  return sec.type !== 8 && elf.u8(sec.offset + off) !== 0;
}
