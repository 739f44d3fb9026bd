import { api, setText, t } from "./common.js";

const form = document.getElementById("login");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  setText("login-error", "");
  try {
    const me = await api("POST", "/api/login", {
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    });
    window.location.assign(me.role === "agent" ? "/agent" : "/wallboard");
  } catch (error) {
    setText("login-error", error.status === 401 ? t("login.failed") : error.message);
  }
});
