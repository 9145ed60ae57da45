/**
 * The reference for src/snapshot/names.ts (the decoder's own kernel): the NameBlob of format
 * 1.2's stored names, as src/symbols/table.ts built it before the decoder had a kernel of its
 * own. test/snapshot-decode.test.ts compares the two, blob or error, on real and hostile names.
 */
import fc from "fast-check";
import type { NameBlob } from "../src/symbols/table.js";

/** A format 1.2 name table as the decoder gets it: row count, padding marks, lengths, code units. */
export interface StoredNames {
  n: number;
  pad: Uint8Array;
  len: Uint8Array | Uint16Array | Uint32Array;
  chars: Uint8Array | Uint16Array;
}

/**
 * Stored-name tables, good and hostile: runs of padding marks (up to 18 before a name),
 * `__pfx_` names (one, three, or only the prefix), empty names, a flipped mark, lengths and
 * code units a few too many or too few, bytes or UTF-16 code units, lengths of every width.
 */
export function storedNamesArb(): fc.Arbitrary<StoredNames> {
  const P = [...new TextEncoder().encode("__pfx_")];
  const nameArb = fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 9 }), fc.constant(Uint8Array.from([...P, 97])), fc.constant(Uint8Array.from([...P, ...P, ...P, 98])), fc.constant(Uint8Array.from(P)), fc.constant(new Uint8Array(0)));
  return fc
    .tuple(
      fc.array(fc.record({ name: nameArb, marks: fc.nat(18) }), { maxLength: 30 }),
      fc.integer({ min: -2, max: 2 }),
      fc.integer({ min: -2, max: 2 }),
      fc.boolean(),
      fc.nat(40),
      fc.constantFrom(Uint8Array, Uint16Array, Uint32Array),
    )
    .map(([rows, lenSlack, charSlack, wide, flip, LenArray]) => {
      const marks: number[] = [];
      const lens: number[] = [];
      const units: number[] = [];
      for (const r of rows) {
        for (let m = 0; m < (r.marks > 15 ? r.marks : r.marks % 3); m++) marks.push(1);
        marks.push(0);
        lens.push(r.name.length);
        units.push(...r.name);
      }
      if (flip < marks.length) marks[flip] ^= 1;
      const n = marks.length;
      const pad = new Uint8Array((n + 7) >> 3);
      marks.forEach((m, i) => (pad[i >> 3] |= m << (i & 7)));
      const len = LenArray.from(lenSlack >= 0 ? [...lens, ...new Array(lenSlack).fill(1)] : lens.slice(0, lenSlack));
      const chars = (wide ? Uint16Array : Uint8Array).from(charSlack >= 0 ? [...units, ...new Array(charSlack).fill(65)] : units.slice(0, charSlack));
      return { n, pad, len, chars };
    });
}

const PFX = "__pfx_";

function startsWithPfx(chars: Uint8Array | Uint16Array, a: number): boolean {
  for (let k = 0; k < PFX.length; k++) if (chars[a + k] !== PFX.charCodeAt(k)) return false;
  return true;
}

/**
 * Builds a NameBlob from stored names back to back (`chars`, code units; `len` per stored name,
 * in table order) and padding marks (`pad`: bit i & 7 of byte i >> 3 set for a row that is
 * `__pfx_` + the next row's name and stores nothing): format 1.2 of the snapshot. One pass; the
 * blob keeps `chars` itself (no copy). Returns an error string instead of throwing.
 */
export function nameBlobFromStored(n: number, pad: Uint8Array, len: ArrayLike<number>, chars: Uint8Array | Uint16Array): NameBlob | { error: string; tooLarge?: boolean } {
  if (pad.length < (n + 7) >> 3) return { error: "symbols.pad: shorter than the rows" };
  const start = new Uint32Array(n);
  const lenOut = new Uint32Array(n);
  const pfx = new Uint8Array(n);
  const total = chars.length;
  const stored = len.length;
  let k = 0;
  let at = 0;
  // Marked rows before the current one: they take its code units with one more prefix each.
  let pending = 0;
  for (let i = 0; i < n; i++) {
    if ((pad[i >> 3] >> (i & 7)) & 1) {
      pending++;
      continue;
    }
    if (k >= stored) return { error: "symbols.nameLen: fewer lengths than stored names" };
    let l = len[k++];
    if (!(l >= 1) || at + l > total) return { error: `symbols.names[${i}]: ${l === 0 ? "empty name" : "length out of range"}` };
    let a = at;
    at += l;
    // Leading `__pfx_` of a stored name (one with no function row after it) folded into pfx.
    let d = 0;
    if (chars[a] === 95) {
      while (l > PFX.length && startsWithPfx(chars, a)) {
        if (d === 255) return { error: `symbols.names[${i}]: too many __pfx_ prefixes` };
        d++;
        a += PFX.length;
        l -= PFX.length;
      }
    }
    start[i] = a;
    lenOut[i] = l;
    pfx[i] = d;
    if (pending > 0) {
      if (d + pending > 16) return { error: `symbols.pad[${i - pending}]: padding marks chained too deep` };
      for (let j = 1; j <= pending; j++) {
        start[i - j] = a;
        lenOut[i - j] = l;
        pfx[i - j] = d + j;
      }
      pending = 0;
    }
  }
  if (pending > 0) return { error: `symbols.pad[${n - 1}]: bad padding mark` };
  if (k !== stored) return { error: "symbols.nameLen: more lengths than stored names" };
  if (at !== total) return { error: "symbols.names: trailing code units" };
  return { chars, start, len: lenOut, pfx };
}
