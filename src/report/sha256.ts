/**
 * The `script-src 'sha256-…'` hash of the HTML report's inline script (see src/sha256.ts).
 */
import { sha256 } from "../sha256.js";

/** `sha256-<base64>` of the UTF-8 bytes of `text`: a CSP hash source. */
export function cspHash(text: string): string {
  const d = sha256(new TextEncoder().encode(text));
  let bin = "";
  for (const b of d) bin += String.fromCharCode(b);
  return `sha256-${btoa(bin)}`;
}
