import { isMailboxName } from "../core/mailbox-name.js";
import { MAX_TAG_LENGTH, MAX_TAGS } from "../core/message-input.js";
import { ConfigError } from "../errors.js";
import { compileTemplate, type Template, TemplateError } from "./template.js";
import { DEFAULT_HMAC_HEADER, HOOK_SCHEMES, type HookScheme, keyFromSecret, secretProblem } from "./verifiers.js";

/** One configured hook, checked and ready to serve. */
export interface HookDefinition {
  readonly id: string;
  readonly scheme: HookScheme;
  /** HMAC keys; more than one while a secret is being rotated. */
  readonly keys: readonly Buffer[];
  readonly toleranceSeconds: number;
  /** Signature header of the generic scheme. */
  readonly header: string;
  /** Header carrying a delivery id for the generic scheme, if the sender sends one. */
  readonly idHeader: string | undefined;
  readonly mailbox: Template;
  readonly title: Template | undefined;
  readonly body: Template | undefined;
  readonly tags: readonly string[] | undefined;
  readonly priority: number | undefined;
  /** Largest delivery accepted, in bytes. */
  readonly maxBodyBytes: number;
}

export const MAX_HOOKS = 1000;
export const MAX_SECRETS_PER_HOOK = 16;
export const DEFAULT_TOLERANCE_SECONDS = 300;
export const MAX_TOLERANCE_SECONDS = 7 * 86400;
/** GitHub payloads are routinely tens of KiB and can reach a few MiB for big pushes. */
export const DEFAULT_HOOK_MAX_BODY_BYTES = 1024 * 1024;
export const MAX_HOOK_MAX_BODY_BYTES = 25 * 1024 * 1024;
const HOOK_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
const MAILBOX_CHARS = /^[A-Za-z0-9_\-.:@]*$/;
const HOOK_FIELDS = ["id", "mailbox", "verify", "title", "body", "tags", "priority", "maxBodyBytes"];
const VERIFY_FIELDS: Readonly<Record<HookScheme, readonly string[]>> = {
  github: ["scheme", "secret", "secretEnv"],
  stripe: ["scheme", "secret", "secretEnv", "toleranceSeconds"],
  "standard-webhooks": ["scheme", "secret", "secretEnv", "toleranceSeconds"],
  "hmac-sha256": ["scheme", "secret", "secretEnv", "header", "idHeader"],
};

function fail(field: string, message: string): never {
  throw new ConfigError(`${field} ${message}`);
}

function object(value: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(field, "must be an object");
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) fail(`${field}.${key}`, `is not a known field; allowed: ${allowed.join(", ")}`);
  }
  return record;
}

function string(value: unknown, field: string): string {
  if (typeof value !== "string" || value.length === 0) fail(field, "must be a non-empty string");
  return value;
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

function stringList(value: unknown, field: string, max: number): string[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0 || list.length > max) fail(field, `must be a string or a list of 1 to ${max} strings`);
  return list.map((item, index) => string(item, Array.isArray(value) ? `${field}[${index}]` : field));
}

function template(value: unknown, field: string): Template {
  try {
    return compileTemplate(string(value, field));
  } catch (error) {
    if (error instanceof TemplateError) fail(field, error.message);
    throw error;
  }
}

function secrets(verify: Record<string, unknown>, scheme: HookScheme, field: string, env: NodeJS.ProcessEnv): Buffer[] {
  if ((verify.secret === undefined) === (verify.secretEnv === undefined)) {
    fail(field, 'needs exactly one of "secret" and "secretEnv"');
  }
  const found =
    verify.secret !== undefined
      ? stringList(verify.secret, `${field}.secret`, MAX_SECRETS_PER_HOOK).map((value) => ({
          value,
          where: `${field}.secret`,
        }))
      : stringList(verify.secretEnv, `${field}.secretEnv`, MAX_SECRETS_PER_HOOK).map((name) => {
          const value = env[name];
          if (value === undefined || value === "") fail(`${field}.secretEnv`, `names ${name}, which is not set`);
          return { value, where: `${field}.secretEnv (${name})` };
        });
  return found.map(({ value, where }) => {
    const problem = secretProblem(scheme, value);
    if (problem !== undefined) fail(where, problem);
    return keyFromSecret(scheme, value);
  });
}

function mailboxTemplate(value: unknown, field: string): Template {
  const mailbox = template(value, field);
  if (mailbox.isStatic ? !isMailboxName(mailbox.source) : !mailbox.literals.every((text) => MAILBOX_CHARS.test(text))) {
    fail(field, "must be a mailbox name (A-Z a-z 0-9 _ - . : @, up to 128) or a template of one");
  }
  return mailbox;
}

function hook(value: unknown, field: string, env: NodeJS.ProcessEnv): HookDefinition {
  const input = object(value, field, HOOK_FIELDS);
  const id = string(input.id, `${field}.id`);
  if (!HOOK_ID.test(id)) fail(`${field}.id`, "must be 1-64 characters of A-Z a-z 0-9 _ . -");
  if (input.mailbox === undefined) fail(`${field}.mailbox`, "is required");
  if (input.verify === undefined)
    fail(`${field}.verify`, "is required: a hook without a signature check is not served");
  const scheme = (input.verify as { scheme?: unknown }).scheme;
  if (typeof scheme !== "string" || !HOOK_SCHEMES.includes(scheme as HookScheme)) {
    fail(`${field}.verify.scheme`, `must be one of ${HOOK_SCHEMES.join(", ")}`);
  }
  const verify = object(input.verify, `${field}.verify`, VERIFY_FIELDS[scheme as HookScheme]);
  const header = verify.header === undefined ? DEFAULT_HMAC_HEADER : string(verify.header, `${field}.verify.header`);
  if (!HEADER_NAME.test(header)) fail(`${field}.verify.header`, "must be an HTTP header name");
  const idHeader = verify.idHeader === undefined ? undefined : string(verify.idHeader, `${field}.verify.idHeader`);
  if (idHeader !== undefined && !HEADER_NAME.test(idHeader))
    fail(`${field}.verify.idHeader`, "must be an HTTP header name");
  const tags = input.tags === undefined ? undefined : stringList(input.tags, `${field}.tags`, MAX_TAGS);
  if (tags?.some((tag) => tag.length > MAX_TAG_LENGTH))
    fail(`${field}.tags`, `must be at most ${MAX_TAG_LENGTH} characters each`);
  return {
    id,
    scheme: scheme as HookScheme,
    keys: secrets(verify, scheme as HookScheme, `${field}.verify`, env),
    toleranceSeconds:
      verify.toleranceSeconds === undefined
        ? DEFAULT_TOLERANCE_SECONDS
        : integer(verify.toleranceSeconds, `${field}.verify.toleranceSeconds`, 1, MAX_TOLERANCE_SECONDS),
    header,
    idHeader,
    mailbox: mailboxTemplate(input.mailbox, `${field}.mailbox`),
    title: input.title === undefined ? undefined : template(input.title, `${field}.title`),
    body: input.body === undefined ? undefined : template(input.body, `${field}.body`),
    tags,
    priority: input.priority === undefined ? undefined : integer(input.priority, `${field}.priority`, 1, 5),
    maxBodyBytes:
      input.maxBodyBytes === undefined
        ? DEFAULT_HOOK_MAX_BODY_BYTES
        : integer(input.maxBodyBytes, `${field}.maxBodyBytes`, 64, MAX_HOOK_MAX_BODY_BYTES),
  };
}

/** Checks the "hooks" section of the config file; every error names the offending field. */
export function parseHooksSection(value: unknown, env: NodeJS.ProcessEnv): HookDefinition[] {
  if (!Array.isArray(value) || value.length > MAX_HOOKS) fail("hooks", `must be a list of at most ${MAX_HOOKS} hooks`);
  const hooks = value.map((item, index) => hook(item, `hooks[${index}]`, env));
  const seen = new Set<string>();
  hooks.forEach((definition, index) => {
    if (seen.has(definition.id)) fail(`hooks[${index}].id`, `"${definition.id}" is used by an earlier hook`);
    seen.add(definition.id);
  });
  return hooks;
}
