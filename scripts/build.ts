// Builds dist/: the server (src/main.ts and the chunks it loads lazily, each command its own), the browser
// client bundle the server serves as /client.js, and the Web Push service worker it serves as /herald-sw.js.
// `npm install` runs it (the `prepare` script).
import { readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import {
  CLIENT_BUILD_OPTIONS,
  CLIENT_BUNDLE_FILE,
  SERVICE_WORKER_BUILD_OPTIONS,
  SERVICE_WORKER_BUNDLE_FILE,
} from "../src/http/routes/client-bundle.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DIST = fileURLToPath(new URL("../dist/", import.meta.url));

const started = performance.now();
rmSync(DIST, { recursive: true, force: true });
await Promise.all([
  esbuild.build({
    absWorkingDir: ROOT,
    // The push worker is a script of its own (src/push/worker-sender.ts starts it beside the chunk that needs it).
    entryPoints: { main: "src/main.ts", "push-worker": "src/push/push-worker.ts" },
    outdir: DIST,
    bundle: true,
    // Each command's `await import()` stays a chunk of its own: `herald publish` loads no server code.
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20.19",
    // Dependencies load from node_modules as published (better-sqlite3's addon, pino's worker threads).
    packages: "external",
    // bin/herald.js turns source maps on, so stack traces name src/*.ts and their lines.
    sourcemap: "linked",
    sourcesContent: false,
    // Error and class names stay what the sources call them, even where bundling renames a binding.
    keepNames: true,
    entryNames: "[name]",
    chunkNames: "[name]-[hash]",
    define: { HERALD_BUILT: "true" },
    logLevel: "warning",
  }),
  esbuild.build({ ...CLIENT_BUILD_OPTIONS, outfile: CLIENT_BUNDLE_FILE }),
  esbuild.build({ ...SERVICE_WORKER_BUILD_OPTIONS, outfile: SERVICE_WORKER_BUNDLE_FILE }),
]);

// src/package-root.ts finds demo/ and dist/client.js one level above each output file.
const nested = readdirSync(DIST, { withFileTypes: true }).filter((entry) => entry.isDirectory());
if (nested.length > 0) throw new Error(`dist/ must be flat; found ${nested.map((entry) => entry.name).join(", ")}`);
console.log(`herald: built dist/ in ${Math.round(performance.now() - started)} ms`);
