/**
 * Symbol sizes from addresses for a decoded snapshot table: exactly what src/symbols/table.ts
 * computes for a kallsyms file (the distance to the next higher address in the same object, 0
 * for an object's highest address; rows of one address share one size; an object whose rows are
 * not in address order is sorted first), in one pass over the rows from the last to the first,
 * with per object only the address and size of the run of equal addresses seen last: in address
 * order, that run is the next higher address of every row before it.
 * Browser-clean.
 */
import { activeColumnKernel } from "./columns.js";

/**
 * Sizes of rows given as address halves (`lo`, `hi`) and object ids below `objectCount`
 * (checked by the caller).
 */
export function symbolSizes(lo: Uint32Array, hi: Uint32Array, object: Uint32Array, objectCount: number): Float64Array {
  // In wasm when the decode in progress has a column kernel that decoded these columns.
  const wasmUnsorted = new Uint8Array(objectCount);
  const inWasm = activeColumnKernel()?.sizes(lo, hi, object, objectCount, wasmUnsorted) ?? null;
  if (inWasm !== null) {
    for (let o = 0; o < objectCount; o++) if (wasmUnsorted[o] !== 0) sortedSizes(lo, hi, object, o, inWasm);
    return inWasm;
  }
  const n = lo.length;
  const size = new Float64Array(n);
  // Per object: the address halves and size of its lowest run so far (runHi -1: none yet).
  const runHi = new Float64Array(objectCount).fill(-1);
  const runLo = new Float64Array(objectCount);
  const runSize = new Float64Array(objectCount);
  const unsorted = new Uint8Array(objectCount);
  if (sizesKernel(lo, hi, object, size, runHi, runLo, runSize, unsorted)) {
    for (let o = 0; o < objectCount; o++) if (unsorted[o] !== 0) sortedSizes(lo, hi, object, o, size);
  }
  return size;
}

/**
 * The pass over the rows, last to first (nothing but the loop: see columns.ts). Returns whether
 * an object is unsorted (its sizes written here are then rewritten by sortedSizes).
 */
function sizesKernel(lo: Uint32Array, hi: Uint32Array, object: Uint32Array, size: Float64Array, runHi: Float64Array, runLo: Float64Array, runSize: Float64Array, unsorted: Uint8Array): boolean {
  let any = false;
  for (let i = lo.length - 1; i >= 0; i--) {
    const o = object[i];
    const h = hi[i];
    const a = lo[i];
    const rh = runHi[o];
    const ra = runLo[o];
    if (h === rh && a === ra) {
      size[i] = runSize[o]; // joins the run
      continue;
    }
    if (rh < 0) {
      // The object's last row: no higher address (size 0, as the array starts).
      runHi[o] = h;
      runLo[o] = a;
      continue;
    }
    if (h > rh || (h === rh && a > ra)) {
      unsorted[o] = 1;
      any = true;
      continue;
    }
    const s = (rh - h) * 0x1_0000_0000 + (ra - a);
    runHi[o] = h;
    runLo[o] = a;
    runSize[o] = s;
    size[i] = s;
  }
  return any;
}

/** Sizes of one object's rows in address order (table.ts computeSizes, for an unsorted object). */
function sortedSizes(lo: Uint32Array, hi: Uint32Array, object: Uint32Array, o: number, size: Float64Array): void {
  const cmp = (a: number, b: number): number => (hi[a] !== hi[b] ? (hi[a] < hi[b] ? -1 : 1) : lo[a] < lo[b] ? -1 : lo[a] > lo[b] ? 1 : 0);
  const rows: number[] = [];
  for (let i = 0; i < lo.length; i++) if (object[i] === o) rows.push(i);
  rows.sort(cmp);
  let j = 0;
  while (j < rows.length) {
    let k = j + 1;
    while (k < rows.length && cmp(rows[k], rows[j]) === 0) k++;
    const sz = k < rows.length ? (hi[rows[k]] - hi[rows[j]]) * 0x1_0000_0000 + (lo[rows[k]] - lo[rows[j]]) : 0;
    for (let m = j; m < k; m++) size[rows[m]] = sz;
    j = k;
  }
}
