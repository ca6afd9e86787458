// Validates Kubernetes objects against their API schemas, offline, with kubernetes-models (the
// Kubernetes API) and @kubernetes-models/gateway-api (HTTPRoute and the rest of the Gateway API).
//
//   node validate.mjs < objects.json
//
// stdin: a JSON array of objects (or one object, or a kind: List). stdout: a JSON array with one
// {apiVersion, kind, name, errors} per object, in input order; errors is empty for a valid one.
// Exit code: 0 when every object is valid, 1 when one is not, or has an apiVersion and kind
// neither package knows: an object nobody checked must not pass as checked.

import { readFileSync } from "node:fs";

const packages = ["kubernetes-models", "@kubernetes-models/gateway-api"];

/** The model class for an apiVersion and kind: `apps/v1` Deployment is kubernetes-models/apps/v1/Deployment. */
async function modelOf(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9.\/-]+$/.test(apiVersion) || !/^[A-Za-z0-9]+$/.test(kind)) {
    return undefined;
  }

  for (const pkg of packages) {
    try {
      const module = await import(`${pkg}/${apiVersion}/${kind}`);
      const model = module[kind];
      if (model?.apiVersion === apiVersion && model?.kind === kind) {
        return model;
      }
    } catch (error) {
      if (error?.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED" && error?.code !== "ERR_MODULE_NOT_FOUND") {
        throw error;
      }
    }
  }

  return undefined;
}

const input = JSON.parse(readFileSync(0, "utf8"));
const objects = Array.isArray(input) ? input : input?.kind === "List" ? input.items : [input];

const report = [];
for (const object of objects) {
  const { apiVersion, kind } = object ?? {};
  const entry = { apiVersion, kind, name: object?.metadata?.name, errors: [] };
  const model = await modelOf(apiVersion, kind);
  if (!model) {
    entry.errors.push(`no schema for apiVersion ${apiVersion}, kind ${kind} in ${packages.join(" or ")}`);
  } else {
    try {
      new model(object).validate();
    } catch (error) {
      // ValidationError: one message per schema violation, with the path of the field.
      const details = Array.isArray(error?.errors) ? error.errors.map((e) => `${e.instancePath || "/"} ${e.message}`) : [];
      entry.errors.push(...(details.length > 0 ? details : [String(error?.message ?? error)]));
    }
  }

  report.push(entry);
}

process.stdout.write(JSON.stringify(report, null, 2) + "\n");
process.exitCode = report.every((entry) => entry.errors.length === 0) ? 0 : 1;
