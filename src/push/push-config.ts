import { numberAt, objectAt, onlyFields, secretAt } from "../auth/config-fields.js";
import { ConfigError } from "../errors.js";
import { checkVapidKeys, type VapidKeys } from "./vapid.js";

/** The config file's `push` section (Web Push); absent means no push: its routes answer 404 `push_unavailable`. */
export interface PushSettings {
  readonly vapid: VapidKeys;
  /**
   * Hosts Herald may POST pushes to: an endpoint elsewhere is refused when a
   * browser subscribes (a push endpoint is a URL anyone can hand in, so this is
   * what keeps Herald from being sent at internal addresses). An entry is a
   * host, for port 443 only, or `host:port`; `*.example.com` matches
   * subdomains. Replaces the default list, which holds the push services of
   * Chrome, Firefox, Edge and Safari.
   */
  readonly allowedHosts: readonly string[];
  /** Subscriptions per owner (a token's sub, a named reader, or "anonymous"); 429 beyond. */
  readonly maxSubscriptionsPerUser: number;
  /** Subscriptions on the server (all nodes sharing the store); 429 beyond. */
  readonly maxSubscriptions: number;
  /**
   * A subscription lapses this long after it was last posted (a page renews it on each visit with
   * enablePush): whoever lost access to its mailboxes, or left, stops receiving within it.
   */
  readonly subscriptionTtlSeconds: number;
  /** Pushes in flight at once per node. */
  readonly concurrency: number;
  /** Pushes waiting to be sent per node (retries included); a burst beyond it is dropped and counted. */
  readonly maxQueue: number;
  /** A push service that stays silent this long is given up on for that attempt. */
  readonly timeoutSeconds: number;
  /** Attempts per push (429, 5xx, timeouts and network errors are retried with backoff). */
  readonly maxAttempts: number;
  /** A push service asking (Retry-After) to wait longer than this is given up on for that push. */
  readonly maxRetryAfterSeconds: number;
}

/** Chrome (and Opera, Brave, Samsung), Firefox, Edge and Safari. */
export const DEFAULT_PUSH_HOSTS: readonly string[] = [
  "fcm.googleapis.com",
  "updates.push.services.mozilla.com",
  "*.notify.windows.com",
  "web.push.apple.com",
];

export const DEFAULT_PUSH_LIMITS = {
  allowedHosts: DEFAULT_PUSH_HOSTS,
  maxSubscriptionsPerUser: 20,
  maxSubscriptions: 100_000,
  subscriptionTtlSeconds: 30 * 86_400,
  concurrency: 50,
  maxQueue: 1_000_000,
  timeoutSeconds: 10,
  maxAttempts: 4,
  maxRetryAfterSeconds: 300,
} as const satisfies Omit<PushSettings, "vapid">;

const LABEL = "[a-z0-9]([a-z0-9-]*[a-z0-9])?";
/** A host name or IPv4 address, or `*.` and a domain of at least two labels, the last not numeric; then `:port`. */
const HOST_PATTERN = new RegExp(
  `^(${LABEL}(\\.${LABEL})*|\\*(\\.${LABEL})*\\.[a-z]([a-z0-9-]*[a-z0-9])?)(:[0-9]{1,5})?$`,
);

function hostsAt(value: unknown, where: string): readonly string[] {
  if (value === undefined) return DEFAULT_PUSH_HOSTS;
  const valid = (host: unknown) =>
    typeof host === "string" &&
    HOST_PATTERN.test(host) &&
    !/^\*\.[^.]+$/.test(host.split(":")[0] as string) &&
    Number(host.split(":")[1] ?? 443) >= 1 &&
    Number(host.split(":")[1] ?? 443) <= 65535;
  if (!Array.isArray(value) || value.length === 0 || value.length > 100 || !value.every(valid)) {
    throw new ConfigError(
      `${where} must be a list of 1-100 lowercase host names or IPv4 addresses (port 443), or host:port; ` +
        '"*.example.com" for subdomains',
    );
  }
  return value as string[];
}

/**
 * Parses `{"vapid": {"publicKey", "privateKey" | "privateKeyEnv", "subject"}, "allowedHosts": […],
 * "maxSubscriptionsPerUser", "maxSubscriptions", "subscriptionTtlSeconds", "concurrency", "maxQueue", "timeoutSeconds",
 * "maxAttempts", "maxRetryAfterSeconds"}`; `herald vapid create` prints a starting point.
 */
export function parsePushSection(value: unknown, env: NodeJS.ProcessEnv): PushSettings {
  const object = objectAt(value, "push");
  onlyFields(object, ["vapid", ...Object.keys(DEFAULT_PUSH_LIMITS)], "push");
  if (object.vapid === undefined) throw new ConfigError('push.vapid is required (run "herald vapid create")');
  const vapid = objectAt(object.vapid, "push.vapid");
  onlyFields(vapid, ["publicKey", "privateKey", "privateKeyEnv", "subject"], "push.vapid");
  const privateKey = secretAt(vapid, "privateKey", "push.vapid", env);
  if (privateKey === undefined) throw new ConfigError("push.vapid needs privateKey or privateKeyEnv");
  const keys = checkVapidKeys({ publicKey: vapid.publicKey, privateKey, subject: vapid.subject }, "push.vapid");
  const defaults = DEFAULT_PUSH_LIMITS;
  const whole = (name: keyof typeof DEFAULT_PUSH_LIMITS & keyof PushSettings, min: number, max: number) =>
    Math.floor(numberAt(object[name], `push.${name}`, min, max) ?? (defaults[name] as number));
  return {
    vapid: keys,
    allowedHosts: hostsAt(object.allowedHosts, "push.allowedHosts"),
    maxSubscriptionsPerUser: whole("maxSubscriptionsPerUser", 1, 10_000_000),
    maxSubscriptions: whole("maxSubscriptions", 1, 10_000_000),
    subscriptionTtlSeconds: whole("subscriptionTtlSeconds", 1, 366 * 86_400),
    concurrency: whole("concurrency", 1, 1000),
    maxQueue: whole("maxQueue", 1, 10_000_000),
    timeoutSeconds: numberAt(object.timeoutSeconds, "push.timeoutSeconds", 0.1, 300) ?? defaults.timeoutSeconds,
    maxAttempts: whole("maxAttempts", 1, 20),
    maxRetryAfterSeconds:
      numberAt(object.maxRetryAfterSeconds, "push.maxRetryAfterSeconds", 0, 86_400) ?? defaults.maxRetryAfterSeconds,
  };
}
