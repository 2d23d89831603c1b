// Builds the plugin into a component: node build.mjs [OUT.wasm] (default units.wasm).
// ComponentizeJS reads the host's WIT from ../../wit and bundles a JavaScript engine
// with units.js. The plugin needs none of WASI, so none of it is linked in.
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

const here = fileURLToPath(new URL(".", import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, "units.wasm"));
const { component } = await componentize({
  sourcePath: resolve(here, "units.js"),
  witPath: resolve(here, "../../wit"),
  worldName: "plugin",
  disableFeatures: ["random", "stdio", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
