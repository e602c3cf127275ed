import { ConfigError } from "../errors.js";
import { numberAt, objectAt, onlyFields } from "./config-fields.js";
import type { RateSettings } from "./rate-limit.js";
import { createTrustedProxies } from "./visitor.js";

/** The `limits` section. Undefined fields take the defaults of the mode Herald runs in (see resolveLimits). */
export interface LimitSettings {
  readonly publish: RateSettings | undefined;
  readonly streamsPerVisitor: number | undefined;
  readonly longPollsPerVisitor: number | undefined;
  readonly maxConnections: number | undefined;
  readonly connectionsPerAddress: number | undefined;
  readonly hooksPerVisitor: number | undefined;
  readonly maxHooksInFlight: number | undefined;
  readonly trustedProxies: readonly string[];
}

export const NO_LIMITS: LimitSettings = {
  publish: undefined,
  streamsPerVisitor: undefined,
  longPollsPerVisitor: undefined,
  maxConnections: undefined,
  connectionsPerAddress: undefined,
  hooksPerVisitor: undefined,
  maxHooksInFlight: undefined,
  trustedProxies: [],
};

/** Parses the config file's `limits` section. */
export function parseLimitsSection(value: unknown): LimitSettings {
  if (value === undefined) return NO_LIMITS;
  const object = objectAt(value, "limits");
  onlyFields(
    object,
    [
      "publish",
      "streamsPerVisitor",
      "longPollsPerVisitor",
      "maxConnections",
      "connectionsPerAddress",
      "hooksPerVisitor",
      "maxHooksInFlight",
      "trustedProxies",
    ],
    "limits",
  );
  let publish: RateSettings | undefined;
  if (object.publish !== undefined) {
    const rate = objectAt(object.publish, "limits.publish");
    onlyFields(rate, ["rate", "burst"], "limits.publish");
    const perSecond = numberAt(rate.rate, "limits.publish.rate", 0.001, 1_000_000);
    if (perSecond === undefined) throw new ConfigError("limits.publish.rate is required");
    publish = {
      rate: perSecond,
      burst: numberAt(rate.burst, "limits.publish.burst", 1, 1_000_000) ?? Math.ceil(perSecond),
    };
  }
  const proxies = object.trustedProxies ?? [];
  if (!Array.isArray(proxies) || !proxies.every((entry) => typeof entry === "string")) {
    throw new ConfigError("limits.trustedProxies must be a list of IP addresses or CIDR ranges");
  }
  try {
    createTrustedProxies(proxies);
  } catch (error) {
    throw new ConfigError(`limits.trustedProxies: ${(error as Error).message}`);
  }
  return {
    publish,
    streamsPerVisitor: numberAt(object.streamsPerVisitor, "limits.streamsPerVisitor", 1, 1_000_000),
    longPollsPerVisitor: numberAt(object.longPollsPerVisitor, "limits.longPollsPerVisitor", 1, 1_000_000),
    maxConnections: numberAt(object.maxConnections, "limits.maxConnections", 1, 1_000_000),
    connectionsPerAddress: numberAt(object.connectionsPerAddress, "limits.connectionsPerAddress", 1, 1_000_000),
    hooksPerVisitor: numberAt(object.hooksPerVisitor, "limits.hooksPerVisitor", 1, 1_000_000),
    maxHooksInFlight: numberAt(object.maxHooksInFlight, "limits.maxHooksInFlight", 1, 1_000_000),
    trustedProxies: proxies,
  };
}
