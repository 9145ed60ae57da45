/**
 * A parsed kallsyms kept on disk, so repeated checks on one host skip the ~122k-line parse and
 * the size/sympos pass (SymbolTable.byName is rebuilt on load: a Map cannot be stored).
 *
 * Key: for /proc/kallsyms the boot id (KASLR and modules change per boot; module loads within a
 * boot change the table, so the live file's byte length is part of the key too); for a saved
 * file its path, size, mtime and inode. Cache dir: $XDG_CACHE_HOME/patchsafe or
 * ~/.cache/patchsafe (0700); files 0600, written to a temp name then renamed, never through a
 * symlink. A file that is not ours (owner, mode, magic, version, key, length, CRC-32) is
 * ignored and rewritten: the cache can only cost a re-parse, never a wrong table.
 *
 * Layout (little-endian):  "PSKS" u32 version | u32 keyLen | key | u32 bodyLen | u32 crc32(body) | body
 * body = sections, each u32 byteLength then the bytes padded to 4: meta JSON, names ("\n"-joined
 * latin1), object, type, addrLo, addrHi, size (f64), sympos, dupCount, padding.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { crc32 } from "../snapshot/crc32.js";
import { parseSymbolTable, type SectionBounds, type SymbolSource, type SymbolTable } from "../symbols/table.js";

const MAGIC = 0x534b5350; // "PSKS"
const VERSION = 1;

export interface KallsymsCacheOptions {
  /** Cache directory (default $XDG_CACHE_HOME/patchsafe or ~/.cache/patchsafe). */
  dir?: string;
  /** Boot id for /proc/kallsyms (default: read /proc/sys/kernel/random/boot_id). */
  bootId?: string | null;
}

/** How the last load went (for tests and -v output). */
export type CacheOutcome = "hit" | "miss" | "disabled";

export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg.startsWith("/") ? xdg : join(homedir(), ".cache"), "patchsafe");
}

function bootIdNow(): string | null {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim() || null;
  } catch {
    return null;
  }
}

/** The cache key of `file`, or null when it cannot be keyed safely (no boot id for the live table). */
export function cacheKey(file: string, text: string, bootId: string | null): string | null {
  if (file === "/proc/kallsyms") return bootId === null ? null : `boot:${bootId}:${text.length}`;
  try {
    const st = statSync(file);
    return `file:${file}:${st.size}:${st.mtimeMs}:${st.ino}:${text.length}`;
  } catch {
    return null;
  }
}

const enc = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const dec = (b: Uint8Array): string => {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192) as unknown as number[]);
  return s;
};
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Serializes every computed column of a table (not byName: rebuilt on load). */
export function encodeTable(t: SymbolTable): Uint8Array {
  const meta = JSON.stringify({
    source: t.source,
    coverage: t.coverage,
    hasAddresses: t.hasAddresses,
    count: t.count,
    objects: t.objects,
    sections: Object.fromEntries(Object.entries(t.sections).map(([k, v]) => [k, v === null ? null : [v[0].toString(16), v[1].toString(16)]])),
    text: t.text === null ? null : t.text.toString(16),
    warnings: t.warnings,
  });
  const parts = [enc(meta), enc(t.names.join("\n")), bytesOf(t.object), t.type, bytesOf(t.addrLo), bytesOf(t.addrHi), bytesOf(t.size), bytesOf(t.sympos), bytesOf(t.dupCount), t.padding];
  const total = parts.reduce((n, p) => n + 4 + p.length + ((4 - (p.length % 4)) % 4), 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let o = 0;
  for (const p of parts) {
    dv.setUint32(o, p.length, true);
    o += 4;
    out.set(p, o);
    o += p.length + ((4 - (p.length % 4)) % 4);
  }
  return out;
}

/** Inverse of encodeTable; throws on any inconsistency. */
export function decodeTable(body: Uint8Array): SymbolTable {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let o = 0;
  const next = (): Uint8Array => {
    if (o + 4 > body.length) throw new Error("truncated");
    const n = dv.getUint32(o, true);
    o += 4;
    if (o + n > body.length) throw new Error("truncated");
    const b = body.slice(o, o + n); // a copy: aligned, and owned by the table
    o += n + ((4 - (n % 4)) % 4);
    return b;
  };
  const meta = JSON.parse(dec(next())) as {
    source: SymbolSource;
    coverage: SymbolTable["coverage"];
    hasAddresses: boolean;
    count: number;
    objects: string[];
    sections: Record<string, [string, string] | null>;
    text: string | null;
    warnings: string[];
  };
  const n = meta.count;
  const namesText = dec(next());
  const names = n === 0 ? [] : namesText.split("\n");
  const u32 = (b: Uint8Array): Uint32Array => {
    if (b.length !== 4 * n) throw new Error("column length");
    return new Uint32Array(b.buffer, b.byteOffset, n);
  };
  const object = u32(next());
  const type = next();
  const addrLo = u32(next());
  const addrHi = u32(next());
  const sizeB = next();
  if (sizeB.length !== 8 * n) throw new Error("column length");
  const size = new Float64Array(sizeB.buffer, sizeB.byteOffset, n);
  const sympos = u32(next());
  const dupCount = u32(next());
  const padding = next();
  if (names.length !== n || type.length !== n || padding.length !== n) throw new Error("column length");
  for (let i = 0; i < n; i++) if (object[i] >= meta.objects.length) throw new Error("object index");
  const byName = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const l = byName.get(names[i]);
    if (l === undefined) byName.set(names[i], [i]);
    else l.push(i);
  }
  const big = (v: [string, string] | null): [bigint, bigint] | null => (v === null ? null : [BigInt(`0x${v[0]}`), BigInt(`0x${v[1]}`)]);
  const s = meta.sections;
  const sections: SectionBounds = { sched: big(s.sched), lock: big(s.lock), entry: big(s.entry), noinstr: big(s.noinstr), cpuidle: big(s.cpuidle), init: big(s.init) };
  return {
    source: meta.source,
    coverage: meta.coverage,
    hasAddresses: meta.hasAddresses,
    count: n,
    names,
    object,
    objects: meta.objects,
    type,
    addrLo,
    addrHi,
    size,
    sympos,
    dupCount,
    padding,
    byName,
    sections,
    text: meta.text === null ? null : BigInt(`0x${meta.text}`),
    warnings: meta.warnings,
  };
}

function readCache(path: string, key: string): SymbolTable | null {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0));
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    const uid = process.getuid?.();
    if (!st.isFile() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) return null;
    const buf = new Uint8Array(st.size);
    let got = 0;
    while (got < st.size) {
      const n = readSync(fd, buf, got, st.size - got, null);
      if (n === 0) break;
      got += n;
    }
    if (got !== st.size || got < 16) return null;
    const dv = new DataView(buf.buffer);
    if (dv.getUint32(0, true) !== MAGIC || dv.getUint32(4, true) !== VERSION) return null;
    const keyLen = dv.getUint32(8, true);
    if (12 + keyLen + 8 > got || dec(buf.subarray(12, 12 + keyLen)) !== key) return null;
    const bodyLen = dv.getUint32(12 + keyLen, true);
    const crc = dv.getUint32(16 + keyLen, true);
    const body = buf.subarray(20 + keyLen);
    if (body.length !== bodyLen || crc32(body) !== crc) return null;
    return decodeTable(body);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function writeCache(dir: string, path: string, key: string, t: SymbolTable): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const dst = lstatSync(dir);
    if (!dst.isDirectory()) return;
    const body = encodeTable(t);
    const k = enc(key);
    const head = new Uint8Array(20 + k.length);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, MAGIC, true);
    dv.setUint32(4, VERSION, true);
    dv.setUint32(8, k.length, true);
    head.set(k, 12);
    dv.setUint32(12 + k.length, body.length, true);
    dv.setUint32(16 + k.length, crc32(body), true);
    const tmp = `${path}.${process.pid}.tmp`;
    const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | (fsc.O_NOFOLLOW ?? 0), 0o600);
    try {
      for (const part of [head, body]) {
        let off = 0;
        while (off < part.length) off += writeSync(fd, part, off, part.length - off);
      }
    } finally {
      closeSync(fd);
    }
    try {
      renameSync(tmp, path);
    } catch {
      unlinkSync(tmp);
    }
  } catch {
    // a cache that cannot be written only costs the next run a parse
  }
}

/**
 * parseSymbolTable(text) for `file`, through the on-disk cache. `text` is the file's contents
 * (read by the caller: the key includes its length, so a live table that gained a module misses).
 * Returns the table and whether the cache answered.
 */
export function parseSymbolTableCached(
  file: string,
  text: string,
  source: SymbolSource,
  opts: KallsymsCacheOptions = {},
): { table: SymbolTable; cache: CacheOutcome } {
  const bootId = opts.bootId !== undefined ? opts.bootId : file === "/proc/kallsyms" ? bootIdNow() : null;
  const key0 = cacheKey(file, text, bootId);
  if (key0 === null || process.env.PATCHSAFE_NO_CACHE) return { table: parseSymbolTable(text, { file, source }), cache: "disabled" };
  const key = `${source}:${key0}`;
  const dir = opts.dir ?? defaultCacheDir();
  const name = `kallsyms-${crc32(enc(key)).toString(16).padStart(8, "0")}.bin`;
  const path = join(dir, name);
  const hit = readCache(path, key);
  if (hit !== null) return { table: hit, cache: "hit" };
  const table = parseSymbolTable(text, { file, source });
  writeCache(dir, path, key, table);
  return { table, cache: "miss" };
}
