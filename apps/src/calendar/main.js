// P&L calendar (get_calendar): one grid per month of the range, days coloured by net P&L
// (the breakeven window is flat), week and month totals; a day lists its trades (copies
// and archived trades marked). Its counts are decisions: a trade copied to other accounts once.
import { connect } from "../shared/bridge.js";
import {
  applyTheme, fill, formats, h, isNum, localeOf, preferences, show, structured, textOf, tone,
} from "../shared/format.js";

const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

let input = {};
const bridge = connect({
  name: "tradavity-calendar",
  version: "1.0.0",
  onInput: (args) => { input = args; },
  onResult: (result) => void render(result),
  onContext: applyTheme,
});

bridge.ready.then((init) => applyTheme(init.hostContext));

/** A calendar date (no time zone: the API's days are already in the user's). */
const parse = (iso) => {
  const [y, m, d] = String(iso).slice(0, 10).split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
};
const iso = (day) => day.toISOString().slice(0, 10);
const addDays = (day, n) => new Date(day.getTime() + n * 86400000);

async function render(result) {
  if (result.isError) return show(h("p", { class: "error", role: "alert" }, textOf(result)));
  let data = structured(result);
  if (data && !data.range && data.from && data.to) {
    // The picture's result (format=image) names its range: ask for the days themselves.
    const args = { from_date: data.from, to_date: data.to, ...(input.account ? { account: input.account } : {}) };
    data = structured(await bridge.callTool("get_calendar", args));
  }
  if (!data || !data.range) return show(h("p", { class: "muted" }, textOf(result) || "No calendar data."));
  if (!Array.isArray(data.days) && data.grouped_by) data = await byMonth(data);
  const summary = data.summary || {};
  const prefs = await preferences(bridge, summary.timezone);
  const f = formats(localeOf(bridge.context()), prefs.currency);
  const breakeven = summary.breakeven_offset || { low: 0, high: 0 };
  const first = parse(data.range.from);
  const last = parse(data.range.to);
  const days = new Map((data.days || []).map((row) => [String(row.date).slice(0, 10), row]));
  const weekStart = Math.max(0, WEEKDAYS.indexOf(String(prefs.week_start).toLowerCase()));
  const total = isNum(summary.total_net_pnl)
    ? summary.total_net_pnl
    : [...days.values()].reduce((s, r) => s + (r.net_pnl || 0), 0);
  const peak = Math.max(1, ...[...days.values()].map((r) => Math.abs(r.net_pnl || 0)));
  const detail = h("section", { id: "day", "aria-live": "polite" });

  const months = [];
  for (let m = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth(), 1)); m <= last;
    m = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1))) {
    months.push(month(m, { first, last, days, weekStart, breakeven, peak, f, detail }));
  }
  const tz = prefs.timezone || summary.timezone || "";
  show(
    h("header", { class: "head" },
      h("h1", {}, "P&L calendar"),
      h("p", { class: "muted" }, `${fmtDate(first, f.locale)} – ${fmtDate(last, f.locale)}`, tz ? ` · ${tz}` : ""),
      h("p", { class: "total" }, "Net ",
        h("strong", { class: `num ${tone(total, breakeven)}`, "data-testid": "total", "data-value": total }, f.money(total)),
        h("span", { class: "muted" },
          ` · ${f.count(summary.traded_days ?? days.size)} traded days · ${plural(summary.decisions, "decision", f)}`)),
      data.note ? h("p", { class: "muted" }, data.note) : null),
    h("div", { class: "months" }, months),
    detail,
  );
}

/** Most months the view fetches one by one when the range's days came grouped. */
const MAX_MONTHS = 13;

/**
 * A long range's days come grouped by week or month (the result's size budget): fetch
 * its days a month at a time, so every month still gets its grid. The summary (and so the
 * total) stays the one of the whole range.
 */
async function byMonth(data) {
  const first = parse(data.range.from);
  const last = parse(data.range.to);
  const spans = [];
  for (let m = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth(), 1)); m <= last;
    m = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1))) {
    const end = addDays(new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1)), -1);
    spans.push([m < first ? first : m, end > last ? last : end]);
  }
  if (spans.length > MAX_MONTHS) return data;
  const account = input.account !== undefined && input.account !== null ? { account: input.account } : {};
  const parts = await Promise.all(spans.map(([from, to]) =>
    bridge.callTool("get_calendar", { from_date: iso(from), to_date: iso(to), ...account })
      .then(structured, () => null)));
  if (parts.some((part) => !part || !Array.isArray(part.days))) return data;
  const { note, grouped_by, weeks, months, years, ...rest } = data;
  return { ...rest, days: parts.flatMap((part) => part.days) };
}

function fmtDate(day, locale) {
  return day.toLocaleDateString(locale, { timeZone: "UTC", year: "numeric", month: "short", day: "numeric" });
}

function month(start, ctx) {
  const { first, last, days, weekStart, breakeven, peak, f, detail } = ctx;
  const label = start.toLocaleDateString(f.locale, { timeZone: "UTC", year: "numeric", month: "long" });
  const next = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
  const names = [];
  for (let i = 0; i < 7; i++) {
    // 2023-01-01 was a Sunday.
    const ref = new Date(Date.UTC(2023, 0, 1 + ((weekStart + i) % 7)));
    names.push(h("th", { scope: "col", abbr: ref.toLocaleDateString(f.locale, { timeZone: "UTC", weekday: "long" }) },
      ref.toLocaleDateString(f.locale, { timeZone: "UTC", weekday: "short" })));
  }
  const rows = [];
  let monthTotal = 0;
  let cursor = addDays(start, -((start.getUTCDay() - weekStart + 7) % 7));
  while (cursor < next) {
    const cells = [];
    let weekTotal = 0;
    let weekTraded = false;
    for (let i = 0; i < 7; i++, cursor = addDays(cursor, 1)) {
      const inMonth = cursor >= start && cursor < next;
      const inRange = inMonth && cursor >= first && cursor <= last;
      if (!inMonth) {
        cells.push(h("td", { class: "out", "aria-hidden": "true" }));
        continue;
      }
      const key = iso(cursor);
      const row = inRange ? days.get(key) : undefined;
      if (row && isNum(row.net_pnl)) {
        weekTotal += row.net_pnl;
        monthTotal += row.net_pnl;
        weekTraded = true;
      }
      cells.push(dayCell(cursor, key, row, inRange, { breakeven, peak, f, detail }));
    }
    rows.push(h("tr", {}, cells,
      h("td", { class: "week" },
        weekTraded ? h("span", { class: `num ${tone(weekTotal, breakeven)}`, "data-week": "", title: f.money(round(weekTotal)) }, f.short(round(weekTotal))) : "")));
  }
  monthTotal = round(monthTotal);
  return h("section", { class: "month", "data-month": iso(start).slice(0, 7) },
    h("h2", {}, h("span", { "data-testid": "month-label" }, label), " ",
      h("span", { class: `num ${tone(monthTotal, breakeven)}`, "data-testid": "month-total", "data-value": monthTotal },
        f.money(monthTotal))),
    h("table", { class: "grid" },
      h("caption", { class: "sr" }, `${label}: net ${f.money(monthTotal)}`),
      h("thead", {}, h("tr", {}, names, h("th", { scope: "col" }, "Week"))),
      h("tbody", {}, rows)));
}

function dayCell(day, key, row, inRange, { breakeven, peak, f, detail }) {
  const n = day.getUTCDate();
  if (!inRange) return h("td", { class: "outside" }, h("span", { class: "date" }, n));
  if (!row) return h("td", { class: "empty" }, h("span", { class: "date" }, n));
  const kind = tone(row.net_pnl, breakeven);
  const strength = kind === "flat" ? 0 : 0.14 + 0.4 * Math.min(1, Math.abs(row.net_pnl) / peak);
  const label = `${day.toLocaleDateString(f.locale, { timeZone: "UTC", dateStyle: "full" })}: ${f.money(row.net_pnl)}, ${plural(row.decisions, "decision", f)}`;
  return h("td", { class: `traded ${kind}`, style: `--a:${strength.toFixed(2)}` },
    h("button", {
      type: "button", class: "daybtn", "data-date": key, "aria-label": label,
      onclick: () => void openDay(key, day, row, { f, breakeven, detail }),
    },
      h("span", { class: "date" }, n),
      h("span", { class: "num pnl", "data-value": row.net_pnl, title: f.money(row.net_pnl) }, f.short(row.net_pnl)),
      h("span", { class: "count", title: plural(row.decisions, "decision", f) }, `${row.decisions}×`)));
}

async function openDay(key, day, row, { f, breakeven, detail }) {
  const title = day.toLocaleDateString(f.locale, { timeZone: "UTC", dateStyle: "full" });
  fill(detail, h("h2", {}, title), h("p", { class: "muted" }, "Loading trades…"));
  let result;
  try {
    result = await bridge.callTool("find_trades", { from_date: key, to_date: key, limit: 50 });
  } catch (error) {
    fill(detail, h("h2", {}, title), h("p", { class: "error" }, `Could not load the trades: ${error.message}`));
    return;
  }
  const data = structured(result);
  if (result.isError || !data) {
    fill(detail, h("h2", {}, title), h("p", { class: "error" }, textOf(result)));
    return;
  }
  const trades = data.trades || [];
  fill(detail, 
    h("h2", {}, title, " ", h("span", { class: `num ${tone(row.net_pnl, breakeven)}` }, f.money(row.net_pnl))),
    trades.length === 0
      ? h("p", { class: "muted" }, "No trades listed for this day.")
      : h("ul", { class: "trades", "data-testid": "day-trades" }, trades.map((t) =>
        h("li", {},
          h("span", { class: "tn" }, `#${t.trade_number}`), " ",
          h("span", {}, `${t.symbol} ${t.direction}`), " ",
          h("span", { class: `num ${tone(t.net_pnl, breakeven)}` }, f.money(t.net_pnl)),
          t.account ? h("span", { class: "muted" }, ` · ${t.account}`) : null,
          t.strategy ? h("span", { class: "muted" }, ` · ${t.strategy}`) : null,
          t.is_copy ? h("span", { class: "tag", "data-mark": "copy" }, "copy") : null,
          t.archived ? h("span", { class: "tag", "data-mark": "archived" }, "archived") : null))),
    data.next_cursor ? h("p", { class: "muted" }, "More trades on this day: ask for them in the chat.") : null,
  );
  detail.scrollIntoView?.({ block: "nearest" });
}

const round = (v) => Math.round(v * 100) / 100;

/** "1 decision", "3 decisions": the calendar counts decisions (a copied trade once). */
const plural = (n, word, f) => `${f.count(n)} ${n === 1 ? word : `${word}s`}`;
