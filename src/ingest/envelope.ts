/**
 * The line envelope of a captured kernel log (FORMATS.md §1): everything a logger, a terminal or a
 * human wrapped around a printk line. Stripping it leaves the text the kernel printed, with its
 * structural indentation (x86 frames are indented by one space; register blocks are not).
 *
 *   > > `                                 e-mail quote markers, a stray markdown backtick
 *   Nov  7 20:31:22 host kernel:          syslog / journalctl short (host optional)
 *   2021-11-29T00:44:00.27+00:00 h kernel:  RFC 3339 syslog
 *   <6>                                   /dev/kmsg level (`<6> [sec]` in Intel IGT logs)
 *   [ 8038.216853]                        CONFIG_PRINTK_TIME
 *   [   79.822940 / 05-03 18:11:50.340]   Android dual timestamp
 *   [Thu Nov  2 17:49:55 2023]            dmesg -T
 *   [ T1478] / [    C0]                   CONFIG_PRINTK_CALLER
 *
 * Byte-level and allocation-free: results go to `env` (reused). Every scan is bounded by the line,
 * with no backtracking.
 */
import { CH } from "./bytes.js";

export interface Envelope {
  /** Index of the first byte of the kernel's own text. */
  body: number;
  /** printk timestamp in seconds, NaN when the line has none. */
  time: number;
  /** False for a syslog line written by something other than the kernel. */
  kernel: boolean;
  /** Whether any prefix (syslog, level, timestamp, caller) was found. */
  prefixed: boolean;
}

export const env: Envelope = { body: 0, time: Number.NaN, kernel: true, prefixed: false };

const MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec";

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** `HH:MM:SS` at p; returns the index after it or -1. */
function clock(buf: Uint8Array, p: number, end: number): number {
  if (end - p < 8) return -1;
  if (!isDigit(buf[p]) || !isDigit(buf[p + 1]) || buf[p + 2] !== CH.COLON) return -1;
  if (!isDigit(buf[p + 3]) || !isDigit(buf[p + 4]) || buf[p + 5] !== CH.COLON) return -1;
  if (!isDigit(buf[p + 6]) || !isDigit(buf[p + 7])) return -1;
  return p + 8;
}

/** `Mmm dd HH:MM:SS ` (day space-padded or two digits); returns the index after it or -1. */
function syslogDate(buf: Uint8Array, p: number, end: number): number {
  if (end - p < 16 || !isAlpha(buf[p]) || buf[p + 3] !== CH.SPACE) return -1;
  let m = -1;
  for (let i = 0; i < 36; i += 3) {
    if (buf[p] === MONTHS.charCodeAt(i) && buf[p + 1] === MONTHS.charCodeAt(i + 1) && buf[p + 2] === MONTHS.charCodeAt(i + 2)) {
      m = i;
      break;
    }
  }
  if (m < 0) return -1;
  let q = p + 4;
  if (buf[q] === CH.SPACE) q++;
  if (!isDigit(buf[q])) return -1;
  q++;
  if (isDigit(buf[q])) q++;
  if (buf[q] !== CH.SPACE) return -1;
  q = clock(buf, q + 1, end);
  if (q < 0 || q >= end || buf[q] !== CH.SPACE) return -1;
  return q + 1;
}

/** RFC 3339 `YYYY-MM-DDTHH:MM:SS[.frac][Z|+hh:mm] `; returns the index after it or -1. */
function isoDate(buf: Uint8Array, p: number, end: number): number {
  if (end - p < 20) return -1;
  for (let i = 0; i < 4; i++) if (!isDigit(buf[p + i])) return -1;
  if (buf[p + 4] !== 45 || buf[p + 7] !== 45 || buf[p + 10] !== 84) return -1;
  let q = clock(buf, p + 11, end);
  if (q < 0) return -1;
  const stop = Math.min(end, q + 20);
  while (q < stop && buf[q] !== CH.SPACE) q++;
  if (q >= end || buf[q] !== CH.SPACE) return -1;
  return q + 1;
}

/** After a syslog date: `[host ]kernel: `. Sets env.kernel; returns the body start. */
function syslogTag(buf: Uint8Array, p: number, end: number): number {
  // Up to two words: the first may be the host.
  for (let word = 0; word < 2; word++) {
    let q = p;
    while (q < end && buf[q] !== CH.SPACE && buf[q] !== CH.COLON) q++;
    if (q < end && buf[q] === CH.COLON) {
      const isKernel = q - p === 6 && buf[p] === 107 && buf[p + 1] === 101 && buf[p + 2] === 114 && buf[p + 3] === 110 && buf[p + 4] === 101 && buf[p + 5] === 108;
      env.kernel = isKernel;
      q++;
      if (q < end && buf[q] === CH.SPACE) q++;
      return q;
    }
    if (q >= end) break;
    // `tag[123]: message` style programs.
    p = q + 1;
  }
  env.kernel = false;
  return p;
}

/**
 * `[ 1234.567890]`, `[ 1234.567890 / 05-03 18:11:50.340]` or `[Thu Nov  2 17:49:55 2023]` at p.
 * Returns the index after `]` or -1; sets env.time for the numeric kinds.
 */
function timestamp(buf: Uint8Array, p: number, end: number): number {
  if (p >= end || buf[p] !== CH.LBRACKET) return -1;
  let q = p + 1;
  while (q < end && buf[q] === CH.SPACE && q - p < 16) q++;
  if (q < end && isDigit(buf[q])) {
    let secs = 0;
    const s0 = q;
    while (q < end && isDigit(buf[q]) && q - s0 < 12) secs = secs * 10 + (buf[q++] - 48);
    if (q >= end || buf[q] !== 46) return -1;
    q++;
    let frac = 0;
    let scale = 1;
    const f0 = q;
    while (q < end && isDigit(buf[q]) && q - f0 < 9) {
      frac = frac * 10 + (buf[q++] - 48);
      scale *= 10;
    }
    if (q === f0) return -1;
    if (q < end && buf[q] === CH.SPACE && q + 1 < end && buf[q + 1] === CH.SLASH) {
      // Android: ` / MM-DD HH:MM:SS.mmm`
      const stop = Math.min(end, q + 32);
      while (q < stop && buf[q] !== CH.RBRACKET) q++;
    }
    if (q >= end || buf[q] !== CH.RBRACKET) return -1;
    env.time = secs + frac / scale;
    return q + 1;
  }
  // dmesg -T: `[Www Mmm dd HH:MM:SS YYYY]`
  if (end - p >= 26 && isAlpha(buf[p + 1]) && isAlpha(buf[p + 2]) && isAlpha(buf[p + 3]) && buf[p + 4] === CH.SPACE) {
    const stop = Math.min(end, p + 32);
    let r = p + 5;
    let colons = 0;
    while (r < stop && buf[r] !== CH.RBRACKET) {
      if (buf[r] === CH.COLON) colons++;
      r++;
    }
    if (r < stop && colons === 2) return r + 1;
  }
  return -1;
}

/** `[ T1478]` / `[    C0]` / `[T28905]` at p; the index after `]` or -1. */
function callerId(buf: Uint8Array, p: number, end: number): number {
  if (p >= end || buf[p] !== CH.LBRACKET) return -1;
  let q = p + 1;
  while (q < end && buf[q] === CH.SPACE && q - p < 10) q++;
  if (q >= end || (buf[q] !== 84 && buf[q] !== 67)) return -1;
  q++;
  const d0 = q;
  while (q < end && isDigit(buf[q]) && q - d0 < 10) q++;
  if (q === d0 || q >= end || buf[q] !== CH.RBRACKET) return -1;
  return q + 1;
}

/**
 * Strips the envelope of buf[start, end) into `env`. Quote markers, a stray backtick and
 * indentation before a recognised prefix go; the text after the prefix keeps its own leading
 * blanks, minus the one space printk puts after the timestamp.
 */
export function stripEnvelope(buf: Uint8Array, start: number, end: number): Envelope {
  env.time = Number.NaN;
  env.kernel = true;
  env.prefixed = false;
  let p = start;
  // Quote markers `> ` (repeated), backticks.
  for (;;) {
    if (p < end && buf[p] === CH.GT) {
      p++;
      if (p < end && buf[p] === CH.SPACE) p++;
      continue;
    }
    if (p < end && buf[p] === 96) {
      p++;
      continue;
    }
    break;
  }
  const afterQuote = p;
  let q = p;
  while (q < end && (buf[q] === CH.SPACE || buf[q] === CH.TAB) && q - p < 16) q++;
  let r = syslogDate(buf, q, end);
  if (r < 0) r = isoDate(buf, q, end);
  if (r >= 0) {
    env.prefixed = true;
    p = syslogTag(buf, r, end);
    q = p;
  }
  // `<N>` level.
  if (q + 2 < end && buf[q] === CH.LT && isDigit(buf[q + 1])) {
    let s = q + 1;
    while (s < end && isDigit(buf[s]) && s - q < 4) s++;
    if (s < end && buf[s] === CH.GT) {
      env.prefixed = true;
      p = s + 1;
      q = p;
      if (q < end && buf[q] === CH.SPACE && q + 1 < end && buf[q + 1] === CH.LBRACKET) q++;
    }
  }
  let t = timestamp(buf, q, end);
  if (t >= 0) {
    env.prefixed = true;
    const c = callerId(buf, t, end);
    p = c >= 0 ? c : t;
    if (p < end && buf[p] === CH.SPACE) p++;
  } else {
    t = callerId(buf, q, end);
    if (t >= 0) {
      env.prefixed = true;
      p = t;
      if (p < end && buf[p] === CH.SPACE) p++;
    } else if (!env.prefixed) p = afterQuote;
  }
  env.body = p;
  return env;
}
