import type { Context } from "hono";
import { HeraldError } from "../../errors.js";
import type { AppDeps } from "../deps.js";
import { readRawBody } from "./body.js";

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
    const publisher = deps.access.hookPublisher(hook.id);
    const answer = await deps.hub.publishing.admit(publisher, [], async (store) =>
      delivery.finish(await readRawBody(c, hook.maxBodyBytes), c.req.header("content-type"), store),
    );
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
