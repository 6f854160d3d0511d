// Grid cells every grid page shares (Alerts, Devices): a header that sorts on the server, and
// a data cell cut with an ellipsis that shows the whole value on hover.
import { h } from "./dom.js";
import { nextSort, sortDirection } from "./viewstate.js";

/** A <th> for `column` ({label, sort}): a button that asks for `onSort(newSort)`; a column
 * without a sort key is a plain header. */
export function sortHeader(column, def, current, onSort) {
  if (!def.sort) return h("th", { scope: "col", dataset: { column } }, h("span", { class: "unsorted" }, def.label));
  const direction = sortDirection(current, def.sort);
  const arrow = direction === "ascending" ? " ▲" : direction === "descending" ? " ▼" : "";
  return h(
    "th",
    { scope: "col", "aria-sort": direction || "none", dataset: { column } },
    h("button", { type: "button", class: "sort", onclick: () => onSort(nextSort(current, def.sort)) }, def.label, arrow),
  );
}

/** A <td> for `content` (a string or a node): long values end in an ellipsis (CSS), the
 * title carries the whole value. */
export function dataCell(column, content) {
  const title = content instanceof Node ? content.textContent : content;
  return h("td", { dataset: { column }, title }, content);
}
