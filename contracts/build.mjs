// Rebuilds contracts/out/ (Foundry artifact layout) with the npm `solc` (solcjs),
// which works offline. Run: `make contracts` (or `node contracts/build.mjs`).
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "tools", "package.json"));
const solc = require("solc");

const sources = {};
for (const file of readdirSync(join(here, "src")).filter((f) => f.endsWith(".sol"))) {
  sources[file] = { content: readFileSync(join(here, "src", file), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
// Imports are written "./X.sol" and sources are keyed by file name.
const findImports = (path) => {
  const name = path.replace(/^\.\//, "");
  return sources[name] ? { contents: sources[name].content } : { error: `not found: ${path}` };
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    const dir = join(here, "out", file);
    mkdirSync(dir, { recursive: true });
    const artifact = {
      abi: c.abi,
      bytecode: { object: "0x" + c.evm.bytecode.object },
      deployedBytecode: { object: "0x" + c.evm.deployedBytecode.object },
      metadata: { compiler: { version: solc.version() } },
    };
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`built ${file}:${name}`);
  }
}
