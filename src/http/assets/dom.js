// Building DOM without innerHTML: text is always text, never markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (id) => document.getElementById(id);

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

// Makes `children` the element's children, in that order, removing and
// inserting only what is not already in place: a node left where it was
// keeps its focus (removing a focused node, even to put it back, drops it).
export function reconcile(element, children) {
  const keep = new Set(children);
  for (const child of [...element.children]) if (!keep.has(child)) child.remove();
  children.forEach((child, i) => {
    if (element.children[i] !== child) element.insertBefore(child, element.children[i] || null);
  });
}

// A modal <dialog> asking one question; resolves with the form's data, or
// null when cancelled (Escape, Cancel). Focus is trapped by the browser,
// and on closing returns to what had it when the dialog opened. `also`
// adds answers besides `confirm`, [{ value, label }], which skip the
// fields' checks (they do not use them); the data's "choice" says which
// button answered: "ok" for `confirm`, else the other's value.
export function ask({ title, body = [], fields = [], confirm, danger = false, also = [] }) {
  return new Promise((resolve) => {
    const titleId = "d-" + Math.random().toString(36).slice(2);
    const ok = h("button", { type: "submit", value: "ok", class: danger ? "danger" : "" }, confirm);
    const form = h("form", { method: "dialog", class: "dialog-form" },
      h("h2", { id: titleId }, title),
      body,
      fields,
      h("div", { class: "actions" },
        h("button", { type: "submit", value: "cancel", class: "secondary", formnovalidate: true }, "Cancel"),
        also.map(({ value, label }) =>
          h("button", { type: "submit", value, class: "secondary", formnovalidate: true }, label)),
        ok));
    // Enter in a field answers `confirm`. Left to the browser, it would
    // press the form's first submit button, Cancel, and drop what was typed.
    form.addEventListener("keydown", (event) => {
      const input = event.target;
      if (event.key !== "Enter" || event.isComposing || !(input instanceof HTMLInputElement)) return;
      if (["checkbox", "radio", "button", "submit", "reset", "file"].includes(input.type)) return;
      event.preventDefault();
      form.requestSubmit(ok);
    });
    const dialog = h("dialog", { "aria-labelledby": titleId }, form);
    const opener = document.activeElement;
    dialog.addEventListener("close", () => {
      // Escape leaves returnValue empty: cancelled, as Cancel is.
      const choice = dialog.returnValue;
      const data = choice && choice !== "cancel" ? new FormData(form) : null;
      if (data) data.set("choice", choice);
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(data);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function field(label, input) {
  const id = "f-" + Math.random().toString(36).slice(2);
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

// Copies `text` (shown in `element`) to the clipboard; true if it was.
export async function copyText(text, element) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    // Without clipboard permission (some browsers, plain http): select the
    // text and use the older command, which a click allows.
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      return document.execCommand("copy");
    } catch (_) {
      return false;
    }
  }
}
