// /api/docs: renders /api/openapi.json as a browsable page. No library, no CDN; text only
// (textContent), so nothing in the document can run as HTML. Served under the pages' CSP.

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

const METHODS = ["get", "put", "post", "patch", "delete"];

function refName(ref) {
  return ref.split("/").pop();
}

// A schema as indented text: objects list their properties (* = required), $ref names link.
function schemaNode(schema, depth = 0) {
  if (!schema) return el("span", { class: "muted" }, "(none)");
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return el("a", { href: `#schema-${name}`, class: "ref" }, name);
  }
  const nullable = schema.nullable ? " | null" : "";
  if (schema.type === "array") {
    return el("span", {}, "array of ", schemaNode(schema.items, depth), nullable);
  }
  if (schema.type === "object" && schema.properties) {
    const required = new Set(schema.required ?? []);
    const list = el("ul", { class: "props" });
    for (const [name, sub] of Object.entries(schema.properties)) {
      list.append(
        el("li", {}, el("code", {}, name + (required.has(name) ? "*" : "")), ": ",
          schemaNode(sub, depth + 1)),
      );
    }
    return el("span", {}, `object${nullable}`, list);
  }
  let text = schema.type ?? "any";
  if (schema.format) text += ` (${schema.format})`;
  if (schema.enum) text += ` one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  if (schema.minimum !== undefined) text += ` ≥ ${schema.minimum}`;
  if (schema.maximum !== undefined) text += ` ≤ ${schema.maximum}`;
  if (schema.maxLength !== undefined) text += `, at most ${schema.maxLength} characters`;
  return el("span", {}, text + nullable);
}

function security(operation) {
  const options = operation.security ?? [];
  if (options.length === 0) return "public";
  return options.map((option) => Object.keys(option).join(" + ")).join(" or ");
}

function operationNode(path, method, operation) {
  const id = operation.operationId ?? `${method}-${path}`;
  const details = el("details", { id: `op-${id}`, class: "operation" });
  details.append(
    el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), " ",
      el("code", {}, path), " ", el("span", { class: "summary" }, operation.summary ?? "")),
  );
  details.append(el("p", {}, "Credentials: ", security(operation)));
  if (operation.parameters?.length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"),
      el("th", {}, "schema")));
    for (const parameter of operation.parameters) {
      table.append(el("tr", {}, el("td", {}, el("code", {}, parameter.name + (parameter.required ? "*" : ""))),
        el("td", {}, parameter.in), el("td", {}, schemaNode(parameter.schema))));
    }
    details.append(el("h4", {}, "Parameters"), table);
  }
  const body = operation.requestBody?.content?.["application/json"]?.schema;
  if (body) details.append(el("h4", {}, "Body (application/json)"), el("div", {}, schemaNode(body)));
  const responses = el("dl", { class: "responses" });
  for (const [status, response] of Object.entries(operation.responses ?? {})) {
    responses.append(el("dt", {}, status, " ", response.description ?? ""));
    for (const [media, content] of Object.entries(response.content ?? {})) {
      responses.append(el("dd", {}, el("span", { class: "muted" }, media), " ", schemaNode(content.schema)));
    }
  }
  details.append(el("h4", {}, "Responses"), responses);
  return details;
}

function render(spec) {
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  document.getElementById("description").textContent = spec.info.description ?? "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = item[method].tags?.[0] ?? "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, item[method]]);
    }
  }
  const main = document.getElementById("operations");
  const toc = document.getElementById("toc");
  main.replaceChildren();
  for (const tag of [...byTag.keys()].sort()) {
    toc.append(el("a", { href: `#tag-${tag}` }, tag), " ");
    const section = el("section", { id: `tag-${tag}` }, el("h2", {}, tag));
    for (const [path, method, operation] of byTag.get(tag)) section.append(operationNode(path, method, operation));
    main.append(section);
  }
  const schemas = el("section", { id: "schemas" }, el("h2", {}, "Schemas"));
  for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
    schemas.append(el("div", { id: `schema-${name}`, class: "schema" }, el("h3", {}, name), schemaNode(schema)));
  }
  toc.append(el("a", { href: "#schemas" }, "schemas"));
  main.append(schemas);
  document.body.dataset.rendered = "yes";
}

fetch("/api/openapi.json", { credentials: "same-origin" })
  .then((response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("operations").replaceChildren(
      el("p", { class: "error" }, `Cannot load /api/openapi.json: ${error.message}`));
  });
