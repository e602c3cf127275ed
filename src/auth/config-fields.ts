import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../errors.js";
import { isScopePattern, MAX_PATTERNS } from "./keys.js";

/** Readers of config-file fields: each names the field it refuses, and why. */

export type Json = Record<string, unknown>;

export function objectAt(value: unknown, where: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where} must be a JSON object`);
  }
  return value as Json;
}

export function onlyFields(object: Json, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key))
      throw new ConfigError(`${where}: unknown field "${key}" (allowed: ${allowed.join(", ")})`);
  }
}

export function numberAt(value: unknown, where: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${where} must be a number from ${min} to ${max}`);
  }
  return value;
}

export function patternsAt(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_PATTERNS || !value.every(isScopePattern)) {
    throw new ConfigError(`${where} must be a list of at most ${MAX_PATTERNS} mailbox patterns (names, * wildcard)`);
  }
  return value;
}

/** A secret given inline as `field` or through the env var named by `fieldEnv`. */
export function secretAt(object: Json, field: string, where: string, env: NodeJS.ProcessEnv): string | undefined {
  const inline = object[field];
  const envName = object[`${field}Env`];
  if (inline !== undefined && envName !== undefined)
    throw new ConfigError(`${where}: give ${field} or ${field}Env, not both`);
  if (envName !== undefined) {
    if (typeof envName !== "string") throw new ConfigError(`${where}.${field}Env must name an environment variable`);
    const value = env[envName];
    if (value === undefined || value === "") throw new ConfigError(`${where}.${field}Env: $${envName} is not set`);
    return value;
  }
  if (inline !== undefined && (typeof inline !== "string" || inline === "")) {
    throw new ConfigError(`${where}.${field} must be a non-empty string`);
  }
  return inline as string | undefined;
}

export function readFileAt(path: unknown, where: string, baseDir: string): string {
  if (typeof path !== "string" || path === "") throw new ConfigError(`${where} must be a file path`);
  const full = isAbsolute(path) ? path : resolve(baseDir, path);
  try {
    return readFileSync(full, "utf8");
  } catch (error) {
    throw new ConfigError(`${where}: cannot read ${full}: ${(error as Error).message}`);
  }
}
