// Lets worker threads started from the TypeScript sources (vitest) load .ts files: registers
// resolve/load hooks that map a missing `x.js` to `x.ts` and transpile it with typescript.
// Only tests use it; dist/ needs nothing of this.
import { register } from "node:module";

register("./tsWorkerLoader.mjs", import.meta.url);
