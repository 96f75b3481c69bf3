// Journal form (review_trade): the trade, tags, checklist and screenshot as the model
// filled them in, for the trader to check and correct. Each submit is a journal_trade
// call whose id (`_meta["com.tradavity/callId"]`) is the form's id from review_trade's
// result and a digest of what is sent: the same submit again, or the same form shown
// again, replays instead of writing; a correction after a partial is another call with
// the same trade, which the server carries on (the parts already written are kept, only
// the corrected ones are written), so it finishes that trade, never a second one. After
// a partial the trade's fields are locked: the trade exists.
//
// Every required checklist item the draft leaves unanswered gets a field with its
// options (the protocol's items come from `lookup`); a screenshot the server could not
// read (a path it cannot reach, bad data) can be replaced by a file chosen here.
import { connect } from "../shared/bridge.js";
import { applyTheme, fill, formats, h, isNum, localeOf, show, structured, textOf } from "../shared/format.js";

const CALL_ID_KEY = "com.tradavity/callId";
/** The answers each checklist item type takes, as the choices of a field. */
const CHOICES = {
  checkbox: [["true", "done"], ["false", "not done"]],
  yes_no_na: [["yes", "yes"], ["no", "no"], ["na", "n/a"]],
  rating: [1, 2, 3, 4, 5].map((n) => [String(n), String(n)]),
};
/** Item types the draft's "*" answers (every checkbox and yes/no item). */
const STARRED = new Set(["checkbox", "yes_no_na"]);
const GRADES = ["", "A+", "A", "B", "C", "F"];
/** The trade fields the form edits; the rest of the draft's trade is kept as given. */
const FIELDS = [
  ["symbol", "Symbol", "text"],
  ["direction", "Direction", ["long", "short"]],
  ["trade_date", "Date and time", "text"],
  ["net_pnl", "Net P&L", "number"],
  ["account", "Account", "text"],
  ["quantity", "Quantity", "number"],
  ["fees", "Fees", "number"],
  ["strategy", "Strategy", "text"],
  ["setup", "Setup", "text"],
  ["trade_quality_grade", "Grade", GRADES],
  ["general_notes", "Notes", "textarea"],
];

const bridge = connect({
  name: "tradavity-journal-form",
  version: "1.0.0",
  onResult: (result) => render(result),
  onContext: applyTheme,
});
bridge.ready.then((init) => applyTheme(init.hostContext));

function render(result) {
  if (result.isError) return show(h("p", { class: "error", role: "alert" }, textOf(result)));
  const data = structured(result);
  if (!data?.draft?.trade || !data.call_id) return show(h("p", { class: "muted" }, textOf(result) || "No trade to check."));
  const draft = data.draft;
  const f = formats(localeOf(bridge.context()), "USD");
  const status = h("div", { id: "status", role: "status", "aria-live": "polite" });
  // A plain button, not a form submission: hosts' sandboxes may not allow forms.
  const submit = h("button", { type: "button", class: "primary", "data-testid": "submit" }, "Journal this trade");
  const form = h("form", { "aria-label": "Trade to journal", novalidate: true },
    h("fieldset", {},
      h("legend", {}, "Trade"),
      h("div", { class: "grid" }, FIELDS.map(([key, label, kind]) => field(key, label, kind, draft.trade[key]))),
      others(draft.trade, f)),
    h("fieldset", {},
      h("legend", {}, "Tags"),
      labelled("tags", "Tags, separated by commas",
        h("input", { id: "tags", name: "tags", type: "text", value: (draft.tags || []).join(", ") })),
      h("label", { class: "check" },
        h("input", { type: "checkbox", name: "create_missing_tags", checked: Boolean(draft.create_missing_tags) }),
        " Create tags that do not exist yet")),
    draft.checklist ? checklist(draft.checklist) : null,
    screenshot(draft.screenshot),
    draft.executions ? h("p", { class: "muted" }, `Fills: ${count(draft.executions.entries)} entries, ${count(draft.executions.exits)} exits (kept as given).`) : null,
    h("div", { class: "actions" }, submit, status));
  form.addEventListener("submit", (event) => event.preventDefault());
  submit.addEventListener("click", () => void send(form, draft, data.call_id, submit, status));
  show(h("h1", {}, "Check the trade, then journal it"),
    h("p", { class: "muted" }, "Nothing is written until you press the button."), form);
  if (draft.checklist) void unanswered(form, draft.checklist);
}

/** Fields for the protocol's required items the draft does not answer, with their options. */
async function unanswered(form, part) {
  const place = form.querySelector("[data-testid=unanswered]");
  let result;
  try {
    result = await bridge.callTool("lookup", { name: "protocols", query: String(part.protocol) });
  } catch {
    return;
  }
  const protocol = structured(result) || parseText(result);
  const items = Array.isArray(protocol?.items) ? protocol.items : [];
  const given = new Set(Object.keys(part.answers || {}).map((k) => k.trim().toLowerCase()));
  const starred = given.has("*");
  const missing = items.filter((item) => item.required
    && !given.has(String(item.label).trim().toLowerCase()) && !given.has(String(item.id))
    && !(starred && STARRED.has(item.type)));
  fill(place, missing.map((item, i) => {
    const id = `m-${i}`;
    const choices = item.type === "select" ? (item.options || []).map((o) => [o, o]) : CHOICES[item.type];
    const control = choices
      ? h("select", { id, "data-item": item.label, "data-kind": "text", "data-missing": "1" },
        h("option", { value: "" }, "— choose —"), choices.map(([value, label]) => h("option", { value }, label)))
      : h("input", { id, type: item.type === "number" ? "number" : "text", step: "any", "data-item": item.label,
        "data-kind": "text", "data-missing": "1", value: "" });
    return h("div", { class: "field" }, h("label", { for: id }, `${item.label} (required)`), control);
  }));
}

function parseText(result) {
  try {
    return JSON.parse(textOf(result));
  } catch {
    return null;
  }
}

const count = (list) => (Array.isArray(list) ? list.length : 0);

function labelled(id, label, control) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

function field(key, label, kind, value) {
  const id = `f-${key}`;
  let control;
  if (Array.isArray(kind)) {
    control = h("select", { id, name: key },
      kind.map((option) => h("option", { value: option, selected: option === (value ?? "") }, option || "—")));
  } else if (kind === "textarea") {
    control = h("textarea", { id, name: key, rows: 2 }, value ?? "");
  } else {
    control = h("input", {
      id, name: key, type: kind === "number" ? "number" : "text", step: kind === "number" ? "any" : null,
      value: value ?? "", required: ["symbol", "trade_date", "net_pnl"].includes(key),
    });
  }
  return h("div", { class: `field ${kind === "textarea" ? "wide" : ""}` }, h("label", { for: id }, label), control);
}

function others(trade, f) {
  const shown = new Set(FIELDS.map(([key]) => key));
  const rest = Object.entries(trade).filter(([key]) => !shown.has(key));
  if (rest.length === 0) return null;
  return h("details", {},
    h("summary", {}, `${rest.length} more field${rest.length > 1 ? "s" : ""}, kept as given`),
    h("dl", { class: "rest" }, rest.map(([key, value]) => [
      h("dt", {}, key.replaceAll("_", " ")),
      h("dd", {}, isNum(value) ? f.number(value) : typeof value === "object" ? JSON.stringify(value) : String(value)),
    ])));
}

function checklist(part) {
  const answers = Object.entries(part.answers || {});
  return h("fieldset", { "data-testid": "checklist" },
    h("legend", {}, `Checklist: ${part.protocol}`),
    answers.map(([item, value], i) => {
      const id = `a-${i}`;
      const control = typeof value === "boolean"
        ? h("input", { id, type: "checkbox", "data-item": item, "data-kind": "boolean", checked: value })
        : h("input", { id, type: typeof value === "number" ? "number" : "text", step: "any", "data-item": item,
          "data-kind": typeof value === "number" ? "number" : "text", value: value ?? "" });
      return h("div", { class: typeof value === "boolean" ? "check" : "field" }, h("label", { for: id }, item), control);
    }),
    h("div", { "data-testid": "unanswered", class: "grid" }),
    labelled("cl-status", "Status",
      h("select", { id: "cl-status", name: "checklist_status" },
        ["completed", "draft"].map((s) => h("option", { value: s, selected: s === (part.status || "completed") }, s)))));
}

function screenshot(part = {}) {
  const type = /\.jpe?g$/i.test(part.filename || "") ? "image/jpeg" : /\.png$/i.test(part.filename || "") ? "image/png" : null;
  return h("fieldset", { "data-testid": "screenshot" },
    h("legend", {}, "Screenshot"),
    part.data && type ? h("img", { src: `data:${type};base64,${part.data}`, alt: part.label || "Chart screenshot", class: "shot" }) : null,
    h("p", { class: "muted" }, part.filename || part.path || ""),
    labelled("shot-file", part.data || part.path ? "Replace with a file" : "Add a file",
      h("input", { id: "shot-file", name: "screenshot_file", type: "file", accept: "image/png,image/jpeg,application/pdf" })),
    labelled("shot-label", "Caption", h("input", { id: "shot-label", name: "screenshot_label", type: "text", value: part.label || "", maxlength: 100 })));
}

/** A chosen file as journal_trade's screenshot data (base64) and filename. */
function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({ data: String(reader.result).split(",", 2)[1] || "", filename: file.name });
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** A short, stable digest of a submit's arguments (53-bit; Web Crypto needs a secure
 * context, which a host's sandbox may not be). Equal arguments, equal digest. */
function digest(text) {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

/** The draft with the trader's corrections. */
async function collect(form, draft) {
  const trade = { ...draft.trade };
  for (const [key, , kind] of FIELDS) {
    const raw = form.elements[key].value.trim();
    const given = draft.trade[key];
    // Untouched fields stay exactly as the model gave them (an id stays a number).
    if (given !== undefined && given !== null && String(given) === raw) continue;
    if (raw === "") delete trade[key];
    else if (kind === "number") trade[key] = Number(raw);
    else trade[key] = raw;
  }
  const args = { ...draft, trade };
  args.tags = form.elements.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
  args.create_missing_tags = form.elements.create_missing_tags.checked;
  if (draft.checklist) {
    const answers = {};
    for (const input of form.querySelectorAll("[data-item]")) {
      const kind = input.dataset.kind;
      if (input.dataset.missing && input.value === "") continue; // still unanswered
      answers[input.dataset.item] = kind === "boolean" ? input.checked : kind === "number" ? Number(input.value) : input.value;
    }
    args.checklist = { ...draft.checklist, answers, status: form.elements.checklist_status.value };
  }
  const file = form.elements.screenshot_file.files?.[0];
  if (draft.screenshot || file) {
    const label = form.elements.screenshot_label.value.trim();
    // A chosen file replaces what the draft had (a path the server cannot read, say).
    args.screenshot = file ? await readFile(file) : { ...draft.screenshot };
    if (label) args.screenshot.label = label;
    else delete args.screenshot.label;
  }
  return args;
}

async function send(form, draft, callId, submit, status) {
  submit.disabled = true;
  fill(status, h("span", { class: "muted" }, "Journaling…"));
  let result;
  try {
    const args = await collect(form, draft);
    // One id per distinct submit of this form (see the top of this file).
    const id = `${callId}:${digest(JSON.stringify(args))}`;
    result = await bridge.callTool("journal_trade", args, { [CALL_ID_KEY]: id });
  } catch (error) {
    result = { isError: true, content: [{ type: "text", text: error.message }] };
  }
  const data = structured(result);
  if (result.isError || !data) {
    submit.disabled = false;
    fill(status, h("p", { class: "error", role: "alert" }, textOf(result) || "Not journaled."));
    return;
  }
  const number = data.trade_number ? `#${data.trade_number}` : "";
  const words = {
    done: `Journaled trade ${number}.`,
    replayed: `Already journaled as trade ${number}: nothing new was written.`,
    partial: `Trade ${number} is journaled, but some parts failed: correct them and submit again to finish this same trade.`,
    pending: "Sent; Tradavity has not confirmed yet. It will be finished automatically.",
    suspected_duplicate: "An identical trade was just journaled; nothing new was written.",
  };
  fill(status,
    h("p", { class: data.outcome === "partial" ? "error" : "win", "data-testid": "outcome", "data-outcome": data.outcome },
      words[data.outcome] || textOf(result)),
    data.steps ? h("ul", { class: "steps" }, Object.entries(data.steps).map(([step, state]) => h("li", {}, `${step}: ${state}`))) : null);
  if (data.outcome === "partial") {
    // The trade exists: only its other parts can be corrected now.
    form.querySelector("fieldset").disabled = true;
    submit.disabled = false;
  } else {
    submit.textContent = "Journaled";
    for (const set of form.querySelectorAll("fieldset")) set.disabled = true;
  }
}
