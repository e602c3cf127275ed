/** The part of uri-template-router (CommonJS, untyped) Herald uses: one RFC 6570 template, matched against URIs. */
declare module "uri-template-router" {
  export class Router {
    addTemplate(template: string): unknown;
    /** The best matching route's result, or undefined when no template matches. */
    resolveURI(uri: string): unknown;
  }
}
