import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { BuildOptions } from "esbuild";
import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import { BUILT, PACKAGE_ROOT } from "../../package-root.js";
import type { AppDeps } from "../deps.js";

/** Where the build writes the client bundle (scripts/build.ts builds it with CLIENT_BUILD_OPTIONS). */
export const CLIENT_BUNDLE_FILE = fileURLToPath(new URL("dist/client.js", PACKAGE_ROOT));

/** How client/ is bundled for browsers, at build time and when the sources run. */
export const CLIENT_BUILD_OPTIONS: BuildOptions = {
  entryPoints: [fileURLToPath(new URL("client/src/index.ts", PACKAGE_ROOT))],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  legalComments: "none",
  logLevel: "silent",
};

/** Where the build writes the service worker bundle (SERVICE_WORKER_BUILD_OPTIONS), served as /herald-sw.js. */
export const SERVICE_WORKER_BUNDLE_FILE = fileURLToPath(new URL("dist/herald-sw.js", PACKAGE_ROOT));

/** How client/sw/herald-sw.ts is bundled: a classic script (service workers need not support modules). */
export const SERVICE_WORKER_BUILD_OPTIONS: BuildOptions = {
  ...CLIENT_BUILD_OPTIONS,
  entryPoints: [fileURLToPath(new URL("client/sw/herald-sw.ts", PACKAGE_ROOT))],
  format: "iife",
};

let bundle: Promise<string> | undefined;
let serviceWorker: Promise<string> | undefined;

/** A bundle's text: the file the build wrote into dist/, or (run from the sources) esbuild's output. */
async function built(file: string, options: BuildOptions): Promise<string> {
  if (BUILT) return readFile(file, "utf8");
  const esbuild = await import("esbuild");
  const result = await esbuild.build({ ...options, write: false });
  return result.outputFiles?.[0]?.text ?? "";
}

/**
 * The compiled server serves the bundle the build wrote into dist/ (no esbuild
 * at run time). Run from the sources (`npm run dev`, the tests), it bundles
 * client/ with esbuild, a dev dependency, the first time it is asked for, so
 * it can never be stale.
 */
export function clientBundle(): Promise<string> {
  bundle ??= built(CLIENT_BUNDLE_FILE, CLIENT_BUILD_OPTIONS);
  // A failed build is retried on the next request rather than cached.
  bundle.catch(() => {
    bundle = undefined;
  });
  return bundle;
}

/** GET /client.js */
export async function serveClientBundle(c: Context, deps: AppDeps): Promise<Response> {
  let text: string;
  try {
    text = await clientBundle();
  } catch (error) {
    deps.logger.error({ err: error }, "client bundle failed");
    throw new HeraldError("internal", "The client bundle could not be built");
  }
  return c.body(text, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache" });
}

/** The service worker's script, built like the client bundle (see clientBundle()). */
export function serviceWorkerBundle(): Promise<string> {
  serviceWorker ??= built(SERVICE_WORKER_BUNDLE_FILE, SERVICE_WORKER_BUILD_OPTIONS);
  serviceWorker.catch(() => {
    serviceWorker = undefined;
  });
  return serviceWorker;
}

/** GET /herald-sw.js: may control the whole origin (`Service-Worker-Allowed: /`), and is never cached stale. */
export async function serveServiceWorker(c: Context, deps: AppDeps): Promise<Response> {
  let text: string;
  try {
    text = await serviceWorkerBundle();
  } catch (error) {
    deps.logger.error({ err: error }, "service worker bundle failed");
    throw new HeraldError("internal", "The service worker could not be built");
  }
  return c.body(text, 200, {
    "Content-Type": "text/javascript; charset=utf-8",
    "Cache-Control": "no-cache",
    "Service-Worker-Allowed": "/",
  });
}
