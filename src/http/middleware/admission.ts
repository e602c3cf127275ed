import type { Context } from "hono";
import type { Publisher } from "../../core/publish-command.js";
import { HeraldError } from "../../errors.js";
import type { Access, HeldKind } from "./access.js";
import { type Caller, TOKEN_COOKIE } from "./caller.js";
import { isSameOrigin } from "./origin-policy.js";

/** A reader let in, holding a connection slot until `release` (idempotent). */
export interface ReadGrant {
  readonly caller: Caller;
  readonly release: () => void;
}

/**
 * Refuses what a hostile web page could make a visitor's browser do with
 * authority the browser supplies by itself: the `herald_token` cookie, or,
 * without auth, merely being able to reach Herald. A "write" (a publish, or a
 * WebSocket, which can publish and whose answers CORS does not guard) made
 * with the cookie must come from Herald's own origin or a listed one; browsers
 * always send Origin on those, so a missing one is refused too. Credentials a
 * page had to hold itself (a header, `?token=`) need no Origin check.
 */
export function checkCrossSite(c: Context, access: Access, caller: Caller, action: "read" | "write"): void {
  const origin = c.req.header("origin");
  const host = c.req.header("host");
  if (caller.via === "cookie") {
    if (origin === undefined) {
      if (action === "read") return;
      throw new HeraldError(
        "origin_not_allowed",
        `A publish, WebSocket or read mark authenticated by the ${TOKEN_COOKIE} cookie needs an Origin header; ` +
          "clients that are not browsers send Authorization: Bearer instead",
      );
    }
    if (access.origins.ambientAllows(origin, host)) return;
    throw new HeraldError(
      "origin_not_allowed",
      `The ${TOKEN_COOKIE} cookie is not accepted from pages of ${JSON.stringify(origin.slice(0, 256))}; ` +
        "list the origin in auth.cors.origins",
    );
  }
  if (caller.kind !== "anonymous" || origin === undefined) return;
  if (access.origins.corsAllows(origin) || isSameOrigin(origin, host)) return;
  throw new HeraldError(
    "origin_not_allowed",
    `Pages of ${JSON.stringify(origin.slice(0, 256))} may not use this server; ` +
      (access.authOn ? "list the origin in auth.cors.origins" : "without auth only pages on localhost may"),
  );
}

/**
 * Every read route calls this with every mailbox it touches: 401, 403, 429 or
 * 503, else a grant. `action` is "write" for a reader's own state changes
 * (marking read), which a cross-site page must not make with the cookie.
 */
export async function admitReader(
  c: Context,
  access: Access,
  mailboxes: readonly string[],
  hold: HeldKind | undefined,
  action: "read" | "write" = "read",
): Promise<ReadGrant> {
  const caller = await access.authenticate(c, false);
  checkCrossSite(c, access, caller, action);
  access.checkRead(caller, mailboxes);
  return { caller, release: hold === undefined ? () => {} : access.hold(caller, hold) };
}

/** Every publish route calls this before reading the body; the publish command then authorizes and charges it. */
export async function admitPublisher(c: Context, access: Access): Promise<Publisher> {
  const caller = await access.authenticate(c, true);
  checkCrossSite(c, access, caller, "write");
  return access.publisherFor(caller);
}
