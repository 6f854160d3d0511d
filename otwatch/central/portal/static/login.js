// The sign-in form: POST /auth/login (JSON), then on to the page that asked for it.
import { api } from "./api.js";
import { $ } from "./dom.js";

const form = $("#login-form");
const error = $("#login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const username = $("#username").value.trim();
  const password = $("#password").value;
  if (!username || !password) {
    error.textContent = "Enter your user name and password.";
    error.hidden = false;
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("/auth/login", { method: "POST", body: { username, password } });
    location.assign(form.dataset.next || "/alerts");
  } catch (err) {
    error.textContent = err.status === 401 ? "Wrong user name or password." : err.message;
    error.hidden = false;
    $("#password").select();
  } finally {
    button.disabled = false;
  }
});
