// key-facts: an alteryx-router plugin in JavaScript (jco componentize).
//
// Question values from the object key (Partner = first folder under the rule's prefix,
// Extension) and the first line of the file (FirstLine, trimmed to 200 characters).
// Config: {"prefix": "partners/", "skip_empty": true}.
import { log } from "alteryx-router:plugin/host@0.1.0";

export function route(request) {
  let config;
  try {
    config = JSON.parse(request.config || "{}");
  } catch (e) {
    // A thrown value becomes the `err` of result<outcome, string>.
    throw `config is not JSON: ${e}`;
  }
  const key = request.object.key;
  const prefix = config.prefix || "";
  if (!key.startsWith(prefix)) {
    return { tag: "skip", val: `key does not start with ${prefix}` };
  }
  const rest = key.slice(prefix.length).split("/");
  const name = rest[rest.length - 1];
  const dot = name.lastIndexOf(".");
  const text = new TextDecoder().decode(request.head);
  const firstLine = (text.split(/\r?\n/, 1)[0] || "").slice(0, 200);
  if (config.skip_empty && firstLine.trim() === "") {
    return { tag: "skip", val: "the file is empty" };
  }
  log("info", `${key}: ${request.head.length} bytes read`);
  return {
    tag: "questions",
    val: [
      { name: "Partner", value: rest.length > 1 ? rest[0] : "" },
      { name: "Extension", value: dot > 0 ? name.slice(dot + 1) : "" },
      { name: "FirstLine", value: firstLine },
    ],
  };
}
