/**
 * comm is attacker-controlled (any process names itself with prctl(PR_SET_NAME): 15 arbitrary
 * bytes). Every byte that is not printable ASCII is shown as `\xNN` (backslash too, so the
 * escaping is reversible and `\x0a` in a name cannot be mistaken for a real escape).
 */
export function escapeComm(comm: Uint8Array | null): string | null {
  if (comm === null) return null;
  let s = "";
  for (const b of comm) {
    if (b >= 0x20 && b < 0x7f && b !== 0x5c) s += String.fromCharCode(b);
    else s += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return s;
}

/**
 * Escapes what could act on a terminal or fool a reader in text bound for one (symbol names, host
 * names, file names and messages come from inputs too): control characters as `\xNN`, and the
 * invisible format and separator characters as `\u{XXXX}` (bidi overrides and isolates such as
 * U+202E, which reorder what follows; zero-width characters; U+2028/2029, which some terminals and
 * viewers break lines at).
 */
export function terminalSafe(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else if (c < 0xad) out += s[i];
    else {
      // By code point: some invisible ones are astral (the tag characters U+E0000…).
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      out += INVISIBLE.test(ch) ? `\\u{${cp.toString(16)}}` : ch;
      if (cp > 0xffff) i++;
    }
  }
  return out;
}

/** Format (Cf) and line/paragraph separator characters: invisible, or they move or break text. */
const INVISIBLE = /^[\p{Cf}\p{Zl}\p{Zp}]$/u;
