// Check our server's Apps surface with the schemas of @modelcontextprotocol/ext-apps:
// each UI tool's `_meta.ui` (McpUiToolMetaSchema) and flat `ui/resourceUri`, each ui://
// resource's MIME type and `_meta.ui` (McpUiResourceMetaSchema), and that every view is
// self-contained (no external script, style, image, font or connection).
//
//   node validate.mjs < surface.json     {"tools": [...], "resources": [{uri, mimeType, _meta, text}]}
// Prints one line per problem and exits 1 if there is any.
import { readFileSync } from "node:fs";
import {
  McpUiResourceMetaSchema,
  McpUiToolMetaSchema,
  RESOURCE_MIME_TYPE,
  RESOURCE_URI_META_KEY,
} from "@modelcontextprotocol/ext-apps";

const surface = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
const resources = new Map(surface.resources.map((r) => [r.uri, r]));

for (const tool of surface.tools) {
  const ui = tool._meta?.ui;
  if (!ui) continue;
  const parsed = McpUiToolMetaSchema.safeParse(ui);
  if (!parsed.success) problems.push(`${tool.name}: _meta.ui: ${parsed.error.message}`);
  if (tool._meta[RESOURCE_URI_META_KEY] !== ui.resourceUri) {
    problems.push(`${tool.name}: _meta["${RESOURCE_URI_META_KEY}"] differs from _meta.ui.resourceUri`);
  }
  if (!resources.has(ui.resourceUri)) problems.push(`${tool.name}: no resource ${ui.resourceUri}`);
}

const EXTERNAL = [
  /<script[^>]*\ssrc\s*=/i,
  /<link[^>]*\shref\s*=/i,
  /<(img|iframe|source|audio|video)[^>]*\ssrc\s*=\s*["']?https?:/i,
  /url\(\s*["']?https?:/i,
  /@import/i,
];
for (const resource of surface.resources) {
  if (!resource.uri.startsWith("ui://")) continue;
  if (resource.mimeType !== RESOURCE_MIME_TYPE) {
    problems.push(`${resource.uri}: MIME type ${resource.mimeType}, not ${RESOURCE_MIME_TYPE}`);
  }
  const parsed = McpUiResourceMetaSchema.safeParse(resource._meta?.ui ?? {});
  if (!parsed.success) problems.push(`${resource.uri}: _meta.ui: ${parsed.error.message}`);
  for (const pattern of EXTERNAL) {
    if (pattern.test(resource.text)) problems.push(`${resource.uri}: loads something from outside (${pattern})`);
  }
  if (!/^<!doctype html>/i.test(resource.text)) problems.push(`${resource.uri}: not an HTML document`);
}

for (const problem of problems) console.log(problem);
console.log(`checked ${surface.tools.length} tools, ${surface.resources.length} resources: ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
