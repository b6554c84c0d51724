// Small progressive enhancements only; every page works without JavaScript.
// Live preview: a form with data-preview posts its fields to that address as you type and
// shows the returned HTML (rendered and sanitised by the server) in #preview.
(function () {
  var form = document.querySelector("form[data-preview]");
  if (!form) return;
  var target = document.getElementById("preview");
  var timer = null;
  function refresh() {
    var body = new URLSearchParams(new FormData(form));
    fetch(form.getAttribute("data-preview"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && target) target.innerHTML = html; });
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
