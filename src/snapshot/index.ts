/** The snapshot (issue 5): .psnap binary, its JSON form, redaction. Browser-clean. */
export { captureModel, symbolsModel } from "./compare.js";
export { crc32 } from "./crc32.js";
export { looksLikeSnapshotJson, parseSnapshotJson, parseSnapshotJsonBytes, snapshotJsonWriter, snapshotToJson } from "./json.js";
export { SECTION_NAMES, SNAPSHOT_FORMAT, SNAPSHOT_MAJOR, SNAPSHOT_MINOR, type EncodeOptions, type SectionRows, type SnapshotHeader } from "./model.js";
export { decodeSnapshot, encodeSnapshot, isSnapshot, prepareExport, readSnapshotHeader, SNAPSHOT_MAGIC, SnapshotError, type DecodedSnapshot } from "./psnap.js";
export { hashComms, redactCapture, redactSymbols, sectionRowsOf } from "./redact.js";
