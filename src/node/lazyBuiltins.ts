/**
 * Node built-ins that only some commands use, loaded on first use. node:worker_threads costs
 * ~3 ms to load, on every CLI run when imported at the top of the bundle, for the two commands
 * that start threads (capture, fleet). node:crypto (~3 ms) for the snapshot reader's SHA-256,
 * which a fleet worker needs once per distinct symbol section and a plain check never.
 */
import { createRequire } from "node:module";

type WorkerThreads = typeof import("node:worker_threads");
let workerThreadsModule: WorkerThreads | null = null;

/** node:worker_threads. */
export function workerThreads(): WorkerThreads {
  return (workerThreadsModule ??= createRequire(import.meta.url)("node:worker_threads") as WorkerThreads);
}

type Crypto = typeof import("node:crypto");
let cryptoModule: Crypto | null = null;

/** node:crypto. */
export function nodeCrypto(): Crypto {
  return (cryptoModule ??= createRequire(import.meta.url)("node:crypto") as Crypto);
}
