/**
 * `{{dotted.path}}` templates over a webhook's JSON payload. A template is
 * only ever looked up, never evaluated: a path names object keys (own
 * properties only) and array indexes, nothing else.
 */
export interface Template {
  /** The source as configured. */
  readonly source: string;
  /** True when the template has no `{{...}}` and renders to itself. */
  readonly isStatic: boolean;
  /** The literal text between placeholders, for checking it at start-up. */
  readonly literals: readonly string[];
  /** Renders against `payload`; a missing path renders empty; the result is cut at `maxLength`. */
  render(payload: unknown, maxLength: number): string;
}

export class TemplateError extends Error {
  override name = "TemplateError";
}

/** Segments a path may have; deeper paths are a configuration mistake. */
export const MAX_TEMPLATE_PATH_SEGMENTS = 32;
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const SEGMENT = /^[A-Za-z0-9_$-]+$/;

type Part = { readonly literal: string } | { readonly path: readonly string[] };

function lookup(payload: unknown, path: readonly string[]): unknown {
  let value = payload;
  for (const segment of path) {
    if (Array.isArray(value)) {
      value = /^\d+$/.test(segment) ? value[Number(segment)] : undefined;
    } else if (typeof value === "object" && value !== null && Object.hasOwn(value, segment)) {
      value = (value as Record<string, unknown>)[segment];
    } else {
      return undefined;
    }
  }
  return value;
}

function show(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function compileTemplate(source: string): Template {
  const parts: Part[] = [];
  let last = 0;
  for (const match of source.matchAll(PLACEHOLDER)) {
    const raw = match[1] ?? "";
    const path = raw.split(".");
    if (path.length > MAX_TEMPLATE_PATH_SEGMENTS || !path.every((segment) => SEGMENT.test(segment))) {
      throw new TemplateError(`"{{${raw}}}" is not a dotted path like {{repository.full_name}} or {{commits.0.id}}`);
    }
    parts.push({ literal: source.slice(last, match.index) }, { path });
    last = match.index + match[0].length;
  }
  parts.push({ literal: source.slice(last) });
  const literals = parts.flatMap((part) => ("literal" in part ? [part.literal] : []));
  const stray = literals.find((literal) => literal.includes("{{") || literal.includes("}}"));
  if (stray !== undefined) throw new TemplateError(`unbalanced "{{" or "}}" in "${source}"`);
  return {
    source,
    isStatic: parts.length === 1,
    literals,
    render(payload, maxLength) {
      let out = "";
      for (const part of parts) {
        out += "literal" in part ? part.literal : show(lookup(payload, part.path));
        if (out.length >= maxLength) return out.slice(0, maxLength);
      }
      return out;
    },
  };
}
