// A hoody-api hook in AssemblyScript with @gcoredev/proxy-wasm-sdk-as: tags requests with
// `x-as-hook: <config or "assemblyscript">` and answers 403 itself under `/as-deny`.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import {
  Context,
  FilterHeadersStatusValues,
  log,
  LogLevelValues,
  registerRootContext,
  RootContext,
  send_http_response,
  stream_context,
} from "@gcoredev/proxy-wasm-sdk-as/assembly";

class TagRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new TagRequest(context_id, this);
  }
}

class TagRequest extends Context {
  constructor(context_id: u32, root_context: TagRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = stream_context.headers.request.get(":path");
    if (path.startsWith("/as-deny")) {
      log(LogLevelValues.warn, "denied " + path);
      send_http_response(403, "denied by hook", String.UTF8.encode("denied\n"), []);
      return FilterHeadersStatusValues.StopIteration;
    }
    const config = this.root_context.getConfiguration();
    const tag = config == "" ? "assemblyscript" : config;
    stream_context.headers.request.add("x-as-hook", tag);
    log(LogLevelValues.info, "tagged " + path);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => {
  return new TagRoot(context_id);
}, "as_tag");
