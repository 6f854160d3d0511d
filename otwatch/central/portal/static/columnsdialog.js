// Edit columns: tick, untick and order the Alerts grid's columns; the choice is the user's
// preference on the server (key alert_columns), so it follows them to any browser.
import { api } from "./api.js";
import { COLUMNS, DEFAULT_COLUMNS, cleanColumns } from "./columns.js";
import { $, fill, h, toast } from "./dom.js";

let draft = [];
function renderColumnList() {
  const list = $("#column-list");
  fill(
    list,
    draft.map((item, i) =>
      h(
        "li",
        { dataset: { column: item.id } },
        h(
          "label",
          {},
          h("input", { type: "checkbox", checked: item.on, onchange: (e) => (item.on = e.target.checked) }),
          " ",
          COLUMNS[item.id].label,
        ),
        h("button", { type: "button", "aria-label": `Move ${COLUMNS[item.id].label} up`, disabled: i === 0, onclick: () => move(i, -1) }, "↑"),
        h("button", { type: "button", "aria-label": `Move ${COLUMNS[item.id].label} down`, disabled: i === draft.length - 1, onclick: () => move(i, 1) }, "↓"),
      ),
    ),
  );
}

function move(i, step) {
  const j = i + step;
  [draft[i], draft[j]] = [draft[j], draft[i]];
  renderColumnList();
  const buttons = $("#column-list").children[j].querySelectorAll("button");
  (step < 0 ? buttons[0] : buttons[1]).focus();
}

let onSave = () => {};

/** Open Edit columns on `chosen`; `save(columns)` gets the new choice. */
export function openColumns(chosen, save) {
  onSave = save;
  draft = [
    ...chosen.map((id) => ({ id, on: true })),
    ...Object.keys(COLUMNS)
      .filter((id) => !chosen.includes(id))
      .map((id) => ({ id, on: false })),
  ];
  renderColumnList();
  const dialog = $("#columns-dialog");
  if (!dialog.open) dialog.showModal();
}

/** The ticked columns, in order: used at once, and saved for the user. */
export async function saveColumns() {
  const chosen = cleanColumns(draft.filter((d) => d.on).map((d) => d.id));
  $("#columns-dialog").close();
  onSave(chosen);
  try {
    await api("/prefs/alert_columns", { method: "PUT", body: { value: chosen } });
  } catch (err) {
    toast(`The columns apply now but could not be saved for next time: ${err.message}`);
  }
}

/** The user's saved columns (the spec's defaults when none are saved or they cannot be read). */
export async function loadColumns() {
  try {
    const answer = await api("/prefs/alert_columns");
    return cleanColumns(answer && answer.value);
  } catch {
    return [...DEFAULT_COLUMNS];
  }
}
