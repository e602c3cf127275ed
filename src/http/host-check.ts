import { HeraldError } from "../errors.js";
import type { AppDeps } from "./deps.js";
import { isLoopbackHostHeader } from "./middleware/origin-policy.js";

/** DNS rebinding points a hostile name at 127.0.0.1; the browser still sends that name as Host. */
export function checkHost(deps: AppDeps, host: string | undefined): void {
  if (deps.access.loopbackHostsOnly && host !== undefined && !isLoopbackHostHeader(host)) {
    throw new HeraldError(
      "host_not_allowed",
      `Host ${JSON.stringify(host.slice(0, 256))} is not a loopback name; without auth Herald answers only to ` +
        "localhost and loopback addresses (configure auth, or pass --insecure, to serve other names)",
    );
  }
}

/** An error as every route answers it. */
export function errorBody(error: HeraldError): string {
  return JSON.stringify(error.toJSON());
}
