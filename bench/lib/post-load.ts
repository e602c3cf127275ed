import autocannon from "autocannon";
import { HERALD, type Target } from "./targets.js";

/** Concurrent publishers of every ingest measurement, so the stores are compared under one load. */
export const INGEST_CONNECTIONS = 50;
/** A 64-byte JSON message body. */
export const INGEST_BODY = `{"body":"${"x".repeat(64 - 12)}"}`;

export interface PostLoad {
  /** Publishes answered 2xx. */
  readonly acknowledged: number;
  readonly publishesPerSecond: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
}

/** autocannon POSTing INGEST_BODY to one mailbox for `seconds` from INGEST_CONNECTIONS connections. */
export async function postLoad(
  baseUrl: string,
  mailbox: string,
  seconds: number,
  target: Target = HERALD,
): Promise<PostLoad> {
  const result = await autocannon({
    url: `${baseUrl}${target.publishPath(mailbox)}`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: INGEST_BODY,
    connections: INGEST_CONNECTIONS,
    duration: seconds,
  });
  const acknowledged = result["2xx"];
  return {
    acknowledged,
    publishesPerSecond: Math.round(acknowledged / seconds),
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}
