import type { Context } from "hono";
import type { Reader } from "../../core/reader.js";
import { HeraldError } from "../../errors.js";
import type { Caller } from "./caller.js";

/** Names a client may give itself with `reader` where reads need no token. */
const READER_NAME = /^[A-Za-z0-9._~:@|+-]{1,128}$/;

function bad(message: string): HeraldError {
  return new HeraldError("bad_parameter", message);
}

/** Where auth is on, names readers give themselves start with this, so none can pass for a token's sub. */
export const ANONYMOUS_READER_PREFIX = "anonymous:";

/**
 * Who the caller is as a reader: a token's `sub` (with its `info`), or, for a
 * caller without a token (loopback dev mode, reads left open), the `reader`
 * it names itself, unauthenticated. With auth on, such a name is marked
 * `anonymous:<name>`: otherwise `?reader=alice` would see alice's read state,
 * hear her read events and appear as her. Undefined when it is neither.
 */
export function readerFor(caller: Caller, requested: unknown, authOn: boolean): Reader | undefined {
  if (requested !== undefined && (typeof requested !== "string" || !READER_NAME.test(requested))) {
    throw bad('"reader" must be 1 to 128 letters, digits or . _ ~ : @ | + -');
  }
  if (caller.kind === "token") {
    if (requested !== undefined && requested !== caller.name) {
      throw bad(`"reader" cannot differ from your token's sub ("${caller.name}"); leave it out`);
    }
    return { sub: caller.name, info: caller.info };
  }
  if (caller.kind === "key") {
    if (requested !== undefined) throw bad('API keys publish; a "reader" is a token holder or an anonymous client');
    return undefined;
  }
  if (requested === undefined) return undefined;
  return { sub: authOn ? `${ANONYMOUS_READER_PREFIX}${requested}` : requested, info: undefined };
}

/** `?reader=`; an empty value means the same as none. */
export function queryReader(c: Context, caller: Caller, authOn: boolean): Reader | undefined {
  const raw = c.req.query("reader");
  return readerFor(caller, raw === "" ? undefined : raw, authOn);
}

/** The reader a route that keeps read state needs; 400 without one. */
export function requireReader(reader: Reader | undefined): Reader {
  if (reader === undefined) {
    throw bad("Read state belongs to a reader: send a token (its sub), or ?reader=<name> where reads are open");
  }
  return reader;
}
