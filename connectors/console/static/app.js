// The console's router: one page per hash route; a page may register cleanups (SSE, timers).
import { get, key, setKey } from "./api.js";
import { h, show } from "./dom.js";
import { historyPage, objectPage, objectsPage } from "./objects.js";
import { regionsPage, rejectedPage, tasksPage } from "./ops.js";
import { tracePage } from "./trace.js";

const main = document.getElementById("main");
let cleanups = [];

function loginPage(root) {
  const input = h("input", { id: "api-key", type: "password", size: 48, placeholder: "API key" });
  show(root, h("h2", {}, "Log in"),
    h("p", {}, "Paste an API key (`jarvis auth key create --role ROLE`). It is kept in this tab only."),
    h("form", { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      setKey(input.value.trim());
      // The login page also shows under the route asked for: no hash change would re-route then.
      if (location.hash === "#/objects") route(); else location.hash = "#/objects";
    } },
      input, h("button", { type: "submit", id: "login" }, "Log in")));
}

async function route() {
  cleanups.forEach((f) => f());
  cleanups = [];
  const ctx = { cleanup: (f) => cleanups.push(f) };
  const [path, query] = (location.hash.slice(1) || "/objects").split("?");
  const params = new URLSearchParams(query || "");
  const [, page, ...rest] = path.split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : "";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page || (page === "object" && a.dataset.page === "objects"));
  try {
    if (page === "login") return loginPage(main);
    const session = await get("/api/session");
    const who = document.getElementById("who");
    show(who, session.principal ? `${session.principal.name} (${session.principal.role}) · region ${session.region}` : "",
      key() ? h("button", { onclick: () => { setKey(null); location.hash = "#/login"; } }, "Log out") : "");
    if (session.auth_required && !session.principal) return loginPage(main);
    switch (page) {
      case "object": return await objectPage(main, arg, ctx);
      case "history": return await historyPage(main, arg);
      case "regions": return await regionsPage(main, ctx);
      case "rejected": return await rejectedPage(main, params);
      case "tasks": return await tasksPage(main);
      case "trace": return await tracePage(main, arg, params);
      default: return await objectsPage(main, params);
    }
  } catch (e) {
    if (e.status !== 401) show(main, h("p", { class: "error", id: "error" }, `${e.message}`));
  }
}

window.addEventListener("hashchange", route);
route();
