/**
 * Plain, id-free views of a Capture and a SymbolTable, for comparing models that went through
 * different encodings (string ids and frame row order may differ; meaning may not).
 */
import { type Capture, FrameFlag, frameLine, hex64, u64 } from "../model.js";
import type { SymbolTable } from "../symbols/table.js";

/**
 * The capture with every string id replaced by its string and frames nested per task (so a
 * capture whose tasks share frame rows equals one where each task owns its rows).
 */
export function captureModel(cap: Capture): unknown {
  const f = cap.frames;
  const str = (id: number): string | null => (id < 0 ? null : cap.strings.get(id));
  return {
    source: cap.source,
    host: cap.host,
    complete: cap.complete,
    completeness: cap.completeness,
    hidesSchedFrames: cap.hidesSchedFrames,
    excluded: cap.excluded,
    warnings: cap.warnings,
    livepatches: cap.livepatches,
    modules: cap.modules,
    tasks: cap.tasks.map((t) => {
      const frames = [];
      for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
        // SHARED only says how rows are stored (Capture.sharedRows), not what the frame is.
        const flags = f.flags[i] & ~FrameFlag.SHARED;
        frames.push({
          symbol: flags & FrameFlag.SYMBOLIC ? str(f.symbol[i]) : null,
          object: str(f.object[i]),
          buildId: str(f.buildId[i]),
          offset: f.offset[i],
          size: f.size[i],
          flags,
          address: flags & FrameFlag.HAS_ADDRESS ? hex64(u64(f.addrLo[i], f.addrHi[i])) : null,
          // Per task: rows may be shared (Capture.sharedRows), lines are the task's own.
          line: frameLine(cap, t, i),
        });
      }
      return {
        pid: t.pid,
        tid: t.tid,
        comm: t.comm === null ? null : Array.from(t.comm),
        state: t.state,
        flags: t.flags,
        ppid: t.ppid,
        startTime: t.startTime,
        cpu: t.cpu,
        patchState: t.patchState,
        stackStatus: t.stackStatus,
        errno: t.errno,
        running: t.running,
        statusKthread: t.statusKthread,
        endMarker: t.endMarker,
        line: t.line,
        frames,
      };
    }),
  };
}

/** The symbol table as plain columns (what a check can observe). */
export function symbolsModel(t: SymbolTable): unknown {
  const sec = (b: [bigint, bigint] | null): string[] | null => (b === null ? null : [hex64(b[0]), hex64(b[1])]);
  return {
    source: t.source,
    coverage: t.coverage,
    hasAddresses: t.hasAddresses,
    count: t.count,
    names: t.names,
    objects: Array.from(t.object, (o) => t.objects[o]),
    type: Array.from(t.type, (c) => String.fromCharCode(c)).join(""),
    addresses: t.hasAddresses ? Array.from({ length: t.count }, (_, i) => hex64(u64(t.addrLo[i], t.addrHi[i]))) : null,
    size: Array.from(t.size),
    sympos: Array.from(t.sympos),
    dupCount: Array.from(t.dupCount),
    padding: Array.from(t.padding),
    sections: Object.fromEntries(Object.entries(t.sections).map(([k, v]) => [k, sec(v)])),
    text: t.text === null ? null : hex64(t.text),
    warnings: t.warnings,
  };
}
