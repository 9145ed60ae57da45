/**
 * The reference for src/snapshot/names.ts (the decoder's own kernel): the NameBlob of format
 * 1.2's stored names, as src/symbols/table.ts built it before the decoder had a kernel of its
 * own. test/snapshot-decode.test.ts compares the two, blob or error, on real and hostile names.
 */
import type { NameBlob } from "../src/symbols/table.js";

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
