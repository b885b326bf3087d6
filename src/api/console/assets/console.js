// The console's only script: a section marked data-refresh="ms" is reloaded in place by a
// short poll of the same page (no framework, nothing from elsewhere). A failed poll keeps what
// is shown and tries again at the next tick.
(function () {
  "use strict";
  var live = document.querySelector("[data-refresh]");
  if (!live) return;
  var every = parseInt(live.getAttribute("data-refresh"), 10) || 5000;
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-refresh]");
        var current = document.querySelector("[data-refresh]");
        if (fresh && current) current.replaceWith(fresh);
      })
      .catch(function () {})
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
