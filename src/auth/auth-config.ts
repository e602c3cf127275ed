import type { JSONWebKeySet } from "jose";
import { ConfigError } from "../errors.js";
import { numberAt, objectAt, onlyFields, patternsAt, readFileAt, secretAt } from "./config-fields.js";
import { type ApiKeyEntry, isKeyHash } from "./keys.js";
import { type LimitSettings, parseLimitsSection } from "./limits-config.js";
import { HS256_MIN_SECRET_LENGTH, publicKeyAlgorithm, type TokenKeySettings, type TokenSettings } from "./tokens.js";

/** The `auth` section of the config file, checked and with its files and env vars read. */
export interface AuthSettings {
  readonly keys: readonly ApiKeyEntry[];
  readonly tokens: TokenSettings | undefined;
  /** Origins allowed by CORS; undefined means the mode's default. */
  readonly corsOrigins: readonly string[] | undefined;
  /** "open": reading needs no credential. Required, and the only choice, when keys come without tokens. */
  readonly reads: "tokens" | "open";
  /** "open": /metrics needs no key. Otherwise a key with the "metrics" right. */
  readonly metrics: "keys" | "open";
}

/**
 * Auth is on when keys or tokens are configured; an `auth` section holding
 * only `cors` sets which pages may call an unauthenticated Herald.
 */
export function authEnabled(auth: AuthSettings | undefined): boolean {
  return auth !== undefined && (auth.keys.length > 0 || auth.tokens !== undefined);
}

export const DEFAULT_TOKEN_TTL_SECONDS = 3600;
export const DEFAULT_MAX_TOKEN_TTL_SECONDS = 24 * 3600;
/** Keys one config may hold; each is compiled into matchers at start. */
export const MAX_KEYS = 10_000;
/** Longest `issuer` or `audience` a config may name. */
const MAX_CLAIM_LENGTH = 256;

function parseKey(value: unknown, index: number, env: NodeJS.ProcessEnv): ApiKeyEntry {
  const where = `auth.keys[${index}]`;
  const object = objectAt(value, where);
  onlyFields(object, ["name", "hash", "hashEnv", "publish", "tokens", "metrics", "admin"], where);
  if (typeof object.name !== "string" || object.name === "" || object.name.length > 64) {
    throw new ConfigError(`${where}.name must be a string of 1-64 characters`);
  }
  const hash = secretAt(object, "hash", where, env);
  if (hash === undefined || !isKeyHash(hash)) {
    throw new ConfigError(`${where}.hash must be "sha256:<64 hex digits>" as printed by herald key create`);
  }
  for (const right of ["metrics", "admin"] as const) {
    if (object[right] !== undefined && typeof object[right] !== "boolean")
      throw new ConfigError(`${where}.${right} must be true or false`);
  }
  const publish = patternsAt(object.publish, `${where}.publish`);
  return {
    name: object.name,
    hash,
    publish,
    tokens: tokenGrantAt(object.tokens, publish, `${where}.tokens`),
    metrics: object.metrics === true,
    admin: object.admin === true,
  };
}

/**
 * What a key's minted tokens may read: a list of patterns, or `true` for the
 * key's own publish patterns. A key never hands out more than it was given.
 */
function tokenGrantAt(value: unknown, publish: readonly string[], where: string): string[] | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) {
    if (publish.length === 0) {
      throw new ConfigError(
        `${where} is true, which grants reading of the key's publish patterns, and it has none; ` +
          'list what its tokens may read instead, e.g. "tokens": ["user:*"]',
      );
    }
    return [...publish];
  }
  const patterns = patternsAt(value, where);
  if (patterns.length === 0) throw new ConfigError(`${where} must be true, false or a non-empty list of patterns`);
  return patterns;
}

function parseTokens(value: unknown, baseDir: string, env: NodeJS.ProcessEnv): TokenSettings {
  const where = "auth.tokens";
  const object = objectAt(value, where);
  onlyFields(
    object,
    [
      "hs256Secret",
      "hs256SecretEnv",
      "publicKeyFile",
      "jwksFile",
      "privateKeyFile",
      "privateKeyEnv",
      "maxTtl",
      "defaultTtl",
      "issuer",
      "audience",
    ],
    where,
  );
  for (const claim of ["issuer", "audience"] as const) {
    const value = object[claim];
    if (value !== undefined && (typeof value !== "string" || value === "" || value.length > MAX_CLAIM_LENGTH))
      throw new ConfigError(`${where}.${claim} must be a string of 1-${MAX_CLAIM_LENGTH} characters`);
  }
  const secret = secretAt(object, "hs256Secret", where, env);
  const sources = [secret !== undefined, object.publicKeyFile !== undefined, object.jwksFile !== undefined];
  if (sources.filter(Boolean).length !== 1) {
    throw new ConfigError(`${where} must name exactly one of hs256Secret (or hs256SecretEnv), publicKeyFile, jwksFile`);
  }
  const privateKeyPem =
    object.privateKeyFile !== undefined
      ? readFileAt(object.privateKeyFile, `${where}.privateKeyFile`, baseDir)
      : secretAt(object, "privateKey", where, env);
  let key: TokenKeySettings;
  if (secret !== undefined) {
    if (secret.length < HS256_MIN_SECRET_LENGTH) {
      throw new ConfigError(`${where}.hs256Secret must be at least ${HS256_MIN_SECRET_LENGTH} characters`);
    }
    key = { kind: "hs256", secret };
  } else if (object.publicKeyFile !== undefined) {
    const publicKeyPem = readFileAt(object.publicKeyFile, `${where}.publicKeyFile`, baseDir);
    try {
      publicKeyAlgorithm(publicKeyPem);
    } catch (error) {
      throw new ConfigError(`${where}.publicKeyFile: ${(error as Error).message}`);
    }
    key = { kind: "public-key", publicKeyPem, ...(privateKeyPem === undefined ? {} : { privateKeyPem }) };
  } else {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(readFileAt(object.jwksFile, `${where}.jwksFile`, baseDir)) as JSONWebKeySet;
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(`${where}.jwksFile is not valid JSON`);
    }
    if (!Array.isArray(jwks?.keys)) throw new ConfigError(`${where}.jwksFile must hold {"keys": [...]}`);
    key = { kind: "jwks", jwks, ...(privateKeyPem === undefined ? {} : { privateKeyPem }) };
  }
  const maxTtlSeconds = numberAt(object.maxTtl, `${where}.maxTtl`, 1, 30 * 86400) ?? DEFAULT_MAX_TOKEN_TTL_SECONDS;
  const defaultTtlSeconds = Math.min(
    numberAt(object.defaultTtl, `${where}.defaultTtl`, 1, 30 * 86400) ?? DEFAULT_TOKEN_TTL_SECONDS,
    maxTtlSeconds,
  );
  return {
    key,
    maxTtlSeconds,
    defaultTtlSeconds,
    issuer: object.issuer as string | undefined,
    audience: object.audience as string | undefined,
  };
}

/**
 * Parses the config file's `auth` section. Relative file paths resolve
 * against the working directory; secrets may come from env vars (`...Env`).
 */
export function parseAuthSection(value: unknown, env: NodeJS.ProcessEnv): AuthSettings {
  const baseDir = process.cwd();
  const auth = objectAt(value, "auth");
  onlyFields(auth, ["keys", "tokens", "cors", "reads", "metrics"], "auth");
  const rawKeys = auth.keys ?? [];
  if (!Array.isArray(rawKeys) || rawKeys.length > MAX_KEYS)
    throw new ConfigError(`auth.keys must be a list of at most ${MAX_KEYS} keys`);
  const keys = rawKeys.map((entry, index) => parseKey(entry, index, env));
  const tokens = auth.tokens === undefined ? undefined : parseTokens(auth.tokens, baseDir, env);
  if (keys.length === 0 && tokens === undefined && auth.cors === undefined)
    throw new ConfigError("auth must configure keys, tokens or both (or only cors, to list origins without auth)");
  const on = keys.length > 0 || tokens !== undefined;
  const reads = choiceAt(auth.reads, ["tokens", "open"], "auth.reads", on);
  const metrics = choiceAt(auth.metrics, ["keys", "open"], "auth.metrics", on);
  const minting = keys.filter((key) => key.tokens !== undefined);
  if (minting.length > 0 && tokens !== undefined && tokens.key.kind !== "hs256" && !tokens.key.privateKeyPem) {
    throw new ConfigError(
      `auth.keys "${minting[0]?.name}" may mint tokens, but auth.tokens has no privateKeyFile to sign with`,
    );
  }
  if (minting.length > 0 && tokens === undefined) {
    throw new ConfigError(`auth.keys "${minting[0]?.name}" may mint tokens, but auth.tokens is not configured`);
  }
  if (keys.length > 0 && tokens === undefined && reads !== "open") {
    throw new ConfigError(
      'auth has keys but no tokens, so readers have no credential to present: add auth.tokens, or set "reads": "open" ' +
        "to let anyone who can reach Herald read every mailbox",
    );
  }
  let corsOrigins: string[] | undefined;
  if (auth.cors !== undefined) {
    const cors = objectAt(auth.cors, "auth.cors");
    onlyFields(cors, ["origins"], "auth.cors");
    if (
      !Array.isArray(cors.origins) ||
      !cors.origins.every((o) => typeof o === "string" && (o === "*" || /^https?:\/\/[^/]+$/.test(o)))
    ) {
      throw new ConfigError('auth.cors.origins must be a list of origins like "https://app.example.com", or "*"');
    }
    corsOrigins = cors.origins;
  }
  return { keys, tokens, corsOrigins, reads: reads ?? "tokens", metrics: metrics ?? "keys" };
}

function choiceAt<T extends string>(
  value: unknown,
  choices: readonly T[],
  where: string,
  authOn: boolean,
): T | undefined {
  if (value === undefined) return undefined;
  if (!authOn) throw new ConfigError(`${where} needs auth.keys or auth.tokens`);
  if (typeof value !== "string" || !choices.includes(value as T))
    throw new ConfigError(`${where} must be ${choices.map((choice) => `"${choice}"`).join(" or ")}`);
  return value as T;
}

/**
 * The `auth` and `limits` sections given as JSON in HERALD_AUTH and HERALD_LIMITS,
 * for deployments configured by environment alone. Each may be given in the
 * config file or the environment, not both.
 */
export function securityFromEnv(
  file: { readonly auth: AuthSettings | undefined; readonly limits: LimitSettings | undefined },
  env: NodeJS.ProcessEnv,
): { auth: AuthSettings | undefined; limits: LimitSettings | undefined } {
  const section = <T>(name: string, fromFile: T | undefined, parse: (value: unknown) => T): T | undefined => {
    const text = env[name];
    if (text === undefined || text === "") return fromFile;
    if (fromFile !== undefined)
      throw new ConfigError(`${name} is set and the config file has the same section; use one`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${name} is not valid JSON: ${(error as Error).message}`);
    }
    return parse(value);
  };
  return {
    auth: section("HERALD_AUTH", file.auth, (value) => parseAuthSection(value, env)),
    limits: section("HERALD_LIMITS", file.limits, parseLimitsSection),
  };
}
