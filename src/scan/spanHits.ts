/**
 * Hits of a capture whose tasks share frame rows (Capture.sharedRows): the rows are scanned once
 * and each task's hits are those of its row span. A ScanHits whose per-task columns are made
 * only when first read: decide asks for the hits of a few tasks per distinct stack (of()), and a
 * 100k-task host has ~22k hits in ~100 rows, so laying them out per task (two passes over the
 * tasks, ~6-8 ms of a 100k-task check while V8 still interprets them) served only callers that
 * read CheckResult.hits.
 */
import type { ScanHits } from "./types.js";

/** [frame row, range index] pairs of one task, frame ascending, then range. Read-only: shared. */
export type TaskHits = [number, number][];

export class SpanScanHits implements ScanHits {
  private readonly rowFrame: Uint32Array;
  private readonly rowRange: Uint32Array;
  private readonly frameStart: Uint32Array;
  private readonly frameCount: Uint32Array;
  private laid: { count: number; task: Uint32Array; frame: Uint32Array; range: Uint32Array } | null = null;
  /** Per span's first row: the row count it was made for and its hits (undefined: none). */
  private readonly spans = new Map<number, { rows: number; hits: TaskHits | undefined }>();

  /**
   * `rowFrame`/`rowRange`: every hit of the rows, sorted by row then range (kept: pass copies,
   * not a scanner's borrowed view); `frameStart`/`frameCount`: each task's row span (copied here,
   * so a capture changed later does not change these hits).
   */
  constructor(rowFrame: Uint32Array, rowRange: Uint32Array, frameStart: Uint32Array, frameCount: Uint32Array) {
    this.rowFrame = rowFrame;
    this.rowRange = rowRange;
    this.frameStart = frameStart.slice();
    this.frameCount = frameCount.slice();
  }

  /** Task `t`'s hits (one list per span, shared by the tasks of that span), or undefined. */
  of(t: number): TaskHits | undefined {
    const rows = this.frameCount[t];
    if (rows === 0 || this.rowFrame.length === 0) return undefined;
    const start = this.frameStart[t];
    const known = this.spans.get(start);
    if (known !== undefined && known.rows === rows) return known.hits;
    const a = this.lowerBound(start);
    const b = this.lowerBound(start + rows);
    let hits: TaskHits | undefined;
    if (b > a) {
      hits = [];
      for (let j = a; j < b; j++) hits.push([this.rowFrame[j], this.rowRange[j]]);
    }
    // The first span met at a row keeps the slot (a snapshot may share a stack's prefix: a
    // shorter span at the same row is computed each time, as it is rare).
    if (known === undefined) this.spans.set(start, { rows, hits });
    return hits;
  }

  get count(): number {
    return this.layOut().count;
  }
  get task(): Uint32Array {
    return this.layOut().task;
  }
  get frame(): Uint32Array {
    return this.layOut().frame;
  }
  get range(): Uint32Array {
    return this.layOut().range;
  }

  /** First row hit at or after `row`. */
  private lowerBound(row: number): number {
    let lo = 0;
    let hi = this.rowFrame.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rowFrame[mid] < row) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Every task's hits, task by task (ScanHits order for shared rows), made once. */
  private layOut(): { count: number; task: Uint32Array; frame: Uint32Array; range: Uint32Array } {
    if (this.laid !== null) return this.laid;
    const T = this.frameStart.length;
    const first = new Int32Array(T);
    const count = new Int32Array(T);
    let total = 0;
    for (let t = 0; t < T; t++) {
      if (this.frameCount[t] === 0) continue;
      const a = this.lowerBound(this.frameStart[t]);
      first[t] = a;
      count[t] = this.lowerBound(this.frameStart[t] + this.frameCount[t]) - a;
      total += count[t];
    }
    const laid = { count: total, task: new Uint32Array(total), frame: new Uint32Array(total), range: new Uint32Array(total) };
    let k = 0;
    for (let t = 0; t < T; t++) {
      for (let j = first[t]; j < first[t] + count[t]; j++) {
        laid.task[k] = t;
        laid.frame[k] = this.rowFrame[j];
        laid.range[k] = this.rowRange[j];
        k++;
      }
    }
    return (this.laid = laid);
  }
}
