// The console's own API (same origin): the Bearer key, when logged in, rides on every request.
const KEY = "jarvis-console-key";

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export function key() { return sessionStorage.getItem(KEY); }
export function setKey(k) { if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY); }

function headers() {
  const k = key();
  return k ? { Authorization: `Bearer ${k}` } : {};
}

export async function get(path, params) {
  const qs = params ? "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null)) : "";
  const r = await fetch(path + qs, { headers: headers() });
  if (r.status === 401) { location.hash = "#/login"; throw new ApiError(401, "log in first"); }
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, (body && body.error) || `HTTP ${r.status}`);
  return body;
}

export function objectPath(id, sub) {
  return `/api/objects/${encodeURIComponent(id)}` + (sub ? `/${sub}` : "");
}

export async function download(path, params, filename) {
  const r = await fetch(path + "?" + new URLSearchParams(params), { headers: headers() });
  if (!r.ok) throw new ApiError(r.status, `HTTP ${r.status}`);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url; a.download = filename;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

// Server-sent events over fetch (EventSource cannot send an Authorization header).
export function watch(id, onEvent) {
  const ctl = new AbortController();
  (async () => {
    try {
      const r = await fetch(objectPath(id, "watch"), { headers: headers(), signal: ctl.signal });
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          let event = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data) onEvent(event, JSON.parse(data));
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") console.warn("watch ended", e);
    }
  })();
  return () => ctl.abort();
}
