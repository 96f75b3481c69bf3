// The host side of MCP Apps for the tests, on the official bridge of
// @modelcontextprotocol/ext-apps (bundled by esbuild when the tests start).
//
// The test page exposes `window.mcpCallTool(params)`, which runs a tools/call on our real
// server through the MCP SDK's in-process client. `openApp` puts a view in a sandboxed
// iframe under a CSP built from its resource's `_meta.ui.csp`, and sends the tool's input
// and result only once the view has sent `ui/initialize` and `initialized`, as a
// spec-following host does.
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

const log = [];
window.hostLog = log;

function cspFor(csp) {
  const list = (values) => (values && values.length ? " " + values.join(" ") : "");
  return [
    "default-src 'none'",
    "script-src 'unsafe-inline'" + list(csp?.resourceDomains),
    "style-src 'unsafe-inline'" + list(csp?.resourceDomains),
    "img-src data:" + list(csp?.resourceDomains),
    "font-src data:" + list(csp?.resourceDomains),
    "connect-src" + (csp?.connectDomains?.length ? list(csp.connectDomains) : " 'none'"),
    "frame-src" + (csp?.frameDomains?.length ? list(csp.frameDomains) : " 'none'"),
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}

window.openApp = async ({ html, csp, toolInput, toolResult, hostContext }) => {
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.setAttribute("title", "app");
  frame.style.cssText = "width:760px;height:500px;border:1px solid #999;display:block";
  document.body.replaceChildren(frame);

  const bridge = new AppBridge(
    null,
    { name: "tradavity-test-host", version: "1.0.0" },
    { serverTools: {}, logging: {} },
    { hostContext },
  );
  bridge.oncalltool = async (params) => {
    log.push({ event: "tools/call", name: params.name, meta: params._meta ?? null });
    return await window.mcpCallTool(params);
  };
  bridge.onsizechange = ({ height, width }) => {
    log.push({ event: "size", height, width });
    if (height) frame.style.height = `${Math.min(height, 500)}px`;
  };
  bridge.onloggingmessage = (params) => log.push({ event: "log", params });
  const initialized = new Promise((resolve) => {
    bridge.oninitialized = () => {
      log.push({ event: "initialized", app: bridge.getAppVersion() ?? null });
      resolve();
    };
  });
  // Listen before the view's script can run, so its ui/initialize is not missed.
  await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
  const meta = document.createElement("meta");
  meta.httpEquiv = "Content-Security-Policy";
  meta.content = cspFor(csp);
  frame.srcdoc = html.replace("<head>", "<head>" + meta.outerHTML);
  await initialized;
  if (toolInput) await bridge.sendToolInput({ arguments: toolInput });
  await bridge.sendToolResult(toolResult);
  log.push({ event: "tool-result-sent" });
  window.bridge = bridge;
};
