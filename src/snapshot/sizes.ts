/**
 * Symbol sizes from addresses for a decoded snapshot table: exactly what src/symbols/table.ts
 * computes for a kallsyms file (the distance to the next higher address in the same object, 0
 * for an object's highest address; rows of one address share one size; an object whose rows are
 * not in address order is sorted first), in one pass over the rows with no column per row besides
 * the sizes: the rows of a run of equal addresses are linked through `size` itself (-1 - the
 * previous row of the run) until the next higher address gives the run its size.
 * Browser-clean.
 */

/**
 * Sizes of rows given as address halves (`lo`, `hi`) and object ids below `objectCount`
 * (checked by the caller).
 */
export function symbolSizes(lo: Uint32Array, hi: Uint32Array, object: Uint32Array, objectCount: number): Float64Array {
  const n = lo.length;
  const size = new Float64Array(n);
  // Per object: its last row so far; whether its rows left address order.
  const last = new Int32Array(objectCount).fill(-1);
  const unsorted = new Uint8Array(objectCount);
  const anyUnsorted = sizesKernel(lo, hi, object, size, last, unsorted);
  for (let o = 0; o < objectCount; o++) {
    if (unsorted[o] !== 0) continue;
    // The object's last run has no higher address: size 0.
    for (let r = last[o]; r >= 0; ) {
      const x = size[r];
      size[r] = 0;
      r = x < 0 ? -1 - x : -1;
    }
  }
  if (anyUnsorted) for (let o = 0; o < objectCount; o++) if (unsorted[o] !== 0) sortedSizes(lo, hi, object, o, size);
  return size;
}

/** The pass over the rows (nothing but the loop: see columns.ts). Returns whether an object is unsorted. */
function sizesKernel(lo: Uint32Array, hi: Uint32Array, object: Uint32Array, size: Float64Array, last: Int32Array, unsorted: Uint8Array): boolean {
  const n = lo.length;
  let any = false;
  for (let i = 0; i < n; i++) {
    const o = object[i];
    const l = last[o];
    last[o] = i;
    if (l < 0 || unsorted[o] !== 0) continue;
    const h = hi[i];
    const a = lo[i];
    const lh = hi[l];
    const la = lo[l];
    if (h === lh && a === la) {
      size[i] = -1 - l; // joins the open run
      continue;
    }
    if (h < lh || (h === lh && a < la)) {
      unsorted[o] = 1;
      any = true;
      continue;
    }
    // The open run ending at l gets its size.
    const s = (h - lh) * 0x1_0000_0000 + (a - la);
    let r = l;
    do {
      const x = size[r];
      size[r] = s;
      r = x < 0 ? -1 - x : -1;
    } while (r >= 0);
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
