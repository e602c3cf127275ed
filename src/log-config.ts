import { ConfigError } from "./errors.js";

/** pino's levels; "silent" turns logging off. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

/** The config file's `log` section. */
export interface LogSettings {
  readonly level: LogLevel | undefined;
}

export const DEFAULT_LOG_LEVEL: LogLevel = "info";

function levelAt(value: unknown, where: string): LogLevel {
  if (typeof value !== "string" || !(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new ConfigError(`${where} must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return value as LogLevel;
}

/** Parses `{"level": "warn"}`; unknown fields are refused so a typo is reported. */
export function parseLogSection(value: unknown): LogSettings {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError("log must be a JSON object");
  }
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (key !== "level") throw new ConfigError(`log: unknown field "${key}" (allowed: level)`);
  }
  return { level: object.level === undefined ? undefined : levelAt(object.level, "log.level") };
}

/** HERALD_LOG_LEVEL wins over the config file so one run can be made louder without editing it. */
export function resolveLogLevel(settings: LogSettings | undefined, env: NodeJS.ProcessEnv): LogLevel {
  const fromEnv = env.HERALD_LOG_LEVEL;
  if (fromEnv !== undefined && fromEnv !== "") return levelAt(fromEnv, "HERALD_LOG_LEVEL");
  return settings?.level ?? DEFAULT_LOG_LEVEL;
}
