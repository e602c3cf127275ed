import { fileURLToPath } from "node:url";
import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import type { AppDeps } from "../deps.js";

const CLIENT_ENTRY = fileURLToPath(new URL("../../../client/src/index.ts", import.meta.url));

let bundle: Promise<string> | undefined;

/**
 * Bundles client/ with esbuild (already installed as tsx's compiler) the first
 * time it is asked for, so `npm start` from a fresh clone serves it with no
 * build step and it can never be stale.
 */
export function clientBundle(): Promise<string> {
  bundle ??= (async () => {
    const esbuild = await import("esbuild");
    const result = await esbuild.build({
      entryPoints: [CLIENT_ENTRY],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      write: false,
      legalComments: "none",
      logLevel: "silent",
    });
    return result.outputFiles[0]?.text ?? "";
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
