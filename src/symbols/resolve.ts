/**
 * Resolve: every frame gets a u64 scan key in one key space shared with the blocking ranges.
 *
 * With a symbol table: key = start(symbol) + offset, the raw return address the kernel's check
 * tests (`%pB` prints the real offset, so `foo+0x40/0x40` lands on the byte after foo, exactly
 * where the kernel's half-open test puts it). The symbol is the one whose name, object and
 * printed size match; a duplicate the size does not single out is ambiguous (SPEC §2, §9).
 *
 * Without a symbol table: a synthetic, stable key space, one block per distinct
 * (object, name, printed size), so the same wasm scan serves every input (SPEC §9).
 */
import { type Capture, FrameFlag, type StringTable, u64 } from "../model.js";
import { type SymbolTable, symbolAddress } from "./table.js";

export const FrameStatus = {
  /** No key: an unparsed line or an inline pseudo-frame. */
  NONE: 0,
  RESOLVED: 1,
  /** Symbol (or its object) not in the symbol table, or a bare address outside it. */
  UNRESOLVED: 2,
  /** Several symbols of that name in the object and the printed size does not single one out. */
  AMBIGUOUS: 3,
  /** Synthetic key (no symbol table). */
  SYNTHETIC: 4,
  /** Only one symbol of that name, but the printed size differs: another kernel build. */
  SIZE_MISMATCH: 5,
  /** A bare address used directly as the key. */
  ADDRESS: 6,
  /**
   * Symbol and address both printed, the address outside that symbol while other frames agree
   * with the table (an edited or damaged line): keyed by the address, which the kernel checks;
   * the printed name is a doubt of its own (decide: unresolved when it could be patched).
   */
  CONTRADICTED: 7,
} as const;
export type FrameStatus = (typeof FrameStatus)[keyof typeof FrameStatus];

export interface SyntheticBlock {
  object: string;
  name: string;
  size: number;
  base: bigint;
}

export interface ResolvedFrames {
  keySpace: "addresses" | "synthetic";
  /** 2 u32 per frame (lo, hi); (0, 0) = no key. */
  keys: Uint32Array;
  status: Uint8Array;
  /** Symbol table row per frame, -1 when none. */
  symbol: Int32Array;
  /** Synthetic blocks by `object\0name` (no symbol table only). */
  synthetic: Map<string, SyntheticBlock[]>;
  /** Counts per status, for reports. */
  counts: Record<keyof typeof FrameStatus, number>;
  /**
   * The KASLR shift subtracted from the dump's absolute addresses to key them in a System.map's
   * link-time space (0 when none was applied).
   */
  kaslrShift?: bigint;
  warnings: string[];
}

/**
 * What resolve makes of a symbolic frame (name, object, printed size or none) with a table:
 * the symbol row, or -FrameStatus (UNRESOLVED, AMBIGUOUS, SIZE_MISMATCH). The rule of SPEC §2:
 * the one symbol of that name in the object whose size equals the printed size; without a
 * printed size, the only symbol of that name in the object.
 */
export function symbolicRow(table: SymbolTable, name: string, object: string, hasSize: boolean, size: number): number {
  const candidates = (table.byName.get(name) ?? []).filter((r) => table.objects[table.object[r]] === object);
  if (candidates.length === 0) return -FrameStatus.UNRESOLVED;
  if (!hasSize) return candidates.length === 1 ? candidates[0] : -FrameStatus.AMBIGUOUS;
  const bySize = candidates.filter((r) => table.size[r] === size);
  if (bySize.length === 1) return bySize[0];
  if (bySize.length > 1) return -FrameStatus.AMBIGUOUS;
  return candidates.length === 1 ? -FrameStatus.SIZE_MISMATCH : -FrameStatus.AMBIGUOUS;
}

/**
 * symbolicRow() answers known in advance for the frames of captures using one string table,
 * with one symbol table: what a snapshot stores with its frame rows (it was written with that
 * table), so resolving its frames needs no name index. Keys are string ids of `strings`, which
 * only ever grows, so the answers stay valid for every capture sharing it (a model's derived
 * captures too).
 */
export interface SymbolHints {
  /** Frame symbol name ids. */
  name: Int32Array;
  /** Frame object name ids. */
  object: Int32Array;
  /** Printed size, -1 when none. */
  size: Float64Array;
  /** symbolicRow() of that name, object and size with `table`. */
  row: Int32Array;
}

const hintsOf = new WeakMap<StringTable, { table: SymbolTable; hints: SymbolHints }>();

/** Registers the answers for frames naming ids of `strings`, valid with `table` only (one set per string table). */
export function setSymbolHints(strings: StringTable, table: SymbolTable, hints: SymbolHints): void {
  hintsOf.set(strings, { table, hints });
}

/** The hints registered for `strings` with exactly `table`, if any. */
export function symbolHints(strings: StringTable, table: SymbolTable): SymbolHints | null {
  const h = hintsOf.get(strings);
  return h !== undefined && h.table === table ? h.hints : null;
}

/** Start of the synthetic key space; blocks are spaced with a gap so `off == size` has room. */
const SYNTHETIC_BASE = 0x1_0000n;
const SYNTHETIC_GAP = 0x1000n;

/** The row of frame i's printed symbol whose range (end included) holds `addr`, or -1. */
function addressInNamedSymbol(cap: Capture, table: SymbolTable, i: number, addr: bigint): number {
  const name = cap.strings.get(cap.frames.symbol[i]);
  const object = cap.strings.get(cap.frames.object[i]);
  const hit = (table.byName.get(name) ?? []).find((r) => {
    if (table.objects[table.object[r]] !== object) return false;
    const start = symbolAddress(table, r);
    return addr >= start && addr <= start + BigInt(table.size[r]);
  });
  return hit ?? -1;
}

/** Whether any frame with a printed address and symbol agrees with the table. */
function anyAddressAgrees(cap: Capture, table: SymbolTable, shift: bigint): boolean {
  const f = cap.frames;
  for (let i = 0; i < f.length; i++) {
    if ((f.flags[i] & (FrameFlag.HAS_ADDRESS | FrameFlag.BARE_HEX | FrameFlag.UNPARSED | FrameFlag.INLINE)) !== FrameFlag.HAS_ADDRESS) continue;
    if (addressInNamedSymbol(cap, table, i, u64(f.addrLo[i], f.addrHi[i]) - shift) >= 0) return true;
  }
  return false;
}

export function resolveFrames(cap: Capture, table: SymbolTable | null): ResolvedFrames {
  const f = cap.frames;
  const n = f.length;
  const keys = new Uint32Array(n * 2);
  const status = new Uint8Array(n);
  const symbol = new Int32Array(n).fill(-1);
  const synthetic = new Map<string, SyntheticBlock[]>();
  const warnings: string[] = [];
  const useTable = table !== null && table.hasAddresses;
  // Cache per distinct (name id, object id, printed size or -1) -> symbol row or -status: a
  // chain per name id in typed arrays (no key string per frame; a 1M-task dump has ~6M frames
  // and a few hundred distinct ones).
  const nameCount = cap.strings.values.length;
  const head = new Int32Array(nameCount + 1).fill(-1); // slot nameCount: frames without a name id
  let eObj = new Int32Array(64);
  let eSize = new Float64Array(64);
  let eRow = new Int32Array(64);
  let eNext = new Int32Array(64);
  const eBlock: (SyntheticBlock | null)[] = [];
  let entries = 0;
  let nextBase = SYNTHETIC_BASE;
  let addressMismatch = 0;
  let firstMismatchLine = 0;
  /** Whether some frame's printed address lies in its printed symbol (computed on first need). */
  let tableAgrees: boolean | undefined;
  let contradicted = 0;
  let firstContradictedLine = 0;
  const addEntry = (slot: number, obj: number, sizeKey: number, row: number, block: SyntheticBlock | null): void => {
    if (entries === eRow.length) {
      const m = entries * 2;
      const i32 = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(m);
        b.set(a);
        return b;
      };
      eObj = i32(eObj);
      eRow = i32(eRow);
      eNext = i32(eNext);
      const s2 = new Float64Array(m);
      s2.set(eSize);
      eSize = s2;
    }
    eObj[entries] = obj;
    eSize[entries] = sizeKey;
    eRow[entries] = row;
    eNext[entries] = head[slot];
    eBlock[entries] = block;
    head[slot] = entries++;
  };
  // Answers a snapshot brought along for this table: the cache starts with them.
  const hints = useTable ? symbolHints(cap.strings, table) : null;
  if (hints !== null) {
    for (let k = 0; k < hints.row.length; k++) {
      const sym = hints.name[k];
      if (sym >= 0 && sym < nameCount) addEntry(sym, hints.object[k], hints.size[k], hints.row[k], null);
    }
  }

  // Only bare addresses need the objects' spans (a BigInt per symbol): built on first use.
  let spans: [bigint, bigint][] | null = null;
  const inKnownObject = (a: bigint): boolean => (spans ??= useTable ? objectSpans(table) : []).some(([lo, hi]) => a >= lo && a < hi);
  // A System.map holds link-time addresses; a KASLR boot runs the image shifted. The dump's own
  // frames (symbol and address both printed) give the shift: runtime _text - System.map _text.
  const shift = useTable && table.source === "system.map" ? inferKaslrShift(cap, table) : 0n;
  if (shift !== 0n) {
    warnings.push(`the dump's addresses are the System.map's shifted by 0x${shift.toString(16)} (KASLR): reconciled through _text (runtime _text = 0x${((table!.text ?? 0n) + shift).toString(16)})`);
  }
  const setKey = (i: number, a: bigint): void => {
    keys[2 * i] = Number(a & 0xffffffffn);
    keys[2 * i + 1] = Number((a >> 32n) & 0xffffffffn);
  };
  for (let i = 0; i < n; i++) {
    const flags = f.flags[i];
    if (flags & (FrameFlag.UNPARSED | FrameFlag.INLINE)) continue;
    if (flags & FrameFlag.BARE_HEX) {
      // An absolute address is checked directly against the ranges, but only when it lies in a
      // known object of this symbol table: anywhere else it is unresolved (SPEC §3 rule 7).
      const a = u64(f.addrLo[i], f.addrHi[i]) - shift;
      if (useTable && inKnownObject(a)) {
        setKey(i, a);
        status[i] = FrameStatus.ADDRESS;
      } else status[i] = FrameStatus.UNRESOLVED;
      continue;
    }
    if (useTable && flags & FrameFlag.HAS_ADDRESS) {
      // Symbol and address both printed (crash `bt`, old /proc, ARM): when the address lies in a
      // symbol of that name, it is the raw return address the kernel tests: use it as the key.
      const addr = u64(f.addrLo[i], f.addrHi[i]) - shift;
      const hit = addressInNamedSymbol(cap, table, i, addr);
      if (hit >= 0) {
        setKey(i, addr);
        status[i] = FrameStatus.RESOLVED;
        symbol[i] = hit;
        continue;
      }
      // Other frames agree with this table (it is this boot's): this line is edited or damaged.
      // Keyed by the address the kernel tests; its name stays a doubt (FrameStatus.CONTRADICTED).
      if ((tableAgrees ??= anyAddressAgrees(cap, table, shift)) && inKnownObject(addr)) {
        setKey(i, addr);
        status[i] = FrameStatus.CONTRADICTED;
        if (contradicted++ === 0) firstContradictedLine = f.line[i];
        continue;
      }
      if (addressMismatch++ === 0) firstMismatchLine = f.line[i];
      // Fall through to symbolic resolution; without a printed offset the function start stands in.
    }
    const hasSize = (flags & FrameFlag.HAS_SIZE) !== 0;
    const size = hasSize ? f.size[i] : 0;
    const sym = f.symbol[i];
    const obj = f.object[i];
    const sizeKey = hasSize ? size : -1;
    const slot = sym >= 0 && sym < nameCount ? sym : nameCount;
    let e = head[slot];
    while (e >= 0 && (eObj[e] !== obj || eSize[e] !== sizeKey)) e = eNext[e];
    let row: number;
    let block: SyntheticBlock | null = null;
    if (e >= 0) {
      row = eRow[e];
      block = eBlock[e];
    } else {
      const name = cap.strings.get(sym);
      const object = cap.strings.get(obj);
      if (useTable) row = symbolicRow(table, name, object, hasSize, size);
      else {
        // Synthetic block of [base, base + span) with span = printed size (1 when none printed).
        const span = hasSize ? BigInt(Math.max(size, 1)) : 1n;
        const k = `${object}\u0000${name}`;
        let blocks = synthetic.get(k);
        if (blocks === undefined) synthetic.set(k, (blocks = []));
        block = { object, name, size: hasSize ? size : 1, base: nextBase };
        blocks.push(block);
        row = -(1000 + blocks.length - 1);
        nextBase += span + SYNTHETIC_GAP;
      }
      addEntry(slot, obj, sizeKey, row, block);
    }
    if (row >= 0) {
      const t = table!;
      // %pB never prints an offset past the size (it looks up addr - 1): a larger one is malformed,
      // and is clamped onto the byte after the function as the synthetic path does, where the
      // function's conservative extra counts it, instead of landing in whatever follows.
      const off = t.size[row] > 0 ? Math.min(f.offset[i], t.size[row]) : f.offset[i];
      const lo = t.addrLo[row] + off;
      keys[2 * i] = lo >>> 0;
      keys[2 * i + 1] = (t.addrHi[row] + (lo > 0xffffffff ? 1 : 0)) >>> 0;
      status[i] = FrameStatus.RESOLVED;
      symbol[i] = row;
    } else if (row <= -1000) {
      const blk = block ?? synthetic.get(`${cap.strings.get(f.object[i])}\u0000${cap.strings.get(f.symbol[i])}`)![-row - 1000];
      // Offsets past the printed size (malformed) are clamped onto the byte after the block.
      const off = BigInt(hasSize ? Math.min(f.offset[i], size) : 0);
      const key = blk.base + off;
      keys[2 * i] = Number(key & 0xffffffffn);
      keys[2 * i + 1] = Number(key >> 32n);
      status[i] = FrameStatus.SYNTHETIC;
    } else status[i] = -row;
  }
  if (contradicted > 0) {
    warnings.push(
      `${contradicted} frame(s) print an address outside the symbol they name while other frames agree with the symbol table (first at line ${firstContradictedLine}): an edited or damaged line; placed by the address, which is what the kernel checks, and undecided where the name could be a patched function`,
    );
  }
  if (addressMismatch > 0) {
    warnings.push(
      `${addressMismatch} frame(s) print an address outside the symbol of that name in the symbol table (first at line ${firstMismatchLine}): the symbol table is probably from another boot (KASLR); those frames are placed by name`,
    );
  }
  const counts = { NONE: 0, RESOLVED: 0, UNRESOLVED: 0, AMBIGUOUS: 0, SYNTHETIC: 0, SIZE_MISMATCH: 0, ADDRESS: 0, CONTRADICTED: 0 };
  const names = Object.keys(FrameStatus) as (keyof typeof FrameStatus)[];
  for (let i = 0; i < n; i++) counts[names[status[i]]]++;
  return { keySpace: useTable ? "addresses" : "synthetic", keys, status, symbol, synthetic, counts, warnings, kaslrShift: shift };
}

export { symbolAddress };

/** Address spans [lowest symbol, highest symbol + its size) per object: where code of a known object lies. */
function objectSpans(t: SymbolTable): [bigint, bigint][] {
  const lo = new Map<number, bigint>();
  const hi = new Map<number, bigint>();
  for (let i = 0; i < t.count; i++) {
    const a = symbolAddress(t, i);
    if (a === 0n) continue;
    const o = t.object[i];
    const end = a + BigInt(t.size[i]);
    if (!lo.has(o) || a < lo.get(o)!) lo.set(o, a);
    if (!hi.has(o) || end > hi.get(o)!) hi.set(o, end);
  }
  return [...lo.keys()].map((o) => [lo.get(o)!, hi.get(o)!]);
}

/** x86-64 KASLR moves the kernel image in steps of CONFIG_PHYSICAL_ALIGN (2 MiB). */
const KASLR_ALIGN = 0x200000n;

/**
 * The KASLR shift between a dump's absolute addresses and a System.map: for each frame that
 * prints both a symbol and an address, the aligned shifts that put the address inside that
 * symbol; the shift most frames agree on (at least 2 frames and 80% of them), else 0.
 */
export function inferKaslrShift(cap: Capture, t: SymbolTable): bigint {
  const f = cap.frames;
  const votes = new Map<bigint, number>();
  let samples = 0;
  for (let i = 0; i < f.length && samples < 500; i++) {
    const flags = f.flags[i];
    if ((flags & FrameFlag.HAS_ADDRESS) === 0 || (flags & FrameFlag.SYMBOLIC) === 0 || f.symbol[i] < 0) continue;
    const rows = t.byName.get(cap.strings.get(f.symbol[i]));
    if (rows === undefined) continue;
    const addr = u64(f.addrLo[i], f.addrHi[i]);
    const object = cap.strings.get(f.object[i]);
    const found = new Set<bigint>();
    for (const r of rows) {
      if (t.objects[t.object[r]] !== object) continue;
      const start = symbolAddress(t, r);
      const size = BigInt(t.size[r]);
      // addr - shift in [start, start + size]: the aligned shifts in [addr-start-size, addr-start].
      const hi = addr - start;
      const lo = hi - size;
      let d = hi >= 0n ? (hi / KASLR_ALIGN) * KASLR_ALIGN : -((-hi + KASLR_ALIGN - 1n) / KASLR_ALIGN) * KASLR_ALIGN;
      for (; d >= lo && found.size < 4; d -= KASLR_ALIGN) found.add(d);
    }
    if (found.size === 0) continue;
    samples++;
    for (const d of found) votes.set(d, (votes.get(d) ?? 0) + 1);
  }
  let best = 0n;
  let bestVotes = 0;
  for (const [d, v] of votes) if (v > bestVotes) [best, bestVotes] = [d, v];
  // Another shift that explains as many frames is just as likely (frames only in duplicate
  // names whose copies lie a multiple of 2 MiB apart): taking the first would place every frame
  // in the wrong copy, and a task in the patched copy would look clean. No shift then: the frames
  // are placed by name and printed size, where such a duplicate is ambiguous.
  let qualified = 0;
  for (const v of votes.values()) if (v >= 0.8 * samples) qualified++;
  return bestVotes >= 2 && bestVotes >= 0.8 * samples && qualified === 1 ? best : 0n;
}
