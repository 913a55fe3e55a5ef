// A new key's secret, shown this once: with Copy; closing before copying
// asks first; leaving the page while it is open asks the browser to confirm.

import { copyText, h } from "./dom.js";

let open = false;

window.addEventListener("beforeunload", (event) => {
  if (open) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// Resolves once the person has closed the dialog.
export function showSecret(created, intro) {
  return new Promise((resolve) => {
    let copied = false;
    const secret = h("code", { id: "secret-value", class: "secret" }, created.secret);
    const copy = h("button", { type: "button", id: "copy-secret" }, "Copy");
    const warning = h("div", { class: "warning", id: "secret-warning", role: "alert", hidden: true },
      h("p", {}, h("strong", {}, "You won't see this key again."), " Close without copying it?"),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => { warning.hidden = true; copy.focus(); } }, "Go back"),
        h("button", { type: "button", class: "danger", onclick: () => finish() }, "Close anyway")));
    const done = h("button", { type: "button", class: "secondary", id: "secret-done" }, "Done");
    const dialog = h("dialog", { id: "secret-dialog", "aria-labelledby": "secret-title" },
      h("h2", { id: "secret-title" }, "Your new key: " + created.apiKey.name),
      h("p", {}, intro || "Copy it now and keep it somewhere safe: this is the only time it is shown."),
      h("div", { class: "secret-row" }, secret, copy),
      h("p", { class: "status", id: "copy-status", role: "status" }),
      warning,
      h("div", { class: "actions" }, done));

    copy.addEventListener("click", async () => {
      copied = await copyText(created.secret, secret);
      copy.textContent = copied ? "Copied" : "Copy";
      dialog.querySelector("#copy-status").textContent = copied
        ? "Copied to the clipboard."
        : "Could not copy: the key is selected, copy it with Ctrl+C (⌘C).";
      if (copied) warning.hidden = true;
    });
    const close = () => (copied ? finish() : ((warning.hidden = false), warning.querySelector(".danger").focus()));
    done.addEventListener("click", close);
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close();
    });
    // Focus goes back to what had it before, as it does after ask().
    const opener = document.activeElement;
    function finish() {
      open = false;
      dialog.close();
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve();
    }
    document.body.append(dialog);
    open = true;
    dialog.showModal();
    copy.focus();
  });
}
