// Validates KEDA resources with the validators @kubernetes-models/keda compiles from KEDA's CRD schemas.
// Usage: node keda-validate.mjs NPM_PREFIX < docs.json   (a JSON array of resources)
// Prints a JSON array with one entry per resource: null when valid, else the validation message.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const prefix = process.argv[2];
const models = await import(
  pathToFileURL(join(prefix, "node_modules/@kubernetes-models/keda/keda.sh/v1alpha1/index.js")).href
);
const docs = JSON.parse(readFileSync(0, "utf8"));
const results = docs.map((doc) => {
  const Model = models[doc.kind];
  if (doc.apiVersion !== "keda.sh/v1alpha1" || typeof Model !== "function") {
    return `no KEDA model for ${doc.apiVersion} ${doc.kind}`;
  }
  try {
    new Model(doc).validate();
    return null;
  } catch (e) {
    return String(e.message ?? e);
  }
});
process.stdout.write(JSON.stringify(results));
