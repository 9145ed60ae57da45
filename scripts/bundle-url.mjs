// Injected into the CommonJS bundle of the CLI (esbuild --inject, with
// --define:import.meta.url=__patchsafeBundleUrl; see package.json "bundle:cli-cjs"): the CLI finds
// its wasm files (../../build/*.wasm) and the fleet worker bundle relative to its own URL, which a
// CommonJS file has only as __filename. bin/patchsafe.cjs passes the bundle's path as __filename;
// a plain require() of the bundle does too.
import { pathToFileURL } from "node:url";

export const __patchsafeBundleUrl = pathToFileURL(__filename).href;
