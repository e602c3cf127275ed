import { networkError, responseError } from "./errors.js";
import { authHeaders, resolveBaseUrl } from "./http.js";
import type { HeraldMessage, MessageFields, TokenProvider } from "./types.js";

export interface PublishOptions {
  url?: string;
  token?: TokenProvider;
  /** Makes retries safe: the server stores the message once and answers repeats with the original. */
  idempotencyKey?: string;
  fetch?: typeof fetch;
}

/** Publishes one message; a string becomes its `body`. Throws HeraldClientError on failure. */
export async function publish(
  mailbox: string,
  message: string | MessageFields,
  options: PublishOptions = {},
): Promise<HeraldMessage> {
  const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    ...(await authHeaders(options.token)),
  };
  if (options.idempotencyKey !== undefined) headers["Idempotency-Key"] = options.idempotencyKey;
  const url = `${resolveBaseUrl(options.url)}/v1/mailboxes/${encodeURIComponent(mailbox)}/messages`;
  let response: Response;
  try {
    response = await fetcher(url, {
      method: "POST",
      headers,
      body: JSON.stringify(typeof message === "string" ? { body: message } : message),
    });
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await responseError(response);
  return (await response.json()) as HeraldMessage;
}
