// Stats dashboard (get_stats): totals and decisions side by side, by-symbol and
// by-strategy bars, and an equity curve (plain SVG) from the days of the same range.
import { connect } from "../shared/bridge.js";
import {
  applyTheme, formats, h, isNum, localeOf, preferences, show, structured, textOf, tone,
} from "../shared/format.js";

let input = {};
const bridge = connect({
  name: "tradavity-dashboard",
  version: "1.0.0",
  onInput: (args) => { input = args; },
  onResult: (result) => void render(result),
  onContext: applyTheme,
});
bridge.ready.then((init) => applyTheme(init.hostContext));

async function call(name, args) {
  try {
    const result = await bridge.callTool(name, args);
    return result.isError ? null : structured(result);
  } catch {
    return null;
  }
}

async function render(result) {
  if (result.isError) return show(h("p", { class: "error", role: "alert" }, textOf(result)));
  const given = structured(result);
  if (!given || !given.range) return show(h("p", { class: "muted" }, textOf(result) || "No stats."));
  const span = { from_date: given.range.from, to_date: given.range.to };
  if (input.account !== undefined && input.account !== null) span.account = input.account;
  const kind = given.kind || (given.totals ? "summary" : given.rows?.[0]?.symbol !== undefined ? "by-symbol" : "by-strategy");
  const [prefs, summary, bySymbol, byStrategy, calendar, goals, healths] = await Promise.all([
    preferences(bridge),
    kind === "summary" ? given : call("get_stats", { kind: "summary", ...span }),
    kind === "by-symbol" ? given : call("get_stats", { kind: "by-symbol", ...span }),
    kind === "by-strategy" ? given : call("get_stats", { kind: "by-strategy", ...span }),
    call("get_calendar", span),
    call("get_goals", {}),
    accountHealths(),
  ]);
  const f = formats(localeOf(bridge.context()), prefs.currency);
  const breakeven = (summary || given).breakeven_offset || { low: 0, high: 0 };
  const totals = summary?.totals || {};
  const decisions = summary?.decisions || {};
  const money = (key, label, source, sign = true) =>
    figure(key, label, source[key], sign ? f.money(source[key]) : f.amount(source[key]), tone(source[key], breakeven));
  show(
    h("header", {},
      h("h1", {}, "Trading stats"),
      h("p", { class: "muted" }, `${dateText(given.range.from, f)} – ${dateText(given.range.to, f)}`,
        span.account !== undefined ? ` · account ${span.account}` : "")),
    h("div", { class: "panels" },
      h("section", { class: "panel", "aria-labelledby": "t-h" },
        h("h2", { id: "t-h" }, "Totals ", h("span", { class: "muted" }, "every row")),
        h("dl", {},
          money("total_net_pnl", "Net P&L", totals),
          money("total_gross_pnl", "Gross P&L", totals),
          figure("total_fees", "Fees", totals.total_fees, f.amount(totals.total_fees)),
          figure("trade_rows", "Trades", totals.trade_rows, f.count(totals.trade_rows)),
          money("best_trade", "Best trade", totals),
          money("worst_trade", "Worst trade", totals),
          money("avg_pnl", "Average", totals))),
      h("section", { class: "panel", "aria-labelledby": "d-h" },
        h("h2", { id: "d-h" }, "Decisions ", h("span", { class: "muted" }, "copies once")),
        h("dl", {},
          figure("count", "Decisions", decisions.count, f.count(decisions.count)),
          figure("win_rate_pct", "Win rate", decisions.win_rate_pct, f.percent(decisions.win_rate_pct)),
          money("expectancy", "Expectancy", decisions),
          figure("profit_factor", "Profit factor", decisions.profit_factor, f.number(decisions.profit_factor)),
          money("avg_win", "Average win", decisions),
          money("avg_loss", "Average loss", decisions),
          figure("wins_losses", "Won / lost / even", null,
            `${f.count(decisions.wins)} / ${f.count(decisions.losses)} / ${f.count(decisions.breakevens)}`)))),
    beside(goals, healths, f),
    equity(calendar, f),
    bars("By symbol", "symbol", bySymbol?.rows, f, breakeven),
    bars("By strategy", "strategy", byStrategy?.rows, f, breakeven),
  );
}

// Account health of every account with a balance profile (a key without read:balance
// has no get_account_health: the panel is left out), and the goals of this period.
async function accountHealths() {
  const accounts = await call("lookup", { name: "accounts" });
  const rows = (accounts?.items || []).filter((a) => !a.archived);
  const healths = await Promise.all(rows.map((a) => call("get_account_health", { account: a.name })));
  return healths.filter((x) => x && isNum(x.drawdown_room));
}

function beside(goals, healths, f) {
  const list = goals?.goals || [];
  if (list.length === 0 && healths.length === 0) return null;
  return h("div", { class: "panels beside" },
    healths.length === 0 ? null : h("section", { class: "panel", "data-testid": "health", "aria-labelledby": "a-h" },
      h("h2", { id: "a-h" }, "Account health ", h("span", { class: "muted" }, "room left")),
      h("ul", { class: "plain health" }, healths.map((x) =>
        h("li", { "data-testid": "health-row", "data-account": x.account, title: x.summary },
          h("strong", {}, x.account), " ",
          h("span", { class: "num", "data-testid": "health-room", "data-value": x.drawdown_room }, f.amount(x.drawdown_room)),
          h("span", { class: "muted" }, " to the drawdown limit"),
          isNum(x.today?.daily_room)
            ? h("span", { class: "muted" }, " · today ", h("span", { class: "num", "data-testid": "health-daily", "data-value": x.today.daily_room }, f.amount(x.today.daily_room)), " left")
            : null)))),
    list.length === 0 ? null : h("section", { class: "panel", "data-testid": "goals", "aria-labelledby": "g-h" },
      h("h2", { id: "g-h" }, "Goals ", h("span", { class: "muted" }, "this period")),
      h("ul", { class: "plain" }, list.map((goal) => {
        const p = goal.this_period || {};
        // Met: green. Not met yet is not a loss: the period may still be running.
        const state = p.achieved === true ? "win" : "";
        return h("li", { "data-testid": "goal", "data-name": goal.name },
          h("span", { class: "name" }, goal.name),
          h("span", { class: `num ${state}`, "data-testid": "goal-actual", "data-value": isNum(p.actual) ? p.actual : null },
            `${isNum(p.actual) ? f.number(p.actual) : "–"} / ${isNum(p.target) ? f.number(p.target) : "–"}`));
      }))));
}

function dateText(iso, f) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString(f.locale, { timeZone: "UTC", dateStyle: "medium" });
}

function figure(key, label, value, text, kind = "") {
  return h("div", { class: "fig" },
    h("dt", {}, label),
    h("dd", { class: `num ${kind}`, "data-testid": `stat-${key}`, "data-value": isNum(value) ? value : null }, text));
}

function bars(title, key, rows, f, breakeven) {
  if (!Array.isArray(rows) || rows.length === 0) return null;
  const peak = Math.max(1, ...rows.map((r) => Math.abs(r.net_pnl || 0)));
  return h("section", { class: "bars", "data-testid": `bars-${key}` },
    h("h2", {}, title),
    h("ul", {}, rows.map((row) => {
      const value = row.net_pnl || 0;
      const width = (50 * Math.abs(value)) / peak;
      const kind = tone(value, breakeven);
      return h("li", {},
        h("span", { class: "name" }, String(row[key] ?? "(other)")),
        h("span", { class: "track", "aria-hidden": "true" },
          h("span", { class: `bar ${kind}`, style: value >= 0 ? `left:50%;width:${width}%` : `left:${50 - width}%;width:${width}%` })),
        h("span", { class: `num ${kind}`, "data-value": value }, f.money(value)),
        h("span", { class: "muted num", title: `${f.count(row.count)} decisions (copies once), ${f.percent(row.win_rate_pct)} won` },
          `${f.count(row.count)} · ${f.percent(row.win_rate_pct)}`));
    })));
}

function equity(calendar, f) {
  const days = (calendar?.days || []).filter((d) => isNum(d.net_pnl));
  if (days.length === 0) return null;
  let running = 0;
  const points = [{ date: null, value: 0 }];
  for (const day of days) points.push({ date: day.date, value: (running = round(running + day.net_pnl)) });
  const W = 700, H = 120, P = 6;
  const values = points.map((p) => p.value);
  const low = Math.min(0, ...values), high = Math.max(0, ...values);
  const y = (v) => P + (H - 2 * P) * (1 - (v - low) / (high - low || 1));
  const x = (i) => P + ((W - 2 * P) * i) / (points.length - 1 || 1);
  const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
  const last = points[points.length - 1].value;
  return h("section", { class: "equity" },
    h("h2", {}, "Equity curve ",
      h("span", { class: `num ${last >= 0 ? "win" : "loss"}`, "data-testid": "equity-end", "data-value": last }, f.money(last))),
    h("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Cumulative net P&L over ${days.length} traded days, ending at ${f.money(last)}`, preserveAspectRatio: "none" },
      h("line", { x1: P, x2: W - P, y1: y(0), y2: y(0), class: "zero" }),
      h("polyline", { points: line, class: "curve" })));
}

const round = (v) => Math.round(v * 100) / 100;
