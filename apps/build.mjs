// Build each app into ONE self-contained HTML file (script and styles inlined, nothing
// fetched at run time) in the Python package, where the server serves it as a ui://
// resource. The files are committed, so installing the wheel needs no Node.
//
//   node build.mjs           write src/tradavity_mcp/server/apps/dist/<app>.html
//   node build.mjs --check   fail if a committed file differs from a fresh build
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, "..", "src", "tradavity_mcp", "server", "apps", "views");
export const MAX_BYTES = 150 * 1024;

/** One entry per app: its folder under src/ and the page title. */
export const APPS = {
  calendar: "P&L calendar",
  dashboard: "Trading stats",
  journal: "Check and journal a trade",
};

async function script(name) {
  const result = await esbuild.build({
    entryPoints: [join(HERE, "src", name, "main.js")],
    bundle: true,
    minify: true,
    format: "iife",
    target: "es2020",
    legalComments: "none",
    write: false,
    absWorkingDir: HERE,
  });
  // Inline in <script>: no "</script" may appear in the code's strings.
  return result.outputFiles[0].text.replace(/<\/(script)/gi, "<\\/$1").trim();
}

async function styles(name) {
  const parts = [join(HERE, "src", "shared", "base.css"), join(HERE, "src", name, "style.css")];
  const css = parts.filter(existsSync).map((p) => readFileSync(p, "utf8")).join("\n");
  const result = await esbuild.transform(css, { loader: "css", minify: true });
  return result.code.replace(/<\/(style)/gi, "<\\/$1").trim();
}

export async function render(name) {
  const [js, css] = await Promise.all([script(name), styles(name)]);
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    `<title>${APPS[name]}</title>`,
    `<style>${css}</style></head>`,
    `<body><main id="app" aria-live="polite" aria-busy="true"><p class="muted">Loading…</p></main>`,
    `<script>${js}</script></body></html>`,
    "",
  ].join("\n");
}

async function main() {
  const check = process.argv.includes("--check");
  let failed = false;
  mkdirSync(OUT, { recursive: true });
  for (const name of Object.keys(APPS)) {
    const html = await render(name);
    const file = join(OUT, `${name}.html`);
    const size = Buffer.byteLength(html);
    if (size > MAX_BYTES) {
      console.error(`${name}.html is ${size} bytes, over the ${MAX_BYTES}-byte budget`);
      failed = true;
    }
    if (check) {
      const committed = existsSync(file) ? readFileSync(file, "utf8") : null;
      if (committed !== html) {
        console.error(`${name}.html is not the build of apps/src/${name}: run npm run build --prefix apps`);
        failed = true;
      } else {
        console.log(`${name}.html: up to date (${size} bytes)`);
      }
    } else {
      writeFileSync(file, html);
      console.log(`${name}.html: ${size} bytes`);
    }
  }
  if (failed) process.exit(1);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
