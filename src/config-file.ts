import { readFileSync } from "node:fs";
import { type AuthSettings, parseAuthSection } from "./auth/auth-config.js";
import { type LimitSettings, parseLimitsSection } from "./auth/limits-config.js";
import { ConfigError } from "./errors.js";
import { type HookDefinition, parseHooksSection } from "./hooks/hook-config.js";
import { type LogSettings, parseLogSection } from "./log-config.js";
import { type MercureSettings, parseMercureSection } from "./mercure/mercure-config.js";
import { type NtfySettings, parseNtfySection } from "./ntfy/ntfy-config.js";
import { type PresenceSettings, parsePresenceSection } from "./presence-config.js";
import { type PushSettings, parsePushSection } from "./push/push-config.js";
import { parseScheduleSection, type ScheduleSettings } from "./schedule-config.js";

/** What the JSON config file (`--config`, HERALD_CONFIG) holds, once checked. */
export interface FileConfig {
  /** Webhook endpoints served under /v1/hooks/{id}; empty when the file has none. */
  readonly hooks: readonly HookDefinition[];
  /** Publisher keys, token verification, CORS (src/auth/auth-config.ts). Undefined when absent. */
  readonly auth: AuthSettings | undefined;
  /** Abuse limits (src/auth/auth-config.ts). Undefined when absent. */
  readonly limits: LimitSettings | undefined;
  /** Log level (src/log-config.ts); HERALD_LOG_LEVEL overrides it. Undefined when absent. */
  readonly log: LogSettings | undefined;
  /** Presence bounds (src/presence-config.ts). Undefined when absent. */
  readonly presence: PresenceSettings | undefined;
  /** Scheduled delivery bounds (src/schedule-config.ts). Undefined when absent. */
  readonly schedule: ScheduleSettings | undefined;
  /** Web Push keys and bounds (src/push/push-config.ts). Undefined when absent: no Web Push. */
  readonly push: PushSettings | undefined;
  /** The Mercure hub's token keys and bounds (src/mercure/mercure-config.ts). Undefined when absent: no hub. */
  readonly mercure: MercureSettings | undefined;
  /** The ntfy-compatible API's prefix (src/ntfy/ntfy-config.ts). Undefined when absent: on at /ntfy. */
  readonly ntfy: NtfySettings | undefined;
}

/** A config file is a few hooks and keys; anything bigger is a mistake. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

export const EMPTY_FILE_CONFIG: FileConfig = {
  hooks: [],
  auth: undefined,
  limits: undefined,
  log: undefined,
  presence: undefined,
  schedule: undefined,
  push: undefined,
  mercure: undefined,
  ntfy: undefined,
};

type SectionParser = (value: unknown, env: NodeJS.ProcessEnv) => unknown;

/**
 * Every top-level section and the function that checks it; any key not listed is refused
 * so that a typo ("hook") is reported rather than ignored.
 */
const SECTIONS: Readonly<Record<keyof FileConfig, SectionParser>> = {
  hooks: parseHooksSection,
  auth: parseAuthSection,
  limits: parseLimitsSection,
  log: parseLogSection,
  presence: parsePresenceSection,
  schedule: parseScheduleSection,
  push: parsePushSection,
  mercure: parseMercureSection,
  ntfy: parseNtfySection,
};

/** Checks a parsed config document; errors name the field, e.g. `hooks[1].verify.secret`. */
export function parseFileConfig(document: unknown, env: NodeJS.ProcessEnv): FileConfig {
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new ConfigError("the top level must be a JSON object");
  }
  const input = document as Record<string, unknown>;
  const names = Object.keys(SECTIONS);
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(SECTIONS, key)) {
      throw new ConfigError(`"${key}" is not a known section; allowed: ${names.join(", ")}`);
    }
  }
  const config: Record<string, unknown> = { ...EMPTY_FILE_CONFIG };
  for (const [name, parse] of Object.entries(SECTIONS)) {
    if (input[name] !== undefined) config[name] = parse(input[name], env);
  }
  return config as unknown as FileConfig;
}

/** Reads and checks the config file; every failure is a ConfigError that starts with the file's path. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv): FileConfig {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_CONFIG_FILE_BYTES) throw new ConfigError(`is larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    text = bytes.toString("utf8");
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`config file ${path} ${error.message}`);
    throw new ConfigError(`config file ${path} cannot be read: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  try {
    return parseFileConfig(document, env);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`config file ${path}: ${error.message}`);
    throw error;
  }
}
