/**
 * What of a mailbox's log a subscription asks for: server-side filters and
 * `mode: "latest"`. The same on every transport: query parameters on SSE,
 * long-poll and a follower tab's catch-up read, fields of the WebSocket
 * subscribe frame.
 */

/** Messages the server sends; the others are skipped (not gaps) and the cursor still moves past them. */
export interface SubscribeFilter {
  /** Messages with any of these tags. */
  tags?: readonly string[];
  /** Messages of at least this priority (1-5); a message without one counts as 3. */
  priority?: number;
  /** Messages with one of these keys. */
  key?: readonly string[];
}

/** A filter and mode as sent: empty parts dropped, lists sorted, so equal views compare equal. */
export interface StreamView {
  readonly tags?: readonly string[];
  readonly priority?: number;
  readonly key?: readonly string[];
  readonly latest?: boolean;
}

function list(values: readonly string[] | undefined, name: string): string[] | undefined {
  if (values === undefined) return undefined;
  if (!Array.isArray(values) || values.some((value) => typeof value !== "string")) {
    throw new TypeError(`herald subscribe: filter.${name} must be an array of strings`);
  }
  const names = [...new Set(values.map((value) => value.trim()).filter((value) => value.length > 0))].sort();
  return names.length === 0 ? undefined : names;
}

/** The view of `filter` and `mode`; a filter the server would refuse anyway (priority 9) throws a TypeError here. */
export function streamView(filter: SubscribeFilter | undefined, mode: "all" | "latest" | undefined): StreamView {
  if (mode !== undefined && mode !== "all" && mode !== "latest") {
    throw new TypeError(`herald subscribe: mode must be "all" or "latest", got ${JSON.stringify(mode)}`);
  }
  const tags = list(filter?.tags, "tags");
  const key = list(filter?.key, "key");
  const priority = filter?.priority;
  if (priority !== undefined && (!Number.isInteger(priority) || priority < 1 || priority > 5)) {
    throw new TypeError(`herald subscribe: filter.priority must be an integer from 1 to 5, got ${priority}`);
  }
  return {
    ...(tags ? { tags } : {}),
    ...(priority !== undefined && priority > 1 ? { priority } : {}),
    ...(key ? { key } : {}),
    ...(mode === "latest" ? { latest: true } : {}),
  };
}

/** The query parameters of a view; nothing for the default one, so older servers see the same requests. */
export function viewQuery(view: StreamView): Record<string, string | undefined> {
  return {
    tags: view.tags?.join(","),
    priority: view.priority === undefined ? undefined : String(view.priority),
    key: view.key?.join(","),
    mode: view.latest ? "latest" : undefined,
  };
}

/** The WebSocket subscribe frame's fields of a view. */
export function viewFrame(view: StreamView): Record<string, unknown> {
  return {
    ...(view.tags ? { tags: view.tags } : {}),
    ...(view.priority === undefined ? {} : { priority: view.priority }),
    ...(view.key ? { key: view.key } : {}),
    ...(view.latest ? { mode: "latest" } : {}),
  };
}

/**
 * Names a view in the cursor store's key and the tabs' shared channel; "" for the default view. A filtered
 * cursor moved past messages the filter left out, so it must never be the cursor of another view.
 */
export function viewName(view: StreamView): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(viewQuery(view))) if (value !== undefined) query.set(name, value);
  const text = query.toString();
  return text === "" ? "" : `?${text}`;
}
