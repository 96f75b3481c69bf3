// The view side of MCP Apps (ui/*), written out in full so each app stays small.
//
// The official `App` class of @modelcontextprotocol/ext-apps pulls in the MCP client and
// zod (about 600 KB minified), four times the size budget of one app. This module speaks
// the same protocol: `ui/initialize` first, `ui/notifications/initialized` once it is
// answered (a spec-following host sends no tool data before that), then tool input and
// results, host context changes, size changes, teardown and `tools/call` through the host.
// The tests drive it with the official host-side `AppBridge`, which checks every message.

export const PROTOCOL_VERSION = "2026-01-26";

/**
 * Connect to the host (the parent window).
 * @param {{name: string, version: string,
 *   onInput?: (args: Record<string, unknown>) => void,
 *   onResult?: (result: any) => void,
 *   onCancelled?: (reason?: string) => void,
 *   onContext?: (context: any) => void,
 *   onTeardown?: () => void}} handlers
 */
export function connect(handlers) {
  const host = window.parent;
  const pending = new Map();
  let nextId = 1;
  let context = {};
  let capabilities = {};

  const post = (message) => host.postMessage(message, "*");
  const reply = (id, result) => post({ jsonrpc: "2.0", id, result });
  const notify = (method, params) =>
    post(params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params });
  const request = (method, params) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      post({ jsonrpc: "2.0", id, method, params });
    });

  window.addEventListener("message", (event) => {
    if (event.source !== host) return;
    const message = event.data;
    if (!message || message.jsonrpc !== "2.0") return;
    if (message.method === undefined) {
      const waiting = pending.get(message.id);
      if (!waiting) return;
      pending.delete(message.id);
      if (message.error) waiting.reject(new Error(message.error.message || "host error"));
      else waiting.resolve(message.result);
      return;
    }
    const params = message.params || {};
    if (message.id !== undefined) {
      if (message.method === "ping") return reply(message.id, {});
      if (message.method === "ui/resource-teardown") {
        handlers.onTeardown?.();
        return reply(message.id, {});
      }
      return post({
        jsonrpc: "2.0",
        id: message.id,
        error: { code: -32601, message: `Method not found: ${message.method}` },
      });
    }
    switch (message.method) {
      case "ui/notifications/tool-input":
        handlers.onInput?.(params.arguments || {});
        break;
      case "ui/notifications/tool-result":
        handlers.onResult?.(params);
        break;
      case "ui/notifications/tool-cancelled":
        handlers.onCancelled?.(params.reason);
        break;
      case "ui/notifications/host-context-changed":
        context = { ...context, ...params };
        handlers.onContext?.(context);
        break;
      default:
        break;
    }
  });

  const ready = request("ui/initialize", {
    appInfo: { name: handlers.name, version: handlers.version },
    appCapabilities: { availableDisplayModes: ["inline"] },
    protocolVersion: PROTOCOL_VERSION,
  }).then((result) => {
    context = result.hostContext || {};
    capabilities = result.hostCapabilities || {};
    notify("ui/notifications/initialized");
    watchSize(notify);
    return result;
  });

  return {
    ready,
    /** The host's context (locale, timeZone, theme, ...). */
    context: () => context,
    /** Whether the host proxies tools/call to the server. */
    canCallTools: () => Boolean(capabilities.serverTools),
    /**
     * Call one of our server's tools through the host.
     * @param {string} name
     * @param {Record<string, unknown>} args
     * @param {Record<string, unknown>} [meta]
     */
    callTool: (name, args, meta) =>
      request("tools/call", meta ? { name, arguments: args, _meta: meta } : { name, arguments: args }),
  };
}

function watchSize(notify) {
  let queued = false;
  let last = "";
  const send = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      const root = document.documentElement;
      const height = Math.ceil(root.getBoundingClientRect().height);
      const width = Math.ceil(window.innerWidth);
      const key = `${width}x${height}`;
      if (key === last) return;
      last = key;
      notify("ui/notifications/size-changed", { width, height });
    });
  };
  send();
  const observer = new ResizeObserver(send);
  observer.observe(document.documentElement);
  observer.observe(document.body);
}
