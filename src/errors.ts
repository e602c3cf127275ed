/** Every error Herald answers with, by code. Handlers throw; one renderer turns these into JSON. */
export const ERROR_CATALOGUE = {
  bad_mailbox: { status: 400, message: "Mailbox names are 1-128 characters of A-Z a-z 0-9 _ - . : @" },
  bad_cursor: { status: 400, message: "The cursor is not one this server issued" },
  bad_parameter: { status: 400, message: "A query parameter or header is invalid" },
  bad_json: { status: 400, message: "The body is not valid JSON" },
  bad_message: { status: 400, message: "The message is invalid" },
  unauthorized: { status: 401, message: "Authentication is required" },
  forbidden: { status: 403, message: "Not allowed for these credentials" },
  origin_not_allowed: { status: 403, message: "Requests from this web page's origin are not allowed" },
  host_not_allowed: { status: 403, message: "This server answers only to loopback names without auth" },
  push_endpoint_not_allowed: {
    status: 400,
    message: "Herald does not send pushes to this endpoint (https on a host in push.allowedHosts only)",
  },
  not_found: { status: 404, message: "No such resource" },
  push_unavailable: {
    status: 404,
    message: "This server has no Web Push keys; add a push section to its config file (herald vapid create)",
  },
  method_not_allowed: { status: 405, message: "Method not allowed on this resource" },
  idempotency_conflict: {
    status: 409,
    message: "This Idempotency-Key was already used with a different message",
  },
  payload_too_large: { status: 413, message: "The body is larger than the limit" },
  too_many_requests: { status: 429, message: "Too many requests; retry later" },
  too_many_scheduled: {
    status: 429,
    message: "Too many messages are waiting for their scheduled time; retry once some were delivered",
  },
  client_closed_request: {
    // nginx's code: the answer never reaches anyone, and the log tells it apart from a server error.
    status: 499,
    message: "The client went away before its request arrived in full",
  },
  too_many_push_subscriptions: {
    status: 429,
    message: "Too many push subscriptions; remove one (DELETE /v1/push/subscriptions/{id}) first",
  },
  internal: { status: 500, message: "Internal server error" },
  draining: { status: 503, message: "The server is shutting down; retry on another instance or shortly" },
  store_unavailable: { status: 503, message: "The message store is unavailable; retry shortly" },
  server_full: { status: 503, message: "The server is at its connection limit; retry shortly" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers, e.g. Allow or Retry-After. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message?: string, headers: Record<string, string> = {}) {
    super(message ?? ERROR_CATALOGUE[code].message);
    this.name = "HeraldError";
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.headers = headers;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** A wrong flag, environment variable or config file: `herald` prints the message and exits 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** node:util parseArgs' complaint about the command line, as a one-line ConfigError of Herald's own. */
export function argumentError(error: unknown): ConfigError {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  const message = (error as Error).message;
  const named = /'([^']+)'/.exec(message)?.[1]?.split(" ")[0] ?? "";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return new ConfigError(`unknown option ${named}; see --help`);
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") return new ConfigError(`${named} needs a value; see --help`);
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL")
    return new ConfigError(`unexpected argument ${named}; see --help`);
  return new ConfigError(message);
}
