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

let bundle: Promise<string> | undefined;

/**
 * The compiled server serves the bundle the build wrote into dist/ (no esbuild
 * at run time). Run from the sources (`npm run dev`, the tests), it bundles
 * client/ with esbuild, a dev dependency, the first time it is asked for, so
 * it can never be stale.
 */
export function clientBundle(): Promise<string> {
  bundle ??= (async () => {
    if (BUILT) return readFile(CLIENT_BUNDLE_FILE, "utf8");
    const esbuild = await import("esbuild");
    const result = await esbuild.build({ ...CLIENT_BUILD_OPTIONS, write: false });
    return result.outputFiles?.[0]?.text ?? "";
  })();
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
