// What every signed-in page does: the Sign out button.
import { api } from "./api.js";
import { $, toast } from "./dom.js";

export function initPage() {
  const button = $("#sign-out");
  if (button) {
    button.addEventListener("click", async () => {
      try {
        await api("/auth/logout", { method: "POST" });
      } catch (err) {
        if (err.status !== 401) {
          toast("Sign out failed: " + err.message);
          return;
        }
      }
      location.assign("/login");
    });
  }
}

export function isAdmin() {
  return document.body.dataset.role === "admin";
}
