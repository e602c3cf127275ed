import { parseArgs } from "node:util";
import { HeraldClientError } from "../../client/src/index.js";
import { argumentError, ConfigError } from "../errors.js";

/** Where the client commands find Herald when neither --url nor HERALD_URL says. */
export const DEFAULT_URL = "http://127.0.0.1:8080";

export const URL_HELP = `  --url URL           Herald's base URL (HERALD_URL, default ${DEFAULT_URL})`;

type OptionSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;

export interface ParsedCommand {
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];
  readonly url: string;
  readonly help: boolean;
}

/** Parses a client command's flags plus the shared --url and --help; throws ConfigError on bad usage. */
export function parseCommand(argv: readonly string[], options: OptionSpec, env: NodeJS.ProcessEnv): ParsedCommand {
  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...options, url: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw argumentError(error);
  }
  const help = parsed.values.help === true;
  const raw = (parsed.values.url as string | undefined) || env.HERALD_URL || DEFAULT_URL;
  let url = DEFAULT_URL;
  try {
    const parsedUrl = new URL(raw);
    if (parsedUrl.protocol !== "http:" && parsedUrl.protocol !== "https:") throw new Error("not http");
    url = raw.replace(/\/+$/, "");
  } catch {
    if (!help) throw new ConfigError(`--url must be an http(s) URL, got "${raw}"`);
  }
  return { values: parsed.values, positionals: parsed.positionals, url, help };
}

/** A string flag, else the environment variable, else undefined. */
export function flagOrEnv(
  values: ParsedCommand["values"],
  flag: string,
  env: NodeJS.ProcessEnv,
  name: string,
): string | undefined {
  const value = (values[flag] as string | undefined) ?? env[name];
  return value === "" ? undefined : value;
}

/** Reports a failure at run time (not of usage) and makes the process exit 1. */
export function fail(message: string): void {
  console.error(`herald: ${message}`);
  process.exitCode = 1;
}

/** One line a person can act on, from whatever went wrong talking to the server. */
export function describeFailure(error: unknown, url: string): string {
  if (error instanceof HeraldClientError) {
    if (error.status === 0) return `cannot reach Herald at ${url} (${error.message})`;
    return `${error.message} (HTTP ${error.status}, ${error.code})`;
  }
  return error instanceof Error ? error.message : String(error);
}
