import { numberAt, objectAt, onlyFields, secretAt } from "../auth/config-fields.js";
import { assertMailboxName } from "../core/mailbox-name.js";
import { ConfigError } from "../errors.js";

export type MercureRole = "publish" | "subscribe";

/** Signature algorithms a Mercure key may name; `none` and anything else are refused. */
export const MERCURE_ALGORITHMS = [
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
export type MercureAlgorithm = (typeof MERCURE_ALGORITHMS)[number];

/** One trusted token signer. */
export interface MercureKey {
  readonly alg: MercureAlgorithm;
  /** The shared secret (HS*) or the PEM public key (the others). */
  readonly material: string;
  /**
   * The `iss` its RFC 9068 (`at+jwt`) tokens carry; such a token is checked
   * only with the keys of its issuer. Pre-standard tokens need none.
   */
  readonly issuer: string | undefined;
  /** What its tokens may grant. */
  readonly roles: readonly MercureRole[];
}

/** The config file's `mercure` section. Without it Herald serves no Mercure hub. */
export interface MercureSettings {
  readonly keys: readonly MercureKey[];
  /** The resource identifier RFC 9068 tokens must name in `aud`; required when a key has an issuer (without one, no such token passes). */
  readonly audience: string | undefined;
  /** Subscribers without a token get public updates; false answers them 401. */
  readonly anonymousSubscribers: boolean;
  /** Publishing without a token, for closed networks only. */
  readonly anonymousPublishers: boolean;
  /** Active subscriptions: events on subscribe and leave, and the subscriptions API. */
  readonly subscriptions: boolean;
  /** Adds the hub's `Link: rel="mercure"` header to Herald's own responses. */
  readonly discovery: boolean;
  /** The mailbox holding the hub's updates (one log, filtered per subscriber); no other route reaches it. */
  readonly mailbox: string;
  /**
   * Where the hub's own subscription events go (`<mailbox>.subscriptions`),
   * apart from publishers' updates, so connections coming and going never
   * push updates out of the history subscribers resume from.
   */
  readonly subscriptionsMailbox: string;
  /** Topic matchers (query parameters) one subscription may carry; at most 100 (one publish of subscription events). */
  readonly maxMatchers: number;
  /** Characters of one matcher, topic, id or type. */
  readonly maxValueLength: number;
  /** `topic` fields one update may carry. */
  readonly maxTopics: number;
  /** Messages scanned at most to find a `Last-Event-ID`; beyond it the id counts as gone. */
  readonly maxResumeScan: number;
}

export const DEFAULT_MERCURE_SETTINGS: Omit<MercureSettings, "keys" | "audience" | "subscriptionsMailbox"> = {
  anonymousSubscribers: true,
  anonymousPublishers: false,
  subscriptions: false,
  discovery: true,
  mailbox: "mercure",
  maxMatchers: 32,
  maxValueLength: 2048,
  maxTopics: 32,
  maxResumeScan: 100_000,
};

const MAX_KEYS = 16;

function booleanAt(value: unknown, where: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new ConfigError(`${where} must be true or false`);
  return value;
}

function parseKey(value: unknown, where: string, env: NodeJS.ProcessEnv): MercureKey {
  const object = objectAt(value, where);
  onlyFields(object, ["alg", "secret", "secretEnv", "publicKey", "publicKeyEnv", "issuer", "roles"], where);
  const alg = object.alg;
  if (typeof alg !== "string" || !(MERCURE_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new ConfigError(`${where}.alg must be one of ${MERCURE_ALGORITHMS.join(", ")}`);
  }
  const symmetric = alg.startsWith("HS");
  const material = symmetric ? secretAt(object, "secret", where, env) : secretAt(object, "publicKey", where, env);
  if (material === undefined || material === "") {
    throw new ConfigError(`${where} needs ${symmetric ? "secret or secretEnv" : "publicKey or publicKeyEnv (PEM)"}`);
  }
  if (symmetric && (object.publicKey !== undefined || object.publicKeyEnv !== undefined)) {
    throw new ConfigError(`${where}: ${alg} uses a secret, not a publicKey`);
  }
  if (!symmetric && (object.secret !== undefined || object.secretEnv !== undefined)) {
    throw new ConfigError(`${where}: ${alg} uses a publicKey (PEM), not a secret`);
  }
  if (symmetric && Buffer.byteLength(material) < 32) {
    throw new ConfigError(`${where}.secret must be at least 32 bytes`);
  }
  const issuer = object.issuer;
  if (issuer !== undefined && (typeof issuer !== "string" || issuer === "")) {
    throw new ConfigError(`${where}.issuer must be a non-empty string`);
  }
  let roles: MercureRole[] = ["publish", "subscribe"];
  if (object.roles !== undefined) {
    const list = object.roles;
    if (
      !Array.isArray(list) ||
      list.length === 0 ||
      !list.every((role) => role === "publish" || role === "subscribe")
    ) {
      throw new ConfigError(`${where}.roles must be a non-empty list of "publish" and "subscribe"`);
    }
    roles = [...new Set(list as MercureRole[])];
  }
  return { alg: alg as MercureAlgorithm, material, issuer: issuer as string | undefined, roles };
}

/**
 * Parses `{"keys": [{"alg": "HS256", "secretEnv": "…", "issuer": "https://app.example"}],
 * "audience": "https://hub.example/.well-known/mercure", "anonymousSubscribers": true, …}`.
 */
export function parseMercureSection(value: unknown, env: NodeJS.ProcessEnv): MercureSettings {
  const object = objectAt(value, "mercure");
  onlyFields(object, ["keys", "audience", ...Object.keys(DEFAULT_MERCURE_SETTINGS)], "mercure");
  const defaults = DEFAULT_MERCURE_SETTINGS;
  const list = object.keys ?? [];
  if (!Array.isArray(list) || list.length > MAX_KEYS) {
    throw new ConfigError(`mercure.keys must be a list of at most ${MAX_KEYS} keys`);
  }
  const keys = list.map((key, index) => parseKey(key, `mercure.keys[${index}]`, env));
  const anonymousPublishers = booleanAt(object.anonymousPublishers, "mercure.anonymousPublishers", false);
  if (keys.length === 0 && !anonymousPublishers) {
    throw new ConfigError("mercure.keys must list at least one key (or set anonymousPublishers on a closed network)");
  }
  const audience = object.audience;
  if (audience !== undefined && (typeof audience !== "string" || !URL.canParse(audience))) {
    throw new ConfigError(
      "mercure.audience must be an absolute URL (the hub's, e.g. https://hub.example/.well-known/mercure)",
    );
  }
  // The request's Host would otherwise name the audience: a token minted for another hub sharing the key would pass.
  if (audience === undefined && keys.some((key) => key.issuer !== undefined)) {
    throw new ConfigError(
      "mercure.audience is required with an issuer key: the hub's URL that RFC 9068 tokens name in aud " +
        "(e.g. https://hub.example/.well-known/mercure)",
    );
  }
  let mailbox = defaults.mailbox;
  if (object.mailbox !== undefined) {
    try {
      mailbox = assertMailboxName(object.mailbox);
    } catch {
      mailbox = "";
    }
    if (mailbox === "" || mailbox.length > 100) {
      throw new ConfigError("mercure.mailbox must be a mailbox name (1-100 characters of A-Z a-z 0-9 _ - . : @)");
    }
  }
  const integer = (field: keyof typeof defaults, min: number, max: number): number =>
    Math.floor(numberAt(object[field], `mercure.${field}`, min, max) ?? (defaults[field] as number));
  return {
    keys,
    audience: audience as string | undefined,
    anonymousSubscribers: booleanAt(object.anonymousSubscribers, "mercure.anonymousSubscribers", true),
    anonymousPublishers,
    subscriptions: booleanAt(object.subscriptions, "mercure.subscriptions", defaults.subscriptions),
    discovery: booleanAt(object.discovery, "mercure.discovery", defaults.discovery),
    mailbox,
    subscriptionsMailbox: `${mailbox}.subscriptions`,
    maxMatchers: integer("maxMatchers", 1, 100),
    maxValueLength: integer("maxValueLength", 16, 65_536),
    maxTopics: integer("maxTopics", 1, 1000),
    maxResumeScan: integer("maxResumeScan", 0, 10_000_000),
  };
}
