// Bundles the widget front end into jupyter_runs/static/ (widget.js as one ESM module for
// anywidget's `_esm`, widget.css for `_css`). One self-contained file: anywidget loads the ESM
// from a string, so nothing may be left to a runtime resolver.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(here, "..", "jupyter_runs", "static");
const watch = process.argv.includes("--watch");

const common = {
  bundle: true,
  minify: !watch,
  legalComments: "none",
  logLevel: "info",
  target: ["es2020"],
};

await build({
  ...common,
  entryPoints: [path.join(here, "src", "widget.js")],
  outfile: path.join(outdir, "widget.js"),
  format: "esm",
  // Some UMD bundles probe `define.amd`; inside JupyterLab a RequireJS `define` may exist, and a
  // bundled library registering itself there instead of returning its export breaks the bundle.
  define: { "define.amd": "false" },
});

await build({
  ...common,
  entryPoints: [path.join(here, "src", "styles.css")],
  outfile: path.join(outdir, "widget.css"),
});
