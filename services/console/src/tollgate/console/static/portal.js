// The portal's API reference: Scalar on the consumer document, with the visitor's key
// (a test key just created, or one pasted) kept in this tab's sessionStorage and given
// to the try-it panel only; it goes to the gateway, never back to the console.
(function () {
  "use strict";
  const host = document.getElementById("portal-reference");
  if (!host || !window.Scalar) return;
  const storageName = "tg_portal_key:" + host.dataset.slug;
  const issued = document.querySelector("[data-portal-issued-key]");
  if (issued && issued.value) sessionStorage.setItem(storageName, issued.value);
  const paste = document.querySelector("[data-portal-paste]");
  const key = sessionStorage.getItem(storageName) || "";
  if (paste) paste.value = key;
  // A chosen theme is forced on Scalar; with none (Auto) Scalar follows the system's
  // light/dark switch itself, as the page does: it reads darkMode and forceDarkModeState
  // only when it mounts, so a later updateConfiguration would not change its colours.
  const theme = host.dataset.theme || undefined;
  // Scalar's own labels in the page's language (it ships zh-CN for Simplified Chinese).
  const lang = document.documentElement.lang || "en";
  const locale = lang.startsWith("zh") ? "zh-CN" : lang.split("-")[0];
  const placeholder = host.dataset.keyPlaceholder || "";
  const hidden = {
    c: true, clojure: true, csharp: true, dart: true, fsharp: true, java: true, julia: true,
    kotlin: true, node: true, objc: true, ocaml: true, php: true, powershell: true, r: true,
    ruby: true, rust: true, swift: true,
    shell: ["httpie", "wget"],
    python: ["aiohttp", "httpx_async", "python3", "requests"],
    js: ["jquery", "ofetch", "xhr"],
  };
  function configuration(value) {
    return {
      url: host.dataset.url,
      localization: { locale: locale },
      hiddenClients: hidden,
      featuredClients: ["shell/curl", "python/httpx_sync", "js/fetch", "go/native"],
      defaultHttpClient: { targetKey: "shell", clientKey: "curl" },
      hideClientButton: true,
      withDefaultFonts: false,
      darkMode: theme ? theme === "dark" : undefined,
      forceDarkModeState: theme,
      hideDarkModeToggle: true,
      showDeveloperTools: "never",
      agent: { disabled: true },
      mcp: { disabled: true },
      persistAuth: false,
      authentication: {
        preferredSecurityScheme: "apiKeyHeader",
        securitySchemes: { apiKeyHeader: { value: value }, apiKeyQuery: { value: value }, bearer: { token: value } },
      },
    };
  }
  let reference = window.Scalar.createApiReference(host, configuration(key));
  function redraw(value) {
    if (reference && reference.updateConfiguration) reference.updateConfiguration(configuration(value));
    else { host.replaceChildren(); reference = window.Scalar.createApiReference(host, configuration(value)); }
  }
  // Scalar's key fields carry a fixed example placeholder that looks like a real secret;
  // it has no setting for it, so the portal writes its own ("tg_test_…") over it.
  const example = "QUxMIFlPVVIgQkFTRSBBUkUgQkVMT05HIFRPIFVT";
  const relabel = function (root) {
    for (const input of root.querySelectorAll("input[placeholder='" + example + "']")) input.placeholder = placeholder;
  };
  new MutationObserver(function () { relabel(document); }).observe(document.body, { childList: true, subtree: true });
  if (paste) {
    paste.addEventListener("change", function () {
      const value = paste.value.trim();
      if (value) sessionStorage.setItem(storageName, value); else sessionStorage.removeItem(storageName);
      redraw(value);
    });
  }
})();
