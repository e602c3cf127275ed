import { objectAt, onlyFields } from "../auth/config-fields.js";
import { ConfigError } from "../errors.js";

/** Where the ntfy-compatible API is served when the config file does not say. */
export const DEFAULT_NTFY_PREFIX = "/ntfy";

/** The config file's `ntfy` section. */
export interface NtfySettings {
  /**
   * The path the ntfy API lives under (`/ntfy` serves `/ntfy/<topic>`), "/" to
   * serve it at the root as ntfy itself does, or false to turn it off.
   */
  readonly prefix: string | false;
}

export const DEFAULT_NTFY_SETTINGS: NtfySettings = { prefix: DEFAULT_NTFY_PREFIX };

/** Longest prefix accepted; a prefix is a path, not a document. */
const MAX_PREFIX_LENGTH = 128;
/** Path segments of unreserved characters, so the prefix needs no escaping in a route or a URL. */
const PREFIX = /^(?:\/[A-Za-z0-9._~-]+)+$/;

/** Checks a prefix: "/" or "/a/b" (no trailing slash); returns it as routes use it. */
export function checkNtfyPrefix(value: unknown, where: string): string | false {
  if (value === false) return false;
  if (typeof value !== "string" || value.length > MAX_PREFIX_LENGTH || (value !== "/" && !PREFIX.test(value))) {
    throw new ConfigError(
      `${where} must be false, "/" or a path such as "/ntfy" (segments of A-Z a-z 0-9 . _ ~ -, no trailing slash)`,
    );
  }
  return value;
}

/** Parses `{"prefix": "/ntfy"}` (or `false` to turn the adapter off). */
export function parseNtfySection(value: unknown): NtfySettings {
  const object = objectAt(value, "ntfy");
  onlyFields(object, ["prefix"], "ntfy");
  if (object.prefix === undefined) return DEFAULT_NTFY_SETTINGS;
  return { prefix: checkNtfyPrefix(object.prefix, "ntfy.prefix") };
}
