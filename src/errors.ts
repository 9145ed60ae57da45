/**
 * The one error type patchsafe throws for anything the user can fix: bad input, unknown
 * functions, unsupported options. Codes are stable (tests and scripts match on them); the CLI
 * maps every PatchsafeError to exit status 2 and prints one line, never a stack trace.
 */
export type ErrorCode =
  | "E_USAGE" // bad command line
  | "E_UNSUPPORTED" // an option or situation this build does not implement yet
  | "E_INPUT" // unreadable or malformed input (dump, capture, patch file)
  | "E_IO" // file cannot be opened or read
  | "E_SYMBOLS" // symbol table unusable (all-zero addresses, empty, malformed)
  | "E_SYMBOL_NOT_FOUND" // kernel: "symbol '%s' not found in symbol table"
  | "E_SYMBOL_AMBIGUOUS" // kernel: "unresolvable ambiguity for symbol '%s' in object '%s'"
  | "E_SYMPOS_NOT_FOUND" // kernel: "symbol position %lu for symbol '%s' in object '%s' not found"
  | "E_NEED_SYMBOLS" // sympos > 0 or --range without a symbol table / addresses
  | "E_SCAN_INPUT" // malformed scan buffers (a bug in the caller, reported with the bad value)
  | "E_LIVE" // the live host cannot be captured (no /proc, no permission)
  | "E_SNAPSHOT_MAGIC" // not a .psnap file
  | "E_SNAPSHOT_VERSION" // a newer major snapshot format than this patchsafe reads
  | "E_SNAPSHOT_TRUNCATED" // the file ends before its declared lengths
  | "E_SNAPSHOT_CHECKSUM" // CRC-32 of the prefix or body does not match
  | "E_SNAPSHOT_TOO_LARGE" // a declared length beyond the limits (refused before allocating)
  | "E_SNAPSHOT_CORRUPT" // well-checksummed but inconsistent content
  | "E_PATCH_MODULE"; // a patch module (.ko) whose replaced functions cannot be read

export interface ErrorDetail {
  file?: string;
  line?: number;
}

export class PatchsafeError extends Error {
  readonly code: ErrorCode | string;
  readonly file?: string;
  readonly line?: number;

  constructor(code: ErrorCode | string, message: string, detail?: ErrorDetail) {
    super(message);
    this.name = "PatchsafeError";
    this.code = code;
    this.file = detail?.file;
    this.line = detail?.line;
  }

  /** `file:line: message` (the form the CLI prints), falling back to what is known. */
  describe(): string {
    const where = this.file === undefined ? "" : this.line === undefined ? `${this.file}: ` : `${this.file}:${this.line}: `;
    return `${where}${this.message}`;
  }
}

export function isPatchsafeError(e: unknown): e is PatchsafeError {
  return e instanceof PatchsafeError;
}
