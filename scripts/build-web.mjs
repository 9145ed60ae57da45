#!/usr/bin/env node
/**
 * Builds dist-web/patchsafe.html: the in-browser checker as ONE self-contained file.
 *
 *   web/checker.ts ──esbuild (bundle, ESM, minified)──▶ one inline <script type="module">
 *   build/scan.wasm (release) ──base64──▶ __PATCHSAFE_WASM_BASE64__ inside that script
 *   web/index.html ──%CSP% %SCRIPT% %VERSION%──▶ dist-web/patchsafe.html
 *
 * The CSP allows no connection of any kind (default-src 'none'), only this one script (by its
 * SHA-256) and wasm compilation ('wasm-unsafe-eval'), so it works from file:// and nothing the
 * user drops can leave the machine. Runs `npm run asbuild` first when build/scan.wasm is missing.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const wasmPath = join(root, "build/scan.wasm");
const outPath = join(root, "dist-web/patchsafe.html");

if (!existsSync(wasmPath)) {
  console.log("build-web: build/scan.wasm missing, running npm run asbuild");
  execFileSync("npm", ["run", "asbuild"], { cwd: root, stdio: "inherit" });
}
const wasm = readFileSync(wasmPath);
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

const result = await build({
  entryPoints: [join(root, "web/checker.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  write: false,
  legalComments: "none",
  charset: "ascii",
  logLevel: "warning",
  define: { __PATCHSAFE_WASM_BASE64__: JSON.stringify(wasm.toString("base64")) },
});
const script = result.outputFiles[0].text.trimEnd();

// Nothing in the script may end its element, or open an HTML comment (`<!--` then `<script` would
// put the parser in the "double escaped" state and swallow the end tag). esbuild writes `</script`
// in strings as `<\/script`; this is the check that it did.
for (const bad of [/<\/script/i, /<!--/]) {
  if (bad.test(script)) throw new Error(`build-web: the bundle contains ${bad}; it cannot be inlined safely`);
}
// Nothing may name a remote location either (the CSP would block it; the build says so first).
const remote = script.match(/https?:\/\/[^\s"'`)]*/g) ?? [];
if (remote.length > 0) console.warn(`build-web: note, the bundle mentions ${[...new Set(remote)].slice(0, 5).join(", ")} (blocked by the CSP in any case)`);

const hash = createHash("sha256").update(script, "utf8").digest("base64");
const csp = [
  "default-src 'none'",
  `script-src 'sha256-${hash}' 'wasm-unsafe-eval'`,
  "style-src 'unsafe-inline'",
  "img-src data: blob:",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const template = readFileSync(join(root, "web/index.html"), "utf8");
// Function replacers: `$` sequences in the bundle must not be read as replacement patterns.
const html = template
  .replace("%CSP%", () => esc(csp))
  .replace("%VERSION%", () => esc(pkg.version))
  .replace("%SCRIPT%", () => script);
if (!html.includes(`<script type="module">${script}</script>`)) throw new Error("build-web: the template lacks the %SCRIPT% slot");

mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, html);
console.log(`build-web: ${relative(root, outPath)} (${(html.length / 1024).toFixed(0)} KiB; wasm ${wasm.length} B inlined)`);
