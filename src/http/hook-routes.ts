import type { Context } from "hono";
import { HeraldError } from "../errors.js";
import { readRawBody } from "./body.js";
import type { AppDeps } from "./deps.js";

/**
 * POST /v1/hooks/{hook}: a signed webhook delivery becomes a message. Only a
 * delivery with well-formed signature headers gets its body read, and only
 * while its sender and the server have room for one more in flight.
 */
export async function receiveHook(c: Context, deps: AppDeps): Promise<Response> {
  const id = c.req.param("hook") ?? "";
  const hook = deps.hooks?.find(id);
  if (deps.hooks === undefined || hook === undefined) {
    throw new HeraldError("not_found", `No hook "${id.slice(0, 64)}" is configured`);
  }
  const delivery = deps.hooks.begin(hook, (name) => c.req.header(name));
  const release = deps.access.holdHook(c);
  try {
    const body = await readRawBody(c, hook.maxBodyBytes);
    const answer = await delivery.finish(body, c.req.header("content-type"));
    const json = {
      ...(answer.message ?? {}),
      hook: answer.hook,
      ...(answer.deliveryId === undefined ? {} : { deliveryId: answer.deliveryId }),
      duplicate: answer.duplicate,
    };
    return c.json(json, answer.duplicate ? 200 : 202);
  } finally {
    release();
  }
}
