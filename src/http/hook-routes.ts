import type { Context } from "hono";
import { HeraldError } from "../core/errors.js";
import { readRawBody } from "./body.js";
import type { AppDeps } from "./deps.js";

/** POST /v1/hooks/{hook}: a signed webhook delivery becomes a message. */
export async function receiveHook(c: Context, deps: AppDeps): Promise<Response> {
  const id = c.req.param("hook") ?? "";
  const hook = deps.hooks?.find(id);
  if (hook === undefined) throw new HeraldError("not_found", `No hook "${id.slice(0, 64)}" is configured`);
  const body = await readRawBody(c, hook.maxBodyBytes);
  const answer = await deps.hooks?.receive(hook, {
    body,
    header: (name) => c.req.header(name),
    contentType: c.req.header("content-type"),
  });
  if (answer === undefined) throw new HeraldError("internal");
  const json = {
    ...(answer.message ?? {}),
    hook: answer.hook,
    ...(answer.deliveryId === undefined ? {} : { deliveryId: answer.deliveryId }),
    duplicate: answer.duplicate,
  };
  return c.json(json, answer.duplicate ? 200 : 202);
}
