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

/** Strips control characters from text bound for a terminal (symbol names come from inputs too). */
export function terminalSafe(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c < 0x20 || (c >= 0x7f && c < 0xa0) ? `\\x${c.toString(16).padStart(2, "0")}` : s[i];
  }
  return out;
}
