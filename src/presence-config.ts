import { numberAt, objectAt, onlyFields } from "./auth/config-fields.js";
import { DEFAULT_LONG_POLL_GRACE_MS, DEFAULT_MAX_PRESENCE_MEMBERS } from "./core/hub.js";
import { DEFAULT_PRESENCE_NODE_TIMEOUT_MS } from "./store/redis-presence.js";

/** The config file's `presence` section; undefined fields take the defaults below. */
export interface PresenceSettings {
  /** Above this many present readers, presence watchers get a count once a second instead of joins and leaves. */
  readonly maxMembers: number;
  /** How long a long-poller stays present after its poll answered. */
  readonly longPollGraceSeconds: number;
  /** Redis store: a node silent this long has its readers withdrawn (it beats every quarter of it). */
  readonly nodeTimeoutSeconds: number;
}

export const DEFAULT_PRESENCE_SETTINGS: PresenceSettings = {
  maxMembers: DEFAULT_MAX_PRESENCE_MEMBERS,
  longPollGraceSeconds: DEFAULT_LONG_POLL_GRACE_MS / 1000,
  nodeTimeoutSeconds: DEFAULT_PRESENCE_NODE_TIMEOUT_MS / 1000,
};

/** Parses `{"maxMembers": 1000, "longPollGraceSeconds": 10, "nodeTimeoutSeconds": 20}`. */
export function parsePresenceSection(value: unknown): PresenceSettings {
  const object = objectAt(value, "presence");
  onlyFields(object, Object.keys(DEFAULT_PRESENCE_SETTINGS), "presence");
  const defaults = DEFAULT_PRESENCE_SETTINGS;
  return {
    maxMembers: Math.floor(numberAt(object.maxMembers, "presence.maxMembers", 0, 1_000_000) ?? defaults.maxMembers),
    longPollGraceSeconds:
      numberAt(object.longPollGraceSeconds, "presence.longPollGraceSeconds", 0, 3600) ?? defaults.longPollGraceSeconds,
    nodeTimeoutSeconds:
      numberAt(object.nodeTimeoutSeconds, "presence.nodeTimeoutSeconds", 1, 3600) ?? defaults.nodeTimeoutSeconds,
  };
}
