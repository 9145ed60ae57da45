/**
 * What a snapshot holds besides the Capture and SymbolTable of src/model.ts and
 * src/symbols/table.ts: its header (readable without decoding the body) and, for a redacted
 * snapshot, which symbol rows lie in each special text section (the address bounds are gone).
 */
import type { TriState } from "../model.js";
import type { SectionBounds } from "../symbols/table.js";

/** Format major version this build writes and the newest it reads. */
export const SNAPSHOT_MAJOR = 1;
/**
 * Minor version: additions old readers may ignore.
 * - 1.1: the symbol section is the body's last value and the binary header's `symbolsAt`
 *   ([offset, length] within the body) says where, so a reader can reuse a section whose exact
 *   bytes it decoded before; padding marks never chain. The body is still one msgpack map that a
 *   1.0 reader reads unchanged.
 * - 1.2: the symbol section's names are one byte string of the stored names (`names`, with
 *   `nameLen` and the padding bitset `pad`) instead of a text with front coding (`pfx`, `pre`,
 *   `len`, `text`), so a reader looks names up in the file's own bytes; frame rows carry the
 *   symbol row resolve gives them with that table (`frames.symRow`), so a check needs no name
 *   index. Unlike 1.1 this is not an addition: a 1.0/1.1 reader reports a 1.2 file with a symbol
 *   table as damaged (E_SNAPSHOT_CORRUPT at symbols.pfx) rather than as too new; files without
 *   a symbol table still read.
 * - 1.3: the binary header's `symbolsSha256` is the SHA-256 of the symbol section's bytes (the
 *   `symbolsAt` range). A reader that holds a section it decoded and verified against that
 *   digest (a fleet worker: hosts of one kernel build) reads only the bytes before the section
 *   and checks the body's CRC-32 with the section's (crc32Combine). An addition: 1.1 and 1.2
 *   readers ignore it.
 *   Also in 1.3, an addition older 1.3 readers ignore: `capture.traceable`, the live host's
 *   available_filter_functions as a bitset over the symbol rows (absent: not recorded), so a
 *   check of the snapshot knows, as a check of the live host does, what ftrace cannot hook.
 * This build reads 1.0 to 1.3.
 */
export const SNAPSHOT_MINOR = 3;
export const SNAPSHOT_FORMAT = "patchsafe-snapshot";

/** The snapshot header: the first msgpack value of a .psnap, and `header` of the JSON form. */
export interface SnapshotHeader {
  format: typeof SNAPSHOT_FORMAT;
  major: number;
  minor: number;
  /** `patchsafe X.Y.Z` that wrote it. */
  producer: string;
  /** ISO 8601, from the capture's host facts. */
  capturedAt: string | null;
  hostname: string | null;
  /** `uname -r`. */
  release: string | null;
  /** /proc/sys/kernel/random/boot_id. */
  bootId: string | null;
  arch: string | null;
  /** SPEC §3 completeness of the capture. */
  complete: TriState;
  tasks: number;
  frames: number;
  /** Symbol rows, null when the snapshot carries no symbol table. */
  symbols: number | null;
  /** --redact: no absolute address anywhere in the file (SPEC §8). */
  redacted: boolean;
  /** Comms of user tasks replaced by salted hashes. */
  commsHashed: boolean;
  /** Where the capture came from (file name, input format). */
  source: { name: string; format: string };
}

export type SectionName = keyof SectionBounds;
export const SECTION_NAMES: SectionName[] = ["sched", "lock", "entry", "noinstr", "cpuidle", "init"];

/**
 * Rows of the symbol table inside each section, for a table without addresses (a redacted
 * snapshot): computed from the real bounds when the snapshot was written. null for a section
 * whose bounds were unknown.
 */
export type SectionRows = Record<SectionName, Uint32Array | null>;

export interface EncodeOptions {
  /** SPEC §8 --redact: drop absolute addresses (frames, symbol table, section bounds). */
  redact?: boolean;
  /** Replace the comm of every task that is not known to be a kthread by a salted hash. */
  hashComms?: boolean;
  /** The comms were hashed already (re-encoding a snapshot that was written with hashComms). */
  commsHashed?: boolean;
  /** Keep the header's `redacted` mark (re-encoding a snapshot that was redacted already). */
  redacted?: boolean;
  /** Section rows of a names-only table (re-encoding a redacted snapshot). */
  sectionRows?: SectionRows | null;
  /** SHA-256 of the symbol section (default: src/sha256.ts; Node passes node:crypto's: the same digest, faster). */
  sha256?: (bytes: Uint8Array) => Uint8Array;
  /** Override the producer string (tests). */
  producer?: string;
}
