import { HeraldError } from "../errors.js";

export const MAX_MAILBOX_NAME_LENGTH = 128;
const MAILBOX_NAME = /^[A-Za-z0-9_\-.:@]{1,128}$/;

export function isMailboxName(name: string): boolean {
  return MAILBOX_NAME.test(name);
}

export function assertMailboxName(name: unknown): string {
  if (typeof name === "string" && MAILBOX_NAME.test(name)) return name;
  const shown = typeof name === "string" ? JSON.stringify(name.slice(0, 140)) : String(name);
  throw new HeraldError(
    "bad_mailbox",
    `Invalid mailbox name ${shown}: use 1-${MAX_MAILBOX_NAME_LENGTH} characters of A-Z a-z 0-9 _ - . : @`,
  );
}
