// Shared by the apps: the user's number formats, the tool result's data, a tiny DOM builder.

/** The locale the host reports (BCP 47), else the browser's. */
export function localeOf(context) {
  const wanted = context?.locale || navigator.language || "en-US";
  try {
    return Intl.getCanonicalLocales(wanted)[0];
  } catch {
    return "en-US";
  }
}

/** Number formatters for one locale and currency. Thousands are always grouped (es-ES
 * and compact de-DE leave 4-digit amounts bare by default), and an amount that rounds to
 * nothing never reads "-0". */
export function formats(locale, currency) {
  const grouped = { useGrouping: "always" };
  const make = (options, fallback) => {
    try {
      return new Intl.NumberFormat(locale, { ...grouped, ...options });
    } catch {
      return fallback;
    }
  };
  const plainOf = (options) => make(options, new Intl.NumberFormat(locale, options));
  const money0 = plainOf({ style: "currency", currency: "USD", signDisplay: "negative" });
  const unsigned = make(
    { style: "currency", currency: currency || "USD", signDisplay: "negative" }, money0,
  );
  const code = unsigned.resolvedOptions().currency;
  const signed = make({ style: "currency", currency: code, signDisplay: "exceptZero" }, unsigned);
  const plain = plainOf({ maximumFractionDigits: 2, signDisplay: "negative" });
  const count = plainOf({ maximumFractionDigits: 0 });
  const pct = plainOf({ style: "percent", maximumFractionDigits: 2, signDisplay: "negative" });
  const whole = make(
    { style: "currency", currency: code, maximumFractionDigits: 0, signDisplay: "exceptZero" },
    signed,
  );
  const short = make(
    {
      style: "currency", currency: code, notation: "compact", maximumSignificantDigits: 2,
      signDisplay: "exceptZero",
    },
    whole,
  );
  // A small amount that rounds to a whole zero keeps its cents ("-$0.30", not "$0").
  const brief = (v) => (Math.abs(v) < 1 ? signed : Math.abs(v) < 1000 ? whole : short).format(v);
  return {
    locale,
    currency: code,
    /** A signed amount: "+$12.50", "-$3.00", "$0.00". */
    money: (v) => (isNum(v) ? signed.format(v) : "–"),
    /** A signed amount in few characters, for small cells: "+$233", "-$1.2K". */
    short: (v) => (isNum(v) ? brief(v) : "–"),
    /** An unsigned amount. */
    amount: (v) => (isNum(v) ? unsigned.format(v) : "–"),
    number: (v) => (isNum(v) ? plain.format(v) : "–"),
    count: (v) => (isNum(v) ? count.format(v) : "–"),
    /** From a percentage (56.16 -> "56.16%"). */
    percent: (v) => (isNum(v) ? pct.format(v / 100) : "–"),
  };
}

export const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** The structured content of a tool result (or its JSON text, for older hosts). */
export function structured(result) {
  if (result?.structuredContent && typeof result.structuredContent === "object") {
    return result.structuredContent;
  }
  for (const block of result?.content || []) {
    if (block.type !== "text") continue;
    try {
      const value = JSON.parse(block.text);
      if (value && typeof value === "object") return value;
    } catch {
      /* not JSON */
    }
  }
  return null;
}

/** The text of a tool result (its error message, when isError). */
export function textOf(result) {
  return (result?.content || [])
    .filter((b) => b.type === "text")
    .map((b) => b.text)
    .join("\n");
}

/** The user's preferences from Tradavity (`lookup me`), with safe fallbacks. */
export async function preferences(bridge, fallbackTimezone) {
  const prefs = { currency: "USD", week_start: "monday", timezone: fallbackTimezone || "" };
  try {
    const me = structured(await bridge.callTool("lookup", { name: "me" }));
    Object.assign(prefs, Object.fromEntries(
      Object.entries(me?.preferences || {}).filter(([, v]) => typeof v === "string" && v),
    ));
  } catch {
    /* the host may not proxy tool calls: keep the fallbacks */
  }
  return prefs;
}

/**
 * Make an element: h("div", {class: "x", onclick: fn}, child, "text", ...).
 * Attributes named on* become listeners; null/false children are skipped; nested lists of
 * children (a list of [dt, dd] pairs) are flattened, however deep.
 */
export function h(tag, attrs, ...children) {
  const svg = SVG_TAGS.has(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG_TAGS = new Set(["svg", "path", "polyline", "line", "rect", "text", "g", "title", "circle"]);

/** Replace the app's content. */
export function show(...children) {
  const root = document.getElementById("app");
  fill(root, ...children);
  root.setAttribute("aria-busy", "false");
}

/** Replace an element's children (null and false children are skipped). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** Apply the host's theme (light/dark) to the page. */
export function applyTheme(context) {
  if (context?.theme === "dark" || context?.theme === "light") {
    document.documentElement.dataset.theme = context.theme;
  }
}

/** The sign class of an amount, with the breakeven window flat. */
export function tone(value, breakeven) {
  const low = isNum(breakeven?.low) ? breakeven.low : 0;
  const high = isNum(breakeven?.high) ? breakeven.high : 0;
  if (!isNum(value)) return "none";
  if (value >= low && value <= high) return "flat";
  return value > 0 ? "win" : "loss";
}
