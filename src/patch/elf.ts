/**
 * A small ELF reader for patch modules (.ko / relocatable .o): ELF32 and ELF64, little and big
 * endian; section headers and names, the symbol table, REL and RELA relocation sections.
 * Browser-clean (Uint8Array + DataView only). Every read is bounds-checked: a truncated or
 * corrupt file throws PatchsafeError("E_PATCH_MODULE", what is wrong, { file }), never a
 * RangeError.
 */
import { PatchsafeError } from "../errors.js";

export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  entsize: number;
}

export interface ElfSymbol {
  index: number;
  name: string;
  value: bigint;
  size: bigint;
  /** STT_* */
  type: number;
  /** STB_* */
  bind: number;
  shndx: number;
}

export interface ElfReloc {
  /** Offset in the target section. */
  offset: number;
  sym: number;
  type: number;
  /** RELA: the explicit addend; REL: the implicit addend read from the target (word-sized). */
  addend: bigint;
}

export interface ElfRelocSection {
  section: ElfSection;
  target: ElfSection;
  rela: boolean;
  relocs: ElfReloc[];
}

/** Guard for huge declared counts (refused before allocating). */
const MAX_ENTRIES = 4_000_000;

export class ElfFile {
  readonly bytes: Uint8Array;
  readonly file: string;
  readonly is64: boolean;
  readonly littleEndian: boolean;
  readonly machine: number;
  readonly elfType: number;
  /** Pointer / unsigned long size in bytes (4 or 8). */
  readonly wordSize: 4 | 8;
  readonly sections: ElfSection[];
  private readonly view: DataView;
  private symCache: ElfSymbol[] | null = null;
  private relCache: ElfRelocSection[] | null = null;

  constructor(bytes: Uint8Array, file: string) {
    this.bytes = bytes;
    this.file = file;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < 16) this.fail(`not an ELF file: ${bytes.length} bytes, shorter than the ELF identification`);
    if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) this.fail("not an ELF file (no \\x7fELF magic)");
    const cls = bytes[4];
    const data = bytes[5];
    if (cls !== 1 && cls !== 2) this.fail(`bad ELF class ${cls} (expected 1 = ELF32 or 2 = ELF64)`);
    if (data !== 1 && data !== 2) this.fail(`bad ELF data encoding ${data} (expected 1 = little or 2 = big endian)`);
    this.is64 = cls === 2;
    this.littleEndian = data === 1;
    this.wordSize = this.is64 ? 8 : 4;
    const ehsize = this.is64 ? 64 : 52;
    this.need(0, ehsize, "ELF header");
    this.elfType = this.u16(16);
    this.machine = this.u16(18);
    const shoff = this.off(this.is64 ? 0x28 : 0x20, "e_shoff");
    const shentsize = this.u16(this.is64 ? 0x3a : 0x2e);
    let shnum = this.u16(this.is64 ? 0x3c : 0x30);
    let shstrndx = this.u16(this.is64 ? 0x3e : 0x32);
    if (shoff === 0) this.fail("the ELF file has no section headers (e_shoff is 0)");
    const minEnt = this.is64 ? 64 : 40;
    if (shentsize < minEnt) this.fail(`bad section header size ${shentsize} (expected at least ${minEnt})`);
    // Extended numbering: section 0 holds the real count / string table index.
    this.need(shoff, shentsize, "section header 0");
    if (shnum === 0) shnum = this.num(this.is64 ? this.u64(shoff + 0x20) : BigInt(this.u32(shoff + 0x14)), "section count");
    if (shstrndx === 0xffff) shstrndx = this.u32(shoff + (this.is64 ? 0x2c : 0x1c));
    if (shnum > 0xffffff) this.fail(`implausible section count ${shnum}`);
    this.need(shoff, shnum * shentsize, `${shnum} section headers`);
    const raw: Omit<ElfSection, "name">[] = [];
    const nameOffs: number[] = [];
    for (let i = 0; i < shnum; i++) {
      const h = shoff + i * shentsize;
      nameOffs.push(this.u32(h));
      const type = this.u32(h + 4);
      const s = this.is64
        ? { flags: this.u64(h + 8), addr: this.u64(h + 0x10), offset: this.num(this.u64(h + 0x18), "sh_offset"), size: this.num(this.u64(h + 0x20), "sh_size"), link: this.u32(h + 0x28), info: this.u32(h + 0x2c), entsize: this.num(this.u64(h + 0x38), "sh_entsize") }
        : { flags: BigInt(this.u32(h + 8)), addr: BigInt(this.u32(h + 0xc)), offset: this.u32(h + 0x10), size: this.u32(h + 0x14), link: this.u32(h + 0x18), info: this.u32(h + 0x1c), entsize: this.u32(h + 0x24) };
      if (type !== SHT_NOBITS && type !== 0 && s.offset + s.size > bytes.length) {
        this.fail(`section ${i} (offset ${s.offset}, size ${s.size}) extends past the end of the file (${bytes.length} bytes): truncated?`);
      }
      raw.push({ index: i, type, ...s });
    }
    if (shstrndx >= shnum) this.fail(`section name table index ${shstrndx} is out of range (${shnum} sections)`);
    const strtab = raw[shstrndx];
    if (strtab.type !== SHT_STRTAB) this.fail(`section name table (section ${shstrndx}) is not a string table`);
    this.sections = raw.map((s, i) => ({ ...s, name: this.cstring(strtab.offset, strtab.size, nameOffs[i], `name of section ${i}`) }));
  }

  fail(what: string): never {
    throw new PatchsafeError("E_PATCH_MODULE", what, { file: this.file });
  }

  private need(off: number, len: number, what: string): void {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > this.bytes.length) {
      this.fail(`${what} (bytes ${off}..${off + len}) is past the end of the file (${this.bytes.length} bytes): truncated?`);
    }
  }

  private num(v: bigint, what: string): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is implausibly large`);
    return Number(v);
  }

  private off(at: number, what: string): number {
    return this.is64 ? this.num(this.u64(at), what) : this.u32(at);
  }

  u8(at: number): number {
    this.need(at, 1, "byte");
    return this.bytes[at];
  }
  u16(at: number): number {
    this.need(at, 2, "16-bit field");
    return this.view.getUint16(at, this.littleEndian);
  }
  u32(at: number): number {
    this.need(at, 4, "32-bit field");
    return this.view.getUint32(at, this.littleEndian);
  }
  u64(at: number): bigint {
    this.need(at, 8, "64-bit field");
    return this.view.getBigUint64(at, this.littleEndian);
  }
  /** An unsigned long / pointer at a file offset. */
  word(at: number): bigint {
    return this.is64 ? this.u64(at) : BigInt(this.u32(at));
  }

  /**
   * A NUL-terminated string at `index` inside the region [base, base+size) of the file; the
   * region must contain the terminator.
   */
  cstring(base: number, size: number, index: number, what: string): string {
    this.need(base, size, what);
    if (index < 0 || index >= size) this.fail(`${what}: string offset ${index} is outside its table (${size} bytes)`);
    const start = base + index;
    const end = this.bytes.indexOf(0, start);
    if (end < 0 || end >= base + size) this.fail(`${what}: string at offset ${index} is not NUL-terminated within its table`);
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(this.bytes[i]);
    return s;
  }

  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  sectionAt(index: number, what: string): ElfSection {
    const s = this.sections[index];
    if (s === undefined || index === 0) this.fail(`${what}: section index ${index} is out of range (${this.sections.length} sections)`);
    return s;
  }

  /** A section's bytes (a view, not a copy); NOBITS sections have none. */
  sectionData(s: ElfSection): Uint8Array {
    if (s.type === SHT_NOBITS) return new Uint8Array(0);
    this.need(s.offset, s.size, `section ${s.name || s.index}`);
    return this.bytes.subarray(s.offset, s.offset + s.size);
  }

  /** A word at `off` inside section `s`. */
  sectionWord(s: ElfSection, off: number, what: string): bigint {
    if (s.type === SHT_NOBITS) return 0n;
    if (off < 0 || off + this.wordSize > s.size) this.fail(`${what}: offset ${off} is outside section ${s.name} (${s.size} bytes)`);
    return this.word(s.offset + off);
  }

  /** A NUL-terminated string at `off` inside section `s`. */
  sectionString(s: ElfSection, off: number, what: string): string {
    if (s.type === SHT_NOBITS) this.fail(`${what}: section ${s.name} has no data`);
    return this.cstring(s.offset, s.size, off, what);
  }

  /** The symbol table (.symtab with its linked string table); index 0 is the null symbol. */
  symbols(): ElfSymbol[] {
    if (this.symCache !== null) return this.symCache;
    const tab = this.sections.find((s) => s.type === SHT_SYMTAB);
    if (tab === undefined) this.fail("no symbol table (.symtab): the module was stripped?");
    const ent = this.is64 ? 24 : 16;
    if (tab.entsize !== 0 && tab.entsize < ent) this.fail(`symbol table entry size ${tab.entsize} is too small (expected ${ent})`);
    const stride = tab.entsize === 0 ? ent : tab.entsize;
    const str = this.sectionAt(tab.link, "symbol string table");
    if (str.type !== SHT_STRTAB) this.fail(`symbol table's string table (section ${tab.link}) is not a string table`);
    const n = Math.floor(tab.size / stride);
    if (n > MAX_ENTRIES) this.fail(`implausible symbol count ${n}`);
    const out: ElfSymbol[] = [];
    for (let i = 0; i < n; i++) {
      const p = tab.offset + i * stride;
      const nameOff = this.u32(p);
      let value: bigint, size: bigint, info: number, shndx: number;
      if (this.is64) {
        info = this.u8(p + 4);
        shndx = this.u16(p + 6);
        value = this.u64(p + 8);
        size = this.u64(p + 16);
      } else {
        value = BigInt(this.u32(p + 4));
        size = BigInt(this.u32(p + 8));
        info = this.u8(p + 12);
        shndx = this.u16(p + 14);
      }
      const name = nameOff === 0 ? "" : this.cstring(str.offset, str.size, nameOff, `name of symbol ${i}`);
      out.push({ index: i, name, value, size, type: info & 0xf, bind: info >> 4, shndx });
    }
    this.symCache = out;
    return out;
  }

  symbolAt(index: number, what: string): ElfSymbol {
    const syms = this.symbols();
    const s = syms[index];
    if (s === undefined) this.fail(`${what}: symbol index ${index} is out of range (${syms.length} symbols)`);
    return s;
  }

  /** All REL and RELA sections with the section they apply to. */
  relocations(): ElfRelocSection[] {
    if (this.relCache !== null) return this.relCache;
    const out: ElfRelocSection[] = [];
    for (const s of this.sections) {
      if (s.type !== SHT_RELA && s.type !== SHT_REL) continue;
      const rela = s.type === SHT_RELA;
      const ent = (this.is64 ? 8 : 4) * (rela ? 3 : 2);
      if (s.entsize !== 0 && s.entsize < ent) this.fail(`relocation section ${s.name}: entry size ${s.entsize} is too small (expected ${ent})`);
      const stride = s.entsize === 0 ? ent : s.entsize;
      const target = this.sectionAt(s.info, `relocation section ${s.name}'s target`);
      const n = Math.floor(s.size / stride);
      if (n > MAX_ENTRIES) this.fail(`relocation section ${s.name}: implausible count ${n}`);
      const relocs: ElfReloc[] = [];
      for (let i = 0; i < n; i++) {
        const p = s.offset + i * stride;
        let offset: number, sym: number, type: number, addend: bigint;
        if (this.is64) {
          offset = this.num(this.u64(p), `relocation ${i} of ${s.name}: offset`);
          const info = this.u64(p + 8);
          sym = Number(info >> 32n);
          type = Number(info & 0xffffffffn);
          addend = rela ? BigInt.asIntN(64, this.u64(p + 16)) : 0n;
        } else {
          offset = this.u32(p);
          const info = this.u32(p + 4);
          sym = info >>> 8;
          type = info & 0xff;
          addend = rela ? BigInt.asIntN(32, BigInt(this.u32(p + 8))) : 0n;
        }
        if (!rela) addend = BigInt.asIntN(this.wordSize * 8, this.sectionWord(target, offset, `relocation ${i} of ${s.name}`));
        relocs.push({ offset, sym, type, addend });
      }
      out.push({ section: s, target, rela, relocs });
    }
    this.relCache = out;
    return out;
  }

  /** Relocations that apply to section `target`, by offset in it. */
  relocsFor(target: ElfSection): Map<number, ElfReloc> {
    const m = new Map<number, ElfReloc>();
    for (const r of this.relocations()) if (r.target.index === target.index) for (const x of r.relocs) m.set(x.offset, x);
    return m;
  }

  /**
   * Where a relocation points: the section and the offset in it (symbol value + addend; for a
   * section symbol, the addend is the section offset). Undefined symbols fail with `what`.
   */
  relocTarget(r: ElfReloc, what: string): { section: ElfSection; offset: number; symbol: ElfSymbol } {
    const sym = this.symbolAt(r.sym, what);
    if (sym.shndx === SHN_UNDEF || sym.shndx >= SHN_LORESERVE) this.fail(`${what}: points at ${sym.name === "" ? `symbol ${r.sym}` : sym.name}, which is not defined in the module`);
    const section = this.sectionAt(sym.shndx, `${what}: symbol ${sym.name}`);
    const off = sym.value + r.addend;
    if (off < 0n || off > BigInt(section.size)) this.fail(`${what}: offset ${off} is outside section ${section.name} (${section.size} bytes)`);
    return { section, offset: Number(off), symbol: sym };
  }
}

export function readElf(bytes: Uint8Array, file: string): ElfFile {
  return new ElfFile(bytes, file);
}
