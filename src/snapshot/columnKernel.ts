/**
 * Host side of the snapshot column kernels (assembly/columns.ts): delta and run-length columns,
 * symbol sizes, format 1.2 name blobs, the first name scan and the own-line task placement in
 * wasm, the outputs copied into the decoder's own typed arrays.
 * Browser-clean (no `node:` imports); the decoder works without it (its TypeScript kernels, which
 * the differential tests compare against, and which it runs whenever the wasm kernel declines a
 * column: any doubt, any damage, so that errors keep their messages).
 *
 * One decode is one session: begin() forgets the last session's blocks, and every column decoded
 * after it keeps its block until the next begin(), so the symbol sizes can be computed from the
 * address and object columns where they already are. No view into the memory is kept across an
 * allocate() (which may grow the memory and detach the old buffer).
 */

/** The decoder's output arrays. */
export type ColumnOut = Float64Array | Uint32Array | Uint8Array | Int32Array;

export interface ColumnKernel {
  /** Starts a decode (forgets the blocks of the previous one). */
  begin(): void;
  /**
   * Decodes column bytes `b` (mode `d` deltas or `r` runs) into out[0, n): the end position in
   * `b`, or -1 when the kernel declines (the caller runs the TypeScript kernel).
   */
  decode(mode: "d" | "r", b: Uint8Array, out: ColumnOut, n: number, min: number, max: number, ids: boolean): number;
  /**
   * Symbol sizes (src/snapshot/sizes.ts) of rows whose columns this session decoded; null when
   * it did not decode them. `unsorted`: set to 1 for each object whose rows are out of address
   * order (the caller sorts those).
   */
  sizes(lo: Uint32Array, hi: Uint32Array, object: Uint32Array, objectCount: number, unsorted: Uint8Array): Float64Array | null;
  /**
   * A format 1.2 name blob's per-row start, length and prefix depth (src/snapshot/names.ts); null
   * when the kernel declines (anything storedNameBlob would reject: it then names it).
   */
  names(n: number, pad: Uint8Array, len: Uint8Array | Uint16Array | Uint32Array, chars: Uint8Array | Uint16Array): { start: Uint32Array; len: Uint32Array; pfx: Uint8Array; scanRows: NameScan } | null;
  /**
   * src/snapshot/psnap.ts placeOwnLines (its arguments, with `framesLength` and `copyBlock`
   * for what it does with the frame table: a stack's first task copies its rows); null when the
   * kernel declines (few tasks).
   */
  ownLines(args: OwnLinesArgs): { t: number; total: number; end: number } | null;
}

export interface OwnLinesArgs {
  stack: Int32Array;
  stackLen: Float64Array;
  /** Each task's line step, read as line[t & mask] (mask 0: one value for every task). */
  line: Float64Array;
  mask: number;
  /** Per stack: the start of its block of rows, -1 for none yet (updated). */
  block: Int32Array;
  framesLength: () => number;
  /** Copies stack s's rows for a task on line `ln` and returns where they start. */
  copyBlock: (s: number, ln: number) => number;
  frameStart: Uint32Array;
  frameCount: Uint32Array;
  taskLine: Uint32Array;
}

/**
 * BlobNames.scan over names the kernel decoded (src/symbols/table.ts NameBlob.scanRows): the
 * queries as stored (code units after `depth[q]` prefixes); per query its rows in table order,
 * or null when the kernel cannot answer (another decode has begun since, too many rows).
 */
export type NameScan = (code: Uint16Array[], depth: Int32Array) => (number[] | undefined)[] | null;

/** Rows a kernel name scan reports at most (more: the TypeScript scan). */
const MAX_SCAN_ROWS = 1 << 12;

interface ColumnExports {
  memory: WebAssembly.Memory;
  reset(): void;
  allocate(bytes: number): number;
  column(src: number, len: number, n: number, out: number, kind: number, min: number, max: number, runLength: boolean): number;
  sizes(lo: number, hi: number, object: number, n: number, objects: number, size: number, scratch: number): number;
  sizesUnsorted(scratch: number, objects: number, o: number): number;
  names(n: number, pad: number, len: number, lenWidth: number, stored: number, chars: number, charWidth: number, total: number, start: number, lenOut: number, pfx: number): number;
  ownLines(from: number, T: number, stack: number, stackLen: number, line: number, mask: number, block: number, noFrames: number, frameStart: number, frameCount: number, taskLine: number, total: number, end: number): number;
  ownLinesTotal(): number;
  ownLinesEnd(): number;
  scanNames(n: number, chars: number, charWidth: number, start: number, len: number, pfx: number, Q: number, qUnits: number, qStart: number, qLen: number, qDepth: number, keyFlag: number, maxLen: number, out: number, cap: number): number;
}

/** Columns shorter than this stay in TypeScript (a wasm call and two copies cost more). */
export const COLUMN_KERNEL_MIN_VALUES = 512;

/** Bytes the kernel may read past a column (assembly/columns.ts COLUMN_PADDING). */
const COLUMN_PADDING = 8;

const OUT_U8 = 0;
const OUT_U32 = 1;
const OUT_I32 = 2;
const OUT_F64 = 3;
const OUT_F64_ID = 4;

export function compileColumnKernelModule(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Module {
  return new WebAssembly.Module(bytes);
}

export interface ColumnKernelOptions {
  /** Columns (and name tables) shorter than this stay in TypeScript (default COLUMN_KERNEL_MIN_VALUES; tests: 0). */
  minValues?: number;
}

export function createColumnKernel(module: WebAssembly.Module, options: ColumnKernelOptions = {}): ColumnKernel {
  const minValues = options.minValues ?? COLUMN_KERNEL_MIN_VALUES;
  const x = new WebAssembly.Instance(module, { env: { abort: () => { throw new Error("column kernel aborted"); } } }).exports as unknown as ColumnExports;
  /** A copy of `a`'s bytes in the kernel's memory (with the padding the kernels may read). */
  const copyIn = (a: ArrayBufferView): number => {
    const at = x.allocate(a.byteLength + COLUMN_PADDING);
    new Uint8Array(x.memory.buffer, at, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return at;
  };
  // Blocks of this session's outputs, by the decoder's array they were copied into.
  let placed = new WeakMap<ColumnOut, number>();
  let session = 0;
  return {
    begin(): void {
      x.reset();
      placed = new WeakMap();
      session++;
    },
    decode(mode, b, out, n, min, max, ids): number {
      if (n < minValues) return -1;
      const kind = out instanceof Uint32Array ? OUT_U32 : out instanceof Uint8Array ? OUT_U8 : out instanceof Int32Array ? OUT_I32 : ids ? OUT_F64_ID : OUT_F64;
      const width = out.BYTES_PER_ELEMENT;
      const src = copyIn(b);
      const dst = x.allocate(n * width);
      const end = x.column(src, b.length, n, dst, kind, min, max, mode === "r");
      if (end < 0) return -1;
      const buf = x.memory.buffer;
      if (kind === OUT_U32) out.set(new Uint32Array(buf, dst, n));
      else if (kind === OUT_U8) out.set(new Uint8Array(buf, dst, n));
      else if (kind === OUT_I32) out.set(new Int32Array(buf, dst, n));
      else out.set(new Float64Array(buf, dst, n));
      placed.set(out, dst);
      return end;
    },
    sizes(lo, hi, object, objectCount, unsorted): Float64Array | null {
      const n = lo.length;
      const pLo = placed.get(lo);
      const pHi = placed.get(hi);
      const pObj = placed.get(object);
      if (pLo === undefined || pHi === undefined || pObj === undefined || hi.length !== n || object.length !== n) return null;
      const size = x.allocate(n * 8);
      const scratch = x.allocate(objectCount * 17);
      const any = x.sizes(pLo, pHi, pObj, n, objectCount, size, scratch);
      const out = new Float64Array(n);
      out.set(new Float64Array(x.memory.buffer, size, n));
      if (any !== 0) for (let o = 0; o < objectCount; o++) if (x.sizesUnsorted(scratch, objectCount, o) !== 0) unsorted[o] = 1;
      return out;
    },
    names(n, pad, len, chars) {
      if (n < minValues || pad.length < (n + 7) >> 3) return null;
      const pPad = copyIn(pad);
      const pLen = copyIn(len);
      const pChars = copyIn(chars);
      const start = x.allocate(n * 4);
      const lenOut = x.allocate(n * 4);
      const pfx = x.allocate(n);
      if (x.names(n, pPad, pLen, len.BYTES_PER_ELEMENT, len.length, pChars, chars.BYTES_PER_ELEMENT, chars.length, start, lenOut, pfx) !== 0) return null;
      const buf = x.memory.buffer;
      const ours = session;
      const charWidth = chars.BYTES_PER_ELEMENT;
      const scanRows: NameScan = (code, depth) => {
        if (session !== ours) return null;
        const Q = code.length;
        let total = 0;
        let maxLen = 1;
        for (const c of code) {
          total += c.length;
          maxLen = Math.max(maxLen, c.length + 1);
        }
        const units = new Uint16Array(total);
        const qStart = new Int32Array(Q);
        const qLen = new Int32Array(Q);
        const keyFlag = new Uint8Array(maxLen << 8);
        let at = 0;
        code.forEach((c, q) => {
          units.set(c, at);
          qStart[q] = at;
          // No row has an empty name (as the TypeScript scan: such a query matches nothing).
          qLen[q] = c.length === 0 ? -1 : c.length;
          if (c.length > 0) keyFlag[(c.length << 8) | (c[c.length - 1] & 0xff)] = 1;
          at += c.length;
        });
        const pUnits = copyIn(units);
        const pStart = copyIn(qStart);
        const pQLen = copyIn(qLen);
        const pDepth = copyIn(depth);
        const pFlag = copyIn(keyFlag);
        const out = x.allocate(MAX_SCAN_ROWS * 8);
        const found = x.scanNames(n, pChars, charWidth, start, lenOut, pfx, Q, pUnits, pStart, pQLen, pDepth, pFlag, maxLen, out, MAX_SCAN_ROWS);
        if (found < 0) return null;
        const pairs = new Uint32Array(x.memory.buffer, out, found * 2);
        const rows: (number[] | undefined)[] = code.map(() => undefined);
        for (let k = 0; k < found; k++) (rows[pairs[2 * k]] ??= []).push(pairs[2 * k + 1]);
        return rows;
      };
      return { start: new Uint32Array(buf, start, n).slice(), len: new Uint32Array(buf, lenOut, n).slice(), pfx: new Uint8Array(buf, pfx, n).slice(), scanRows };
    },
    ownLines(a) {
      const T = a.stack.length;
      const S = a.block.length;
      if (T < minValues || a.stackLen.length !== S) return null;
      const pStack = placed.get(a.stack) ?? copyIn(a.stack);
      const pLen = placed.get(a.stackLen) ?? copyIn(a.stackLen);
      const pLine = placed.get(a.line) ?? copyIn(a.line);
      const pBlock = copyIn(a.block);
      const pStart = x.allocate(T * 4);
      const pCount = x.allocate(T * 4);
      const pTaskLine = x.allocate(T * 4);
      // No allocate() after this: the view stays valid.
      const block = new Int32Array(x.memory.buffer, pBlock, S);
      let t = 0;
      let total = 0;
      let end = 0;
      for (;;) {
        t = x.ownLines(t, T, pStack, pLen, pLine, a.mask, pBlock, a.framesLength(), pStart, pCount, pTaskLine, total, end);
        total = x.ownLinesTotal();
        end = x.ownLinesEnd();
        if (t >= T) break;
        // A stack's first task (its rows not copied yet), or a task placeAny decides.
        const s = a.stack[t];
        const n = a.stackLen[s];
        const ln = end + a.line[t & a.mask];
        if (!(ln >= 0 && ln + n <= 0x100000000 && ln <= 0xffffffff && n > 0 && ln > 0 && block[s] < 0)) break;
        block[s] = a.block[s] = a.copyBlock(s, ln);
      }
      const buf = x.memory.buffer;
      a.frameStart.set(new Uint32Array(buf, pStart, t));
      a.frameCount.set(new Uint32Array(buf, pCount, t));
      a.taskLine.set(new Uint32Array(buf, pTaskLine, t));
      return { t, total, end };
    },
  };
}
