import cluster from "node:cluster";
import { authEnabled, securityFromEnv } from "./auth/auth-config.js";
import { checkBinding, isLoopbackHost, resolveLimits, startupNotices } from "./auth/binding.js";
import { NO_LIMITS } from "./auth/limits-config.js";
import { parseServeConfig, SERVE_USAGE } from "./config.js";
import { EMPTY_FILE_CONFIG, loadConfigFile } from "./config-file.js";
import type { ServeSetup } from "./serve-process.js";
import { startupBanner } from "./startup-banner.js";

/** The lines an operator reads once Herald listens: where, the store, auth, and any risk. */
function announce(url: string, setup: ServeSetup): void {
  const { config, file, auth, limitSettings } = setup;
  for (const line of startupBanner(url, config, auth, file.hooks)) console.log(line);
  const protectedMode = authEnabled(auth) || !isLoopbackHost(config.host);
  const limits = resolveLimits(limitSettings ?? NO_LIMITS, protectedMode, config.workers);
  for (const notice of startupNotices(config.host, auth, config.insecure, limits, config.workers)) {
    (notice.startsWith("WARNING") ? console.error : console.log)(notice);
  }
}

/**
 * `herald serve`: one process, or with `--workers N` a primary that forks N
 * workers sharing the port (each re-reads the same flags and file) and only
 * supervises them; the server's modules load where they serve.
 */
export async function serveCommand(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(SERVE_USAGE);
    return;
  }
  const config = parseServeConfig(argv, process.env);
  const file = config.configFile === undefined ? EMPTY_FILE_CONFIG : loadConfigFile(config.configFile, process.env);
  const { auth, limits: limitSettings } = securityFromEnv(file, process.env);
  // Refuse an unsafe binding before a store is opened or Redis waited for.
  checkBinding(config.host, authEnabled(auth), config.insecure);
  const setup: ServeSetup = { config, file, auth, limitSettings };
  if (config.workers > 1 && cluster.isPrimary) {
    const { runPrimary } = await import("./workers/primary.js");
    await runPrimary(config, (url) => announce(url, setup));
    return;
  }
  const { serveProcess } = await import("./serve-process.js");
  if (config.workers > 1) {
    const { workerRole } = await import("./workers/worker.js");
    await serveProcess(setup, workerRole());
    return;
  }
  announce(await serveProcess(setup), setup);
}
